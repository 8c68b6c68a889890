//! The text report of a session: a header, then each device's timeline, then what belongs to
//! no device.

use std::{collections::BTreeMap, fmt::Write as _};

use notify_model::session::{ExitStatus, SessionFile};

use crate::session::timeline::{Step, Timeline};

pub fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The text report: a header, then each device's timeline, then what belongs to none.
pub fn render_text(s: &SessionFile, tl: &Timeline) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "session: {}", s.command.join(" "));
    let attached = s.probes.iter().filter(|p| p.method.is_some()).count();
    let _ = writeln!(
        o,
        "kernel {}, attach {} ({attached}/{} probes attached), started {}, {} ms, exit {}",
        s.kernel,
        s.attach,
        s.probes.len(),
        s.started_wall,
        ms(s.duration_ns),
        match s.exit_status {
            ExitStatus::Code(c) => format!("code {c}"),
            ExitStatus::Signal(g) => format!("signal {g}"),
        }
    );
    let _ = writeln!(
        o,
        "{} events; lost: {} in the kernel, {} sequence gaps",
        s.events.len(),
        s.lost.kernel,
        s.lost.seq_gaps
    );
    if let Some(e) = &s.error {
        let _ = writeln!(o, "error: {e}");
    }
    let _ = writeln!(o, "times in ms from the first event");
    for (i, lane) in tl.lanes.iter().enumerate() {
        let _ = writeln!(o, "\ndevice {}: {}", i + 1, lane.label(&s.devices));
        if !lane.holders.is_empty() {
            let hs: Vec<String> = lane.holders.iter().map(|h| format!("{h:#x}")).collect();
            let _ = writeln!(o, "  holders: {}", hs.join(", "));
        }
        if !lane.bands.is_empty() {
            let names: Vec<String> = lane
                .bands
                .iter()
                .map(|b| {
                    if b.inferred {
                        format!("({})", b.state.name())
                    } else {
                        b.state.name().to_string()
                    }
                })
                .collect();
            let _ = writeln!(o, "  states: {}", names.join(" -> "));
        }
        write_steps(&mut o, &lane.steps);
    }
    if !tl.other.is_empty() {
        let _ = writeln!(o, "\nnot tied to a device:");
        write_steps(&mut o, &tl.other);
    }
    let marks = tl.marks();
    let mut by_verdict: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &marks {
        *by_verdict.entry(m.verdict.name()).or_default() += 1;
    }
    let counts: Vec<String> = by_verdict.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        o,
        "\nnotifications: {}",
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    );
    o
}

fn write_steps(o: &mut String, steps: &[Step]) {
    let _ = writeln!(
        o,
        "  {:>12} {:>6}  {:<18} {:<24} WHAT",
        "MS", "SEQ", "TASK", "EVENT"
    );
    for s in steps {
        let mut what = s.detail.clone();
        if let Some((from, to)) = s.transition {
            let _ = write!(
                what,
                "  [{} -> {}]",
                from.map(|f| f.name()).unwrap_or("new"),
                to.name()
            );
        }
        let task = format!("{}({})", s.comm, s.pid);
        let _ = writeln!(
            o,
            "  {:>12} {:>6}  {:<18} {:<24} {what}",
            ms(s.t_ns),
            s.seq,
            task,
            s.kind
        );
    }
}
