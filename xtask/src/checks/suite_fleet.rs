//! The mount suite's host report (`notify report` of its session: a lane per device, the
//! PREMATURE and DELIVERED lines, the SVG's verdict markers) and its fleet agent (`notify agent
//! --metrics-addr`: /healthz, /metrics by verdict and journal depth, its journaled and replayed
//! records).

use std::fmt::Write as _;

use notify_model::{AgentRecord, Item, State, journal::Reason, session::SessionFile};

use crate::checks::{
    evidence::Evidence,
    outcome::Outcome,
    results::{AgentRun, AgentState, Fact, Results},
    steps::brief,
};

/// What the suite noted about the fleet agent and its scrapes.
struct Facts {
    agent: AgentRun,
    healthz_rc: Fact<i32>,
    metrics_premature_while_mounting: Fact<bool>,
    /// The page poisoned during the premature sub-test's mount.
    premature_physoff: Fact<u64>,
}

impl Facts {
    fn read(r: &Results) -> Facts {
        Facts {
            agent: AgentRun::read(r, "metrics_agent"),
            healthz_rc: r.fact("healthz_rc"),
            metrics_premature_while_mounting: r.fact("metrics_premature_while_mounting"),
            premature_physoff: r.fact("premature_physoff"),
        }
    }
}

/// The host's `notify report` of the session: every device lane, the PREMATURE line, the SVG's
/// verdict markers.
pub fn report(o: &mut Outcome, s: &SessionFile, ev: &Evidence) {
    let Some(text) = ev.text("report.txt") else {
        o.check(
            "notify report rendered the session",
            false,
            "no report.txt (see the lab's stderr)",
        );
        return;
    };
    lanes(o, s, text);
    let prem = text.lines().find(|l| l.contains("PREMATURE during"));
    o.check(
        "report.txt marks the PREMATURE notification",
        prem.is_some(),
        prem.unwrap_or("no line with \"PREMATURE during\"").trim(),
    );
    let deliv = text.lines().find(|l| l.contains("DELIVERED during ready"));
    o.check(
        "report.txt shows the delivered notification",
        deliv.is_some(),
        deliv
            .unwrap_or("no line with \"DELIVERED during ready\"")
            .trim(),
    );
    match ev.text("report.svg") {
        Some(svg) => {
            let n = |v: &str| {
                svg.matches(&format!(r#"class="marker verdict-{v}""#))
                    .count()
            };
            o.check(
                "report.svg has the premature and delivered verdict markers",
                n("premature") >= 1 && n("delivered") >= 1,
                format!("premature {}, delivered {}", n("premature"), n("delivered")),
            );
        }
        None => {
            o.check("report.svg rendered", false, "no report.svg");
        }
    }
}

/// Every block device a dax holder registered with is a lane of the text report.
fn lanes(o: &mut Outcome, s: &SessionFile, text: &str) {
    let mut devs: Vec<String> = s
        .events
        .iter()
        .filter_map(|i| match i {
            Item::HolderState(d) if d.data.to == State::Registered => Some(d.data.dev.to_string()),
            _ => None,
        })
        .collect();
    devs.sort();
    devs.dedup();
    let mut missing = Vec::new();
    let mut detail = String::new();
    for dev in &devs {
        let name = s.devices.get(dev).map_or("?", String::as_str);
        let label = format!(": {dev} ({name})");
        match text
            .lines()
            .find(|l| l.starts_with("device ") && l.contains(&label))
        {
            Some(l) => {
                let _ = write!(detail, "{l}; ");
            }
            None => missing.push(label),
        }
    }
    o.check(
        "report.txt has a lane for every device a holder registered with",
        !devs.is_empty() && missing.is_empty(),
        if missing.is_empty() {
            detail
        } else {
            format!(
                "missing {missing:?}; lanes in report: {:?}",
                text.lines()
                    .filter(|l| l.starts_with("device "))
                    .collect::<Vec<_>>()
            )
        },
    );
}

/// One sample of an OpenMetrics text: the value of `name` whose labels include `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (n, ls) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        (n == name
            && labels
                .iter()
                .all(|(k, v)| ls.split(',').any(|p| p == format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())
        .flatten()
    })
}

fn metric_eq(
    o: &mut Outcome,
    what: &str,
    text: &str,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) {
    let got = sample(text, name, labels);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(name)).collect();
    o.check(
        what,
        got == Some(want),
        format!(
            "{name}{labels:?} = {}, want {want}; samples: {lines:?}",
            got.map_or("absent".into(), |v| v.to_string())
        ),
    );
}

/// The fleet agent's endpoint: /healthz 200, notifications by verdict, journal depth; and its
/// own records.
pub fn metrics(o: &mut Outcome, ev: &Evidence) {
    let r = &Facts::read(&ev.results);
    let agent = &r.agent;
    if !agent.state.is(&AgentState::Running) {
        o.check(
            "the fleet agent (notify agent --metrics-addr) started",
            false,
            format!(
                "{} exit {}",
                agent.state.shown(),
                agent.exit.raw_or("<absent>")
            ),
        );
        return;
    }
    o.fact_eq("fleet agent exited 0 on SIGINT", &agent.exit, 0);
    let health = ev.text("healthz.txt").unwrap_or("");
    o.check(
        "/healthz answers 200 with status ok (every required probe attached)",
        r.healthz_rc.is(&0)
            && health.contains("HTTP/1.1 200")
            && health.contains(r#""status":"ok""#),
        health.trim(),
    );
    let file = |f: &str| ev.text(f).unwrap_or("");
    let delivered = file("metrics_delivered.txt");
    metric_eq(
        o,
        "/metrics after the victim: 1 delivered notification, no premature yet",
        delivered,
        "notify_notifications_total",
        &[("verdict", "delivered")],
        1.0,
    );
    let early = sample(
        delivered,
        "notify_notifications_total",
        &[("verdict", "premature")],
    );
    o.check(
        "/metrics after the victim: no premature notification counted yet",
        early.is_none(),
        format!("premature = {early:?}"),
    );
    let prem = file("metrics_premature.txt");
    o.fact_eq(
        "/metrics scraped while the premature mount was still running",
        &r.metrics_premature_while_mounting,
        true,
    );
    metric_eq(
        o,
        "/metrics mid-mount: journal pending depth 1 (the premature notification, not yet replayed)",
        prem,
        "notify_journal_pending",
        &[],
        1.0,
    );
    metric_eq(
        o,
        "/metrics mid-mount: 1 notification journaled for reason premature",
        prem,
        "notify_journaled_total",
        &[("reason", "premature")],
        1.0,
    );
    metrics_end(o, file("metrics_end.txt"));
    fleet_records(o, r, ev);
}

/// The last scrape: every count where the suite left it.
fn metrics_end(o: &mut Outcome, end: &str) {
    for (v, n) in [("delivered", 1.0), ("premature", 1.0)] {
        metric_eq(
            o,
            &format!("/metrics at the end: notifications by verdict {v} = {n}"),
            end,
            "notify_notifications_total",
            &[("dev", "259:0"), ("verdict", v)],
            n,
        );
    }
    metric_eq(
        o,
        "/metrics at the end: the ready mount replayed it (replayed ok = 1)",
        end,
        "notify_replayed_total",
        &[("disk", "pmem0"), ("result", "ok")],
        1.0,
    );
    metric_eq(
        o,
        "/metrics at the end: journal pending depth back to 0",
        end,
        "notify_journal_pending",
        &[],
        0.0,
    );
    metric_eq(
        o,
        "/metrics: no required probe missing",
        end,
        "notify_probes_required_missing",
        &[],
        0.0,
    );
}

/// The fleet agent's own records: journaled, then replayed with the same id.
fn fleet_records(o: &mut Outcome, r: &Facts, ev: &Evidence) {
    let recs: Vec<&Item> = ev
        .events("agent_events.jsonl")
        .map(|f| f.in_order())
        .unwrap_or_default();
    let off = r.premature_physoff.value;
    let j = recs.iter().position(|i| {
        matches!(i, Item::Record(AgentRecord::Journaled { reason: Reason::Premature, dax_offset, .. })
            if Some(*dax_offset) == off)
    });
    let id = j.and_then(|j| match recs[j] {
        Item::Record(AgentRecord::Journaled { id, .. }) => Some(*id),
        _ => None,
    });
    let rp = j.and_then(|j| {
        recs.iter().skip(j + 1).find(
            |i| matches!(i, Item::Record(AgentRecord::Replayed { id: rid, .. }) if Some(*rid) == id),
        )
    });
    o.check(
        "fleet agent: journaled (premature) then replayed the same record",
        j.is_some() && rp.is_some(),
        format!(
            "journaled: {}; replayed: {}",
            j.map_or("none".into(), |j| brief(recs[j])),
            rp.map_or("none".into(), |i| brief(i))
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        let t = "# TYPE notify_notifications_total counter\n\
                 notify_notifications_total{dev=\"259:0\",verdict=\"premature\"} 1\n\
                 notify_notifications_total{dev=\"259:0\",verdict=\"delivered\"} 2\n\
                 notify_journal_pending 0\n";
        assert_eq!(
            sample(t, "notify_notifications_total", &[("verdict", "delivered")]),
            Some(2.0)
        );
        assert_eq!(sample(t, "notify_journal_pending", &[]), Some(0.0));
        assert_eq!(
            sample(t, "notify_notifications_total", &[("verdict", "no_holder")]),
            None
        );
    }
}
