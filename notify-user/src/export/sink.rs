//! Writing the stream: a table for people, JSON lines for pipelines (docs/EVENTS.md).

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::Path,
};

use std::fmt::Write as _;

use notify_model::{
    EventData, Header, Item, Notification, TraceEvent, Transition,
    event::{bus_code_name, mf_flag_names, ret_str},
    fserror::FsError,
    health::Health,
    record::AgentRecord,
};

use crate::{
    export::stamp::Stamp,
    stream::{Listener, Totals},
};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned, human-readable table.
    Table,
    /// One JSON object per line (schema: docs/EVENTS.md).
    Json,
}

/// Where the stream goes.
pub struct Sink {
    format: Format,
    /// Also write derived items (holder_state, notification); kernel events and agent records
    /// are always written.
    pub derived: bool,
    out: Box<dyn Write + Send>,
    /// ktime of the first event, for relative times in the table.
    t0: Option<u64>,
    header_done: bool,
    /// Wall time and host name for every JSON line.
    stamp: Stamp,
    /// The JSON line being written.
    line: Vec<u8>,
}

impl Sink {
    pub fn stdout(format: Format) -> Self {
        Sink::new(format, Box::new(BufWriter::new(io::stdout())))
    }

    /// Appends to a file (created if missing).
    pub fn file(format: Format, path: &Path) -> io::Result<Self> {
        let f: File = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Sink::new(format, Box::new(BufWriter::new(f))))
    }

    pub fn new(format: Format, out: Box<dyn Write + Send>) -> Self {
        Sink {
            format,
            derived: true,
            out,
            t0: None,
            header_done: false,
            stamp: Stamp::new(),
            line: Vec::new(),
        }
    }

    /// Writes one JSON object with the wall time (of `ktime_ns`, or now) and host name as its
    /// first members, then a newline.
    fn json_line(&mut self, v: &impl serde::Serialize, ktime_ns: Option<u64>) -> io::Result<()> {
        // One buffer for the line, reused: "{", the stamp, then the body without its "{".
        let line = &mut self.line;
        line.clear();
        line.push(b'{');
        self.stamp.write_fields(line, ktime_ns);
        let body_at = line.len();
        serde_json::to_writer(&mut *line, v).map_err(io::Error::other)?;
        // Every item and record serializes as a JSON object (serde's tagged enums).
        if line.get(body_at) != Some(&b'{') {
            return Err(io::Error::other(
                "a stream item did not serialize as a JSON object",
            ));
        }
        if line.len() == body_at + 2 {
            // "{}": no members after the stamp.
            line.remove(body_at);
        } else {
            line[body_at] = b',';
        }
        line.push(b'\n');
        self.out.write_all(line)
    }

    /// Writes one item: a kernel event or a derived item as a row, an agent record as a
    /// record line.
    pub fn write(&mut self, item: &Item) -> io::Result<()> {
        match item {
            // The details are the table's: JSON carries the fields themselves.
            Item::Kernel(ev) => self.row(item, Row::of_event(ev), || details(&ev.data)),
            Item::HolderState(d) => {
                self.row(item, Row::of_header(&d.at), || transition_details(&d.data))
            }
            Item::Notification(d) => self.row(item, Row::of_header(&d.at), || {
                notification_details(&d.data)
            }),
            Item::Record(r) => self.write_record(r),
            Item::FsError(e) => match self.format {
                Format::Json => self.json_line(item, Some(e.ktime_ns)),
                Format::Table => self.unsequenced_row("xfs", "fs_error", fs_error_details(e)),
            },
            Item::Health(h) => match self.format {
                Format::Json => self.json_line(item, Some(h.ktime_ns)),
                Format::Table => self.unsequenced_row("xfs", "health", health_details(h)),
            },
        }
    }

    fn row(&mut self, item: &Item, h: Row<'_>, details: impl FnOnce() -> String) -> io::Result<()> {
        match self.format {
            Format::Json => self.json_line(item, Some(h.ktime_ns)),
            Format::Table => {
                if !self.header_done {
                    writeln!(
                        self.out,
                        "{:>6} {:>12} {:>3} {:>7} {:<15} {:<24} DETAILS",
                        "SEQ", "TIME(s)", "CPU", "PID", "COMM", "KIND"
                    )?;
                    self.header_done = true;
                }
                let t0 = *self.t0.get_or_insert(h.ktime_ns);
                let rel = h.ktime_ns.saturating_sub(t0) as f64 / 1e9;
                writeln!(
                    self.out,
                    "{:>6} {:>12.6} {:>3} {:>7} {:<15} {:<24} {}",
                    h.seq,
                    rel,
                    h.cpu,
                    h.pid,
                    h.comm,
                    item.kind_name(),
                    details(),
                )
            }
        }
    }

    /// Writes something the agent did (journaled, replayed, enforcement...). JSON keys come out
    /// in name order (through a JSON value), as they always have.
    fn write_record(&mut self, a: &AgentRecord) -> io::Result<()> {
        let v = serde_json::to_value(a).map_err(io::Error::other)?;
        match self.format {
            Format::Json => self.json_line(&v, None),
            Format::Table => {
                let kind = v["kind"].as_str().unwrap_or("agent").to_string();
                let mut fields = v;
                if let Some(m) = fields.as_object_mut() {
                    m.remove("kind");
                }
                self.unsequenced_row("notify", &kind, fields)
            }
        }
    }

    /// A table row of something without a kernel header (no sequence number, time, CPU or
    /// pid): XFS's reports and the agent's records, from `source`.
    fn unsequenced_row(
        &mut self,
        source: &str,
        kind: &str,
        details: impl std::fmt::Display,
    ) -> io::Result<()> {
        writeln!(
            self.out,
            "{:>6} {:>12} {:>3} {:>7} {:<15} {:<24} {}",
            "-", "-", "-", "-", source, kind, details
        )
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The header fields a row shows, borrowed from a kernel event or a derived item (a kernel
/// event's own [`Header`] would be a copy of its comm, per line).
#[derive(Clone, Copy)]
struct Row<'a> {
    seq: u64,
    ktime_ns: u64,
    cpu: u32,
    pid: u32,
    comm: &'a str,
}

impl<'a> Row<'a> {
    fn of_event(e: &'a TraceEvent) -> Self {
        Row {
            seq: e.seq,
            ktime_ns: e.ktime_ns,
            cpu: e.cpu,
            pid: e.pid,
            comm: &e.comm,
        }
    }

    fn of_header(h: &'a Header) -> Self {
        Row {
            seq: h.seq,
            ktime_ns: h.ktime_ns,
            cpu: h.cpu,
            pid: h.pid,
            comm: &h.comm,
        }
    }
}

/// One line of details for the table: a kernel event.
pub fn details(d: &EventData) -> String {
    if let Some((phase, s)) = d.mount_step() {
        return if phase.is_exit() {
            format!(
                "dev={} holder={:#x} ret={}",
                s.dev,
                s.holder,
                ret_str(s.ret)
            )
        } else {
            format!("dev={} holder={:#x}", s.dev, s.holder)
        };
    }
    match d {
        EventData::NotifyEnter {
            dax_dev,
            holder,
            offset,
            len,
            mf_flags,
            readiness,
            dev,
            ..
        } => format!(
            "dax={dax_dev:#x} off={offset:#x} len={len} flags={} holder={holder:#x} sb={readiness:?} dev={dev}",
            mf_flag_names(*mf_flags).join("|")
        ),
        EventData::NotifyExit {
            offset, len, ret, ..
        }
        | EventData::XfsNotifyExit {
            offset, len, ret, ..
        } => format!("off={offset:#x} len={len} ret={}", ret_str(*ret)),
        EventData::HolderGet {
            dax_dev,
            holder,
            start_off,
            dev,
            ..
        } => format!("dev={dev} dax={dax_dev:#x} holder={holder:#x} start_off={start_off}"),
        EventData::HolderPut { dax_dev, holder } => format!("dax={dax_dev:#x} holder={holder:#x}"),
        EventData::MemoryFailureEnter { pfn, flags } => {
            format!("pfn={pfn:#x} flags={}", mf_flag_names(*flags).join("|"))
        }
        EventData::MemoryFailureExit { pfn, ret, .. } => {
            format!("pfn={pfn:#x} ret={}", ret_str(*ret))
        }
        EventData::MfEvent {
            pfn,
            mf_type,
            result,
            type_name,
            result_name,
        } => format!(
            "pfn={pfn:#x} type={} result={}",
            type_name.clone().unwrap_or_else(|| mf_type.to_string()),
            result_name.clone().unwrap_or_else(|| result.to_string())
        ),
        EventData::SyscallExit { syscall, ret } => format!("{syscall} ret={}", ret_str(*ret)),
        EventData::XfsTracepoint { tracepoint, dev } => format!("{tracepoint} dev={dev}"),
        EventData::Sigbus {
            target,
            target_comm,
            code,
            result,
        } => format!(
            "to {target_comm}({target}) code={} result={result}",
            bus_code_name(*code)
        ),
        EventData::Unknown { raw_kind } => format!("raw kind {raw_kind}"),
        // Mount steps: above.
        _ => String::new(),
    }
}

/// One line of details for the table: XFS's own error report.
pub fn fs_error_details(e: &FsError) -> String {
    let mut s = format!(
        "{} dev={} error={}",
        e.what.name(),
        e.dev,
        ret_str(-i64::from(e.error))
    );
    if let Some(ino) = e.ino {
        let _ = write!(s, " ino={ino}");
    }
    if let Some(p) = &e.path {
        let _ = write!(s, " path={}", p.display());
    }
    if e.error_count > 1 {
        let _ = write!(s, " (x{})", e.error_count);
    }
    if let Some(n) = e.notification_seq {
        let _ = write!(s, " after notification seq {n}");
    }
    s
}

/// One line of details for the table: a record of XFS's health monitor.
pub fn health_details(h: &Health) -> String {
    let mut s = format!("{} {} dev={}", h.domain, h.what, h.dev);
    if !h.structures.is_empty() {
        let _ = write!(s, " {}", h.structures.join("|"));
    }
    if let Some(g) = h.group {
        let _ = write!(s, " group={g}");
    }
    if let Some(i) = h.ino {
        let _ = write!(s, " ino={i}");
    }
    if let (Some(d), Some(n)) = (h.daddr, h.sectors) {
        let _ = write!(s, " sectors={d}+{n}");
    }
    if let (Some(p), Some(l)) = (h.pos, h.len) {
        let _ = write!(s, " bytes={p:#x}+{l}");
    }
    if let Some(n) = h.lost {
        let _ = write!(s, " lost={n}");
    }
    if !h.reasons.is_empty() {
        let _ = write!(s, " {}", h.reasons.join(", "));
    }
    s
}

/// One line of details for the table: a holder's state change.
pub fn transition_details(t: &Transition) -> String {
    format!(
        "dax={:#x} dev={} {} -> {} ({})",
        t.dax_dev,
        t.dev,
        t.from.map(|f| f.name()).unwrap_or("-"),
        t.to.name(),
        t.cause
    )
}

/// One line of details for the table: a notification and its verdict.
pub fn notification_details(n: &Notification) -> String {
    format!(
        "{} dax={:#x} off={:#x} len={} ret={} holder state={}",
        n.verdict.name().to_uppercase(),
        n.dax_dev,
        n.offset,
        n.len,
        ret_str(n.ret),
        n.state.map(|s| s.name()).unwrap_or("none")
    )
}

impl Listener for Sink {
    fn on_item(&mut self, item: &Item, _emit: &mut Vec<Item>) -> anyhow::Result<()> {
        if self.derived || !item.is_derived() {
            self.write(item)?;
        }
        Ok(())
    }

    fn on_batch(&mut self, _totals: &Totals) -> anyhow::Result<()> {
        Ok(self.flush()?)
    }

    fn finish(&mut self, _totals: &Totals) -> anyhow::Result<()> {
        Ok(self.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a buffer the test keeps.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Items recorded in the VM lab (their stamps left out by the recorder).
    fn recorded(fixture: &str) -> Vec<Item> {
        crate::stream::recorded::items(fixture)
    }

    fn written(format: Format, items: &[Item]) -> String {
        let buf = Shared::default();
        let mut sink = Sink::new(format, Box::new(buf.clone()));
        for i in items {
            sink.write(i).unwrap();
        }
        sink.flush().unwrap();
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    /// Kernel and derived items (6.12), XFS's health and error reports (7.3), agent records.
    const FIXTURES: [&str; 3] = [
        "6.12-kprobe/premature/events.jsonl",
        "7.3-kprobe/healthmon/events.jsonl",
        "7.3-kprobe/tell/events.jsonl",
    ];

    #[test]
    fn a_json_line_is_the_stamp_then_the_item_as_it_was() {
        for fixture in FIXTURES {
            let items = recorded(fixture);
            let out = written(Format::Json, &items);
            assert_eq!(out.lines().count(), items.len(), "{fixture}");
            for (line, item) in out.lines().zip(&items) {
                assert!(line.starts_with("{\"time\":\""), "{fixture}: {line}");
                // `{"time":"` + 30 bytes of RFC 3339 + `","host":"`: the stamp first.
                assert_eq!(
                    line.get(39..49),
                    Some("\",\"host\":\""),
                    "{fixture}: {line}"
                );
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                let m = v.as_object_mut().unwrap();
                let time = m.remove("time").unwrap();
                assert!(
                    time.as_str()
                        .is_some_and(|t| t.len() == 30 && t.ends_with('Z'))
                );
                assert!(m.remove("host").is_some_and(|h| h.is_string()));
                let back: Item = serde_json::from_value(v).unwrap();
                assert_eq!(&back, item, "{fixture}: {line}");
            }
        }
    }

    #[test]
    fn a_table_row_shows_the_kernel_header_or_dashes() {
        for fixture in FIXTURES {
            let items = recorded(fixture);
            let out = written(Format::Table, &items);
            let lines: Vec<&str> = out.lines().collect();
            let header: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].trim_start().starts_with("SEQ"))
                .collect();
            assert_eq!(header.len(), 1, "{fixture}: one header line\n{out}");
            let rows: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != header[0])
                .map(|(_, l)| *l)
                .collect();
            assert_eq!(rows.len(), items.len(), "{fixture}");
            let mut first_kernel = true;
            for (row, item) in rows.iter().zip(&items) {
                let f: Vec<&str> = row.split_whitespace().collect();
                let h = match item {
                    Item::Kernel(e) => Some(Row::of_event(e)),
                    Item::HolderState(d) => Some(Row::of_header(&d.at)),
                    Item::Notification(d) => Some(Row::of_header(&d.at)),
                    Item::FsError(_) | Item::Health(_) | Item::Record(_) => None,
                };
                match h {
                    Some(h) => {
                        let seq = h.seq.to_string();
                        let (cpu, pid) = (h.cpu.to_string(), h.pid.to_string());
                        let want = [seq.as_str(), cpu.as_str(), pid.as_str(), h.comm];
                        assert_eq!([f[0], f[2], f[3], f[4]], want, "{fixture}: {row}");
                        assert_eq!(f[5], item.kind_name(), "{fixture}: {row}");
                        // Times are relative to the first row with a kernel header.
                        if first_kernel {
                            assert_eq!(f[1], "0.000000", "{fixture}: {row}");
                            first_kernel = false;
                        }
                        let row_at = lines.iter().position(|l| l == row).unwrap();
                        assert!(header[0] < row_at, "{fixture}: the header comes first");
                    }
                    None => {
                        let source = if matches!(item, Item::Record(_)) {
                            "notify"
                        } else {
                            "xfs"
                        };
                        assert_eq!(f[..5], ["-", "-", "-", "-", source], "{fixture}: {row}");
                        if !matches!(item, Item::Record(_)) {
                            assert_eq!(f[5], item.kind_name(), "{fixture}: {row}");
                        }
                    }
                }
            }
        }
    }
}
