//! `notify record --fail-on`: the findings of a session that turn into exit status 3.

use std::collections::BTreeSet;

use notify_model::{
    EventData, Item,
    session::{ExitStatus, SessionFile},
};

/// Findings that `--fail-on` turns into exit status 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// A notification with verdict `premature` (XFS dropped it: not ready yet).
    Premature,
    /// Events lost in the kernel (ring buffer full) or sequence gaps.
    Lost,
    /// A kill by the kernel: a `delivered` notification (XFS walked the owners and killed the
    /// processes mapping the range), a SIGBUS the kernel sent (memory-failure kills, DAX
    /// faults on a listed sector), or the command itself ended by SIGBUS.
    Kill,
}

/// The `--fail-on` findings of a session, one line each.
pub fn findings(s: &SessionFile, fail_on: &[FailOn]) -> Vec<String> {
    let seqs = |evs: Vec<&Item>| {
        evs.iter()
            .filter_map(|e| e.seq())
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for f in fail_on {
        if !seen.insert(*f as u8) {
            continue;
        }
        match f {
            FailOn::Premature => {
                let p = s.premature();
                if !p.is_empty() {
                    out.push(format!(
                        "premature: {} notification(s) dropped by a holder that was not ready \
                         (seq {})",
                        p.len(),
                        seqs(p)
                    ));
                }
            }
            FailOn::Lost => {
                if s.lost.any() {
                    out.push(format!(
                        "lost: {} event(s) lost in the kernel (ring buffer full), {} sequence \
                         gap(s)",
                        s.lost.kernel, s.lost.seq_gaps
                    ));
                }
            }
            FailOn::Kill => {
                let d = s.delivered();
                if !d.is_empty() {
                    out.push(format!(
                        "kill: {} notification(s) delivered: XFS killed the processes mapping \
                         the range (seq {})",
                        d.len(),
                        seqs(d)
                    ));
                }
                let kernel_sigbus: Vec<&Item> = s
                    .events
                    .iter()
                    .filter(|e| {
                        matches!(e, Item::Kernel(k)
                            if matches!(k.data, EventData::Sigbus { code, .. } if code > 0))
                    })
                    .collect();
                if !kernel_sigbus.is_empty() {
                    out.push(format!(
                        "kill: the kernel sent {} SIGBUS for memory errors (seq {})",
                        kernel_sigbus.len(),
                        seqs(kernel_sigbus)
                    ));
                }
                if s.exit_status == ExitStatus::Signal(libc::SIGBUS) {
                    out.push("kill: the command was killed by SIGBUS".to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_model::session::{FORMAT, Lost, VERSION};

    fn fixture(name: &str) -> Vec<Item> {
        crate::stream::recorded::items(&format!("{name}/events.jsonl"))
    }

    fn session(events: Vec<Item>, exit: ExitStatus, lost: Lost) -> SessionFile {
        SessionFile {
            format: FORMAT.into(),
            version: VERSION,
            kernel: "6.1.0".into(),
            attach: "auto".into(),
            probes: vec![],
            lost,
            command: vec!["x".into()],
            exit_status: exit,
            started_wall: String::new(),
            duration_ns: 0,
            error: None,
            devices: Default::default(),
            events,
        }
    }

    const ALL: [FailOn; 3] = [FailOn::Premature, FailOn::Lost, FailOn::Kill];

    #[test]
    fn fail_on_findings_from_real_fixtures() {
        let ok = Lost::default();
        let s = session(fixture("6.12-kprobe/premature"), ExitStatus::Code(0), ok);
        let f = findings(&s, &ALL);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("premature: 1 ") && f[0].contains("seq 9"),
            "{f:?}"
        );
        assert!(findings(&s, &[FailOn::Lost, FailOn::Kill]).is_empty());

        // The recorded run has both faces of the kernel's kill: the delivered notification and
        // the SIGBUS the sigbus probe saw.
        let s = session(fixture("6.12-kprobe/mounted"), ExitStatus::Code(0), ok);
        let f = findings(&s, &ALL);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].starts_with("kill: 1 notification(s) delivered"),
            "{f:?}"
        );
        assert!(
            f[1].starts_with("kill: the kernel sent 1 SIGBUS for memory errors"),
            "{f:?}"
        );

        // no_holder is neither premature nor a kill.
        let s = session(fixture("6.1-fentry/no_holder"), ExitStatus::Code(0), ok);
        assert!(findings(&s, &ALL).is_empty());

        let lost = Lost {
            kernel: 0,
            seq_gaps: 2,
        };
        let s = session(vec![], ExitStatus::Signal(libc::SIGBUS), lost);
        let f = findings(&s, &[FailOn::Lost, FailOn::Kill, FailOn::Lost]);
        assert_eq!(f.len(), 2, "repeats count once: {f:?}");
        assert!(f[0].contains("2 sequence gap(s)"));
        assert!(f[1].contains("SIGBUS"));
    }
}
