//! What every agent output must be (JSON lines of notify's items, kernel events with unique
//! seq numbers written in seq order), the checks on an agent run itself, and the facts of the
//! lab's guest the scenario checks share.

use notify_model::{Item, Verdict};

use crate::checks::{
    evidence::{Evidence, JsonLines},
    outcome::Outcome,
    results::{AgentRun, AgentState, FactValue as _},
    steps::{Kind, Step},
};

/// pmem0 starts at this pfn with `memmap=1G!1G`.
pub const PMEM_BASE_PFN: u64 = 0x40000;
pub const PAGE: u64 = 4096;
pub const EOPNOTSUPP: i64 = -95;
pub const EIO: i64 = -5;
/// si_code of a SIGBUS for an action-required memory error.
pub const BUS_MCEERR_AR: i32 = 4;

/// The byte offset on pmem0 of a pfn (None below pmem0).
pub fn pfn_offset(pfn: u64) -> Option<u64> {
    pfn.checked_sub(PMEM_BASE_PFN)?.checked_mul(PAGE)
}

/// How the scenario's first agent run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// SIGINT, exit 0.
    Sigint,
    /// kill -9 on purpose (the replay scenario's first agent): 137.
    Killed,
    /// kill -9 without waiting: the kernel may hold it (the removal scenario, when the
    /// kernel never finished the unbind); no exit status to check.
    Abandoned,
}

/// The scenario's agent events by seq, if its agent ran; records the agent's own health checks.
pub fn agent_events<'e>(
    o: &mut Outcome,
    ev: &'e Evidence,
    require_agent: bool,
    end: End,
) -> Option<&'e JsonLines<Item>> {
    let agent = AgentRun::read(&ev.results, "agent");
    match &agent.state.value {
        Some(AgentState::Running) => {}
        Some(AgentState::Missing) | None => {
            if require_agent {
                o.check(
                    "agent present",
                    false,
                    "the notify binary was not in the guest",
                );
            } else {
                o.skipped
                    .push("agent missing: event assertions skipped".into());
            }
            return None;
        }
        Some(other) => {
            o.check(
                "agent started",
                false,
                format!("agent {}, exit {}", other.show(), agent.exit.raw_or("?")),
            );
            return None;
        }
    }
    match end {
        End::Killed => {
            o.fact_eq("agent died of kill -9 (137)", &agent.exit, 137);
        }
        End::Sigint => {
            o.fact_eq("agent exited 0 on SIGINT", &agent.exit, 0);
        }
        End::Abandoned => o
            .skipped
            .push("the agent was killed without a wait (the kernel's hung unbind)".into()),
    }
    let Some(file) = ev.events("events.jsonl") else {
        o.check("events.jsonl came back", false, "no events.jsonl");
        return None;
    };
    well_formed(o, "events.jsonl", file);
    Some(file)
}

/// The JSON-lines checks every agent output file must pass.
pub fn well_formed(o: &mut Outcome, name: &str, f: &JsonLines<Item>) {
    // events.jsonl keeps its checks' historical names.
    let what = |w: &str| {
        if name == "events.jsonl" {
            w.to_string()
        } else {
            format!("{name}: {w}")
        }
    };
    o.check(
        format!("{name} is JSON lines"),
        f.bad.is_empty(),
        format!(
            "{} events, {} bad lines{}",
            f.items.len(),
            f.bad.len(),
            f.first_bad()
                .map_or(String::new(), |b| format!(", first: {b}"))
        ),
    );
    let (kernel, dups) = kernel_seq_duplicates(&f.items);
    o.check(
        what("kernel events have unique seq numbers"),
        dups.is_empty(),
        format!("{kernel} kernel events, duplicated seq: {dups:?}"),
    );
    let backwards = seq_backwards(&f.items);
    o.check(
        what("events are written in seq order"),
        backwards.is_none(),
        backwards.map_or("ok".into(), |(a, b)| format!("seq {b} written after {a}")),
    );
}

/// Number of kernel events (not derived, not agent records), and the seq numbers more than one
/// of them has.
pub fn kernel_seq_duplicates(items: &[Item]) -> (usize, Vec<u64>) {
    let mut seqs: Vec<u64> = items.iter().filter_map(|i| Some(i.kernel()?.seq)).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    let mut dups: Vec<u64> = seqs
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    (n, dups)
}

/// The first place where the file's seq goes down: (previous, next). Agent records carry no
/// seq; derived items carry their cause's.
pub fn seq_backwards(items: &[Item]) -> Option<(u64, u64)> {
    let mut last = 0u64;
    for s in items.iter().filter_map(Item::seq) {
        if s < last {
            return Some((last, s));
        }
        last = s;
    }
    None
}

/// The agent's own conclusion about the notification for `off`, when it emits `notification`
/// items (an addition to the kernel events).
pub fn verdict(o: &mut Outcome, items: &[&Item], off: u64, want: Verdict) {
    if !items.iter().any(|i| Kind::Notification.of(i)) {
        o.skipped
            .push("no notification events: the agent's verdict was not checked".into());
        return;
    }
    o.seq(
        &format!("agent's verdict on the notification is {:?}", want.name()),
        items,
        &[Step::new(Kind::Notification).offset(off).verdict(want)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_order_and_duplicates() {
        let f: JsonLines<Item> = JsonLines::parse(concat!(
            r#"{"seq":2,"ktime_ns":1,"cpu":0,"pid":1,"tid":1,"comm":"a","kind":"holder_put","dax_dev":"0x1","holder":"0x2"}"#,
            "\n",
            r#"{"kind":"mount_not_visible","dev":"259:0","waited_ms":1}"#,
            "\n",
            r#"{"seq":2,"ktime_ns":1,"cpu":0,"pid":1,"tid":1,"comm":"a","kind":"holder_put","dax_dev":"0x1","holder":"0x2"}"#,
            "\n",
            r#"{"seq":1,"ktime_ns":1,"cpu":0,"pid":1,"tid":1,"comm":"a","kind":"holder_put","dax_dev":"0x1","holder":"0x2"}"#,
        ));
        assert!(f.bad.is_empty(), "{:?}", f.bad);
        assert_eq!(kernel_seq_duplicates(&f.items), (3, vec![2]));
        assert_eq!(seq_backwards(&f.items), Some((2, 1)));
        let sorted: Vec<Option<u64>> = f.by_seq().iter().map(|i| i.seq()).collect();
        assert_eq!(sorted, [Some(1), Some(2), Some(2), None]);
        assert_eq!(pfn_offset(0x40001), Some(4096));
        assert_eq!(pfn_offset(0x3ffff), None);
    }
}
