//! Every lab scenario records a session: its agent runs with `--session`, the guest sends the
//! session file back, and the host renders it with `notify report` ([`crate::suite::host_report`]).
//! These checks hold the session and its report to the agent's own event stream: the same
//! events in the same order, one report line and one SVG marker per notification, with the
//! verdict the agent gave it, and each device's timeline in kernel order.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::check::{Evidence, Outcome, parse_in_order};

/// One agent run of a scenario: its session, report and event files, and the result key of its
/// exit status (a session is only written by an agent that stopped on SIGINT).
pub struct Run {
    pub session: &'static str,
    pub report: &'static str,
    pub svg: &'static str,
    pub events: &'static str,
    pub exit_key: &'static str,
}

/// The agent runs of a scenario that write a session. The replay scenario's first agent is
/// killed with SIGKILL on purpose and writes none.
pub fn runs(scenario: &str) -> Vec<Run> {
    let first = Run {
        session: "session.json",
        report: "report.txt",
        svg: "report.svg",
        events: "events.jsonl",
        exit_key: "agent_exit",
    };
    match scenario {
        "replay" => vec![
            Run {
                session: "session_restart.json",
                report: "report_restart.txt",
                svg: "report_restart.svg",
                events: "events_restart.jsonl",
                exit_key: "agent_restart_exit",
            },
            Run {
                session: "session_again.json",
                report: "report_again.txt",
                svg: "report_again.svg",
                events: "events_again.jsonl",
                exit_key: "agent_again_exit",
            },
        ],
        "no_holder" | "mounted" | "remount" | "premature" => vec![first],
        _ => Vec::new(),
    }
}

/// A file of the scenario by name: events.jsonl is its own field of the evidence.
fn file<'a>(ev: &Evidence<'a>, name: &str) -> Option<&'a str> {
    if name == "events.jsonl" {
        ev.events
    } else {
        ev.extra.get(name).copied()
    }
}

pub fn check(o: &mut Outcome, scenario: &str, r: &BTreeMap<String, String>, ev: &Evidence) {
    for run in runs(scenario) {
        // Without a clean stop there is no session; the agent's own checks say why.
        if r.get(run.exit_key).map(String::as_str) != Some("0") {
            continue;
        }
        check_run(o, &run, ev);
    }
}

fn check_run(o: &mut Outcome, run: &Run, ev: &Evidence) {
    let name = run.session;
    let Some(text) = file(ev, name) else {
        o.check(
            format!("{name} came back (the agent ran with --session)"),
            false,
            "no session file",
        );
        return;
    };
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            o.check(format!("{name} is one JSON document"), false, e.to_string());
            return;
        }
    };
    o.check(
        format!("{name} is a notify session"),
        doc["format"] == "notify-session" && doc["version"].as_u64().is_some(),
        format!("format {}, version {}", doc["format"], doc["version"]),
    );
    let session: Vec<&Value> = doc["events"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let key = |e: &Value| {
        (
            e["seq"].as_u64().unwrap_or(u64::MAX),
            e["kind"].as_str().unwrap_or("").to_string(),
        )
    };
    let kept: Vec<(u64, String)> = session.iter().map(|e| key(e)).collect();
    // The agent's own records (journaled, replayed, enforcement) carry no seq and are not
    // session events.
    let printed: Vec<(u64, String)> = file(ev, run.events)
        .map(parse_in_order)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.0.contains_key("seq"))
        .map(|e| (e.seq(), e.kind().to_string()))
        .collect();
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

    // (seq, VERDICT) of every notification, as the agent concluded it.
    let mut want: Vec<(u64, String)> = session
        .iter()
        .filter(|e| e["kind"] == "notification")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(u64::MAX),
                e["verdict"].as_str().unwrap_or("?").to_uppercase(),
            )
        })
        .collect();
    want.sort();
    let Some(report) = file(ev, run.report) else {
        o.check(
            format!("notify report rendered {name}"),
            false,
            format!("no {} (see the lab's stderr)", run.report),
        );
        return;
    };
    let rows = timeline_rows(report);
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
        (!rows.is_empty() || kept.is_empty()) && disorder.is_empty(),
        if rows.is_empty() && !kept.is_empty() {
            "no timeline rows".to_string()
        } else {
            disorder.join("; ")
        },
    );
    match file(ev, run.svg) {
        Some(svg) => {
            let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for (_, v) in &want {
                counts.entry(v.to_lowercase()).or_default().0 += 1;
            }
            let names: Vec<String> = counts.keys().cloned().collect();
            for v in names {
                let n = svg
                    .matches(&format!(r#"class="marker verdict-{v}""#))
                    .count();
                counts.entry(v).or_default().1 = n;
            }
            o.check(
                format!("{}: one verdict marker per notification", run.svg),
                counts.values().all(|(w, g)| w == g),
                format!("verdict: (session, markers) {counts:?}"),
            );
        }
        None => {
            o.check(format!("{} rendered", run.svg), false, "no SVG");
        }
    }
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

    fn fixture(dir: &str, name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{dir}/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn rows_of_a_recorded_report() {
        let text = fixture("6.1-fentry/mount_suite", "report.txt");
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
