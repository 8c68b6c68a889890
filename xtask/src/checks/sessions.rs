//! Every lab scenario records a session: its agent runs with `--session`, the guest sends the
//! session file back, and the host renders it with `notify report` ([`crate::host_report`]).
//! These checks hold the session and its report to the agent's own event stream: the same
//! events in the same order, one report line and one SVG marker per notification, with the
//! verdict the agent gave it, and each device's timeline in kernel order.

use std::collections::BTreeMap;

use notify_model::{
    Item,
    session::{LoadError, SessionFile},
};

use crate::checks::{evidence::Evidence, outcome::Outcome, results::AgentRun};

/// One agent run of a scenario: its session, report and event files, and the name of its run
/// in result.txt (a session is only written by an agent that stopped on SIGINT).
pub struct Run {
    pub session: &'static str,
    pub report: &'static str,
    pub svg: &'static str,
    pub events: &'static str,
    pub agent: &'static str,
}

/// The agent runs of a scenario that write a session. The replay scenario's first agent is
/// killed with SIGKILL on purpose and writes none.
pub fn runs(scenario: &str) -> Vec<Run> {
    let first = Run {
        session: "session.json",
        report: "report.txt",
        svg: "report.svg",
        events: "events.jsonl",
        agent: "agent",
    };
    match scenario {
        "replay" => vec![
            Run {
                session: "session_restart.json",
                report: "report_restart.txt",
                svg: "report_restart.svg",
                events: "events_restart.jsonl",
                agent: "agent_restart",
            },
            Run {
                session: "session_again.json",
                report: "report_again.txt",
                svg: "report_again.svg",
                events: "events_again.jsonl",
                agent: "agent_again",
            },
        ],
        "no_holder" | "mounted" | "remount" | "premature" | "tell" | "healthmon" | "ext4"
        | "removal" | "redrive" => vec![first],
        _ => Vec::new(),
    }
}

pub fn check(o: &mut Outcome, scenario: &str, ev: &Evidence) {
    for run in runs(scenario) {
        // Without a clean stop there is no session; the agent's own checks say why.
        if !AgentRun::read(&ev.results, run.agent).exited_0() {
            continue;
        }
        check_run(o, &run, ev);
    }
}

/// The session of `run`, or a failed check saying why there is none.
fn loaded<'e>(o: &mut Outcome, name: &str, ev: &'e Evidence) -> Option<&'e SessionFile> {
    match ev.session(name) {
        None => {
            o.check(
                format!("{name} came back (the agent ran with --session)"),
                false,
                "no session file",
            );
            None
        }
        Some(Err(e @ LoadError::Syntax(..))) => {
            o.check(format!("{name} is one JSON document"), false, e.to_string());
            None
        }
        Some(Err(e)) => {
            o.check(format!("{name} is a notify session"), false, e.to_string());
            None
        }
        Some(Ok(s)) => {
            o.check(
                format!("{name} is a notify session"),
                true,
                format!("format {:?}, version {}", s.format, s.version),
            );
            Some(s)
        }
    }
}

/// (seq, kind) of the kernel and derived items.
fn keys<'a>(items: impl Iterator<Item = &'a Item>) -> Vec<(u64, &'static str)> {
    items
        .filter_map(|i| Some((i.seq()?, i.kind_name())))
        .collect()
}

fn check_run(o: &mut Outcome, run: &Run, ev: &Evidence) {
    let name = run.session;
    let Some(session) = loaded(o, name, ev) else {
        return;
    };
    let kept = keys(session.events.iter());
    // The agent's own records (journaled, replayed, enforcement) carry no seq and are not
    // session events.
    let printed = ev
        .events(run.events)
        .map(|f| keys(f.items.iter()))
        .unwrap_or_default();
    let first_diff = kept
        .iter()
        .zip(&printed)
        .position(|(a, b)| a != b)
        .unwrap_or(kept.len().min(printed.len()));
    o.check(
        format!(
            "{name} holds the events of {} in the same order",
            run.events
        ),
        // Both empty is right for a run in which nothing happened (the replay's last agent).
        kept == printed,
        format!(
            "{} in the session, {} printed; first difference at {first_diff}: {:?} vs {:?}",
            kept.len(),
            printed.len(),
            kept.get(first_diff),
            printed.get(first_diff)
        ),
    );
    report(o, run, ev, session, !kept.is_empty());
}

/// The text report and the SVG of the session: one line and one marker per notification, with
/// its verdict; every lane in seq order.
fn report(o: &mut Outcome, run: &Run, ev: &Evidence, session: &SessionFile, has_events: bool) {
    // (seq, VERDICT) of every notification, as the agent concluded it.
    let mut want: Vec<(u64, String)> = session
        .events
        .iter()
        .filter_map(Item::notification)
        .map(|n| (n.at.seq, n.data.verdict.name().to_uppercase()))
        .collect();
    want.sort();
    let Some(text) = ev.text(run.report) else {
        o.check(
            format!("notify report rendered {}", run.session),
            false,
            format!("no {} (see the lab's stderr)", run.report),
        );
        return;
    };
    let rows = timeline_rows(text);
    let mut got: Vec<(u64, String)> = rows
        .iter()
        .flat_map(|(_, rs)| rs)
        .filter(|(_, kind, _)| kind == "notification")
        .map(|(seq, _, what)| {
            (
                *seq,
                what.split_whitespace().next().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    o.check(
        format!(
            "{}: one line per notification, with the agent's verdict",
            run.report
        ),
        got == want,
        format!("report {got:?}, session {want:?}"),
    );
    let disorder: Vec<String> = rows
        .iter()
        .filter_map(|(lane, rs)| {
            rs.windows(2)
                .find(|w| w[0].0 > w[1].0)
                .map(|w| format!("{lane}: seq {} before {}", w[0].0, w[1].0))
        })
        .collect();
    o.check(
        format!("{}: every timeline in kernel (seq) order", run.report),
        (!rows.is_empty() || !has_events) && disorder.is_empty(),
        if rows.is_empty() && has_events {
            "no timeline rows".to_string()
        } else {
            disorder.join("; ")
        },
    );
    let Some(svg) = ev.text(run.svg) else {
        o.check(format!("{} rendered", run.svg), false, "no SVG");
        return;
    };
    // verdict -> (notifications in the session, markers in the SVG)
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for n in session.events.iter().filter_map(Item::notification) {
        counts.entry(n.data.verdict.name()).or_default().0 += 1;
    }
    for (v, (_, markers)) in counts.iter_mut() {
        *markers = svg
            .matches(&format!(r#"class="marker verdict-{v}""#))
            .count();
    }
    o.check(
        format!("{}: one verdict marker per notification", run.svg),
        counts.values().all(|(w, g)| w == g),
        format!("verdict: (session, markers) {counts:?}"),
    );
}

/// A row of a text report's timeline: (seq, event kind, what).
type Row = (u64, String, String);

/// The timeline rows of a text report, by section (a `device ...` lane or the unattributed
/// part).
fn timeline_rows(report: &str) -> Vec<(String, Vec<Row>)> {
    let mut out: Vec<(String, Vec<Row>)> = Vec::new();
    for l in report.lines() {
        if !l.starts_with(' ') && !l.trim().is_empty() {
            out.push((l.trim().to_string(), Vec::new()));
            continue;
        }
        // "    MS    SEQ  TASK    EVENT   WHAT": a row starts with two numbers.
        let mut f = l.split_whitespace();
        let (Some(ms), Some(seq), Some(_task), Some(kind)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let (Ok(_), Ok(seq)) = (ms.parse::<f64>(), seq.parse::<u64>()) else {
            continue;
        };
        let what = f.collect::<Vec<_>>().join(" ");
        if let Some((_, rows)) = out.last_mut() {
            rows.push((seq, kind.to_string(), what));
        }
    }
    out.retain(|(_, rows)| !rows.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_recorded_report() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/6.1-fentry/mount_suite/report.txt");
        let text = std::fs::read_to_string(p).unwrap();
        let rows = timeline_rows(&text);
        assert!(
            rows[0].0.starts_with("device 1: 259:0 (pmem0)"),
            "{:?}",
            rows[0].0
        );
        let first = &rows[0].1[0];
        assert_eq!((first.0, first.1.as_str()), (1, "fill_super_enter"));
        let n = rows[0]
            .1
            .iter()
            .find(|r| r.1 == "notification")
            .expect("a notification row");
        assert!(n.2.starts_with("DELIVERED during ready"), "{:?}", n.2);
    }
}
