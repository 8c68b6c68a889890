//! Writing events: a table for people, JSON lines for pipelines.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::Path,
};

use crate::{
    event::{EventData, TraceEvent, errno_name, mf_flag_names},
    readiness::{Notification, Transition},
};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned, human-readable table.
    Table,
    /// One JSON object per line (schema: docs/EVENTS.md).
    Json,
}

/// Where events go.
pub struct Sink {
    format: Format,
    out: Box<dyn Write + Send>,
    /// ktime of the first event, for relative times in the table.
    t0: Option<u64>,
    header_done: bool,
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
            out,
            t0: None,
            header_done: false,
        }
    }

    pub fn write(&mut self, ev: &TraceEvent) -> io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, ev)?;
                self.out.write_all(b"\n")
            }
            Format::Table => {
                if !self.header_done {
                    writeln!(
                        self.out,
                        "{:>6} {:>12} {:>3} {:>7} {:<15} {:<24} DETAILS",
                        "SEQ", "TIME(s)", "CPU", "PID", "COMM", "KIND"
                    )?;
                    self.header_done = true;
                }
                let t0 = *self.t0.get_or_insert(ev.ktime_ns);
                let rel = ev.ktime_ns.saturating_sub(t0) as f64 / 1e9;
                writeln!(
                    self.out,
                    "{:>6} {:>12.6} {:>3} {:>7} {:<15} {:<24} {}",
                    ev.seq,
                    rel,
                    ev.cpu,
                    ev.pid,
                    ev.comm,
                    ev.data.kind_name(),
                    details(&ev.data)
                )
            }
        }
    }

    /// Writes something the agent did (journaled, replayed, enforcement...).
    pub fn write_action(&mut self, a: &crate::agent::Action) -> io::Result<()> {
        let v = serde_json::to_value(a).map_err(io::Error::other)?;
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, &v)?;
                self.out.write_all(b"\n")
            }
            Format::Table => {
                let kind = v["kind"].as_str().unwrap_or("agent").to_string();
                let mut fields = v;
                if let Some(m) = fields.as_object_mut() {
                    m.remove("kind");
                }
                writeln!(
                    self.out,
                    "{:>6} {:>12} {:>3} {:>7} {:<15} {:<24} {}",
                    "-", "-", "-", "-", "notify", kind, fields
                )
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn ret_str(ret: i64) -> String {
    match errno_name(ret) {
        Some(n) => format!("{ret} ({n})"),
        None => ret.to_string(),
    }
}

/// One line of details for the table.
pub fn details(d: &EventData) -> String {
    match d {
        EventData::NotifyEnter {
            dax_dev,
            holder,
            offset,
            len,
            mf_flags,
            readiness,
            ..
        } => format!(
            "dax={dax_dev:#x} off={offset:#x} len={len} flags={} holder={holder:#x} sb={readiness:?}",
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
        EventData::FillSuperEnter(s)
        | EventData::MountfsEnter(s)
        | EventData::LogRecoverEnter(s)
        | EventData::LogRecoverFinishEnter(s)
        | EventData::PutSuper(s) => format!("dev={} holder={:#x}", s.dev, s.holder),
        EventData::FillSuperExit(s)
        | EventData::MountfsExit(s)
        | EventData::LogRecoverExit(s)
        | EventData::LogRecoverFinishExit(s)
        | EventData::GetTreeExit(s) => format!(
            "dev={} holder={:#x} ret={}",
            s.dev,
            s.holder,
            ret_str(s.ret)
        ),
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
        EventData::Unknown { raw_kind } => format!("raw kind {raw_kind}"),
        EventData::HolderState(Transition {
            dax_dev,
            dev,
            from,
            to,
            cause,
            ..
        }) => format!(
            "dax={dax_dev:#x} dev={dev} {} -> {} ({cause})",
            from.map(|f| f.name()).unwrap_or("-"),
            to.name()
        ),
        EventData::Notification(Notification {
            dax_dev,
            offset,
            len,
            ret,
            verdict,
            state,
            ..
        }) => format!(
            "{} dax={dax_dev:#x} off={offset:#x} len={len} ret={} holder state={}",
            verdict.name().to_uppercase(),
            ret_str(*ret),
            state.map(|s| s.name()).unwrap_or("none")
        ),
    }
}
