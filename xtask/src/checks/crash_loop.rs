//! `crash_loop` (opt-in): the agent killed with SIGKILL at random points, CRASH_N times while
//! notifications arrive and CRASH_N times while its start-up replay signals the mappers. After
//! every kill the script listed the journal; these checks read those listings (as facts) and
//! the end state:
//! - the journal reads after every kill;
//! - no record the agent acknowledged (a `journaled` line) is ever missing from a later
//!   listing, and no record is listed twice;
//! - no process is signalled twice, none but a victim is signalled, every bystander is alive
//!   at the end, and every victim whose page was acknowledged died of SIGBUS.

use std::collections::{BTreeMap, BTreeSet};

use notify_model::journal::Status;

use crate::checks::{evidence::Evidence, outcome::Outcome, results::Results};

pub const SCENARIO: &str = "crash_loop";

/// "1,2,3" (possibly empty) as numbers; None when the fact is absent.
fn list(r: &Results, key: &str) -> Option<Vec<u64>> {
    let raw = r.fact::<String>(key).raw?;
    Some(
        raw.split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
    )
}

pub fn check(o: &mut Outcome, ev: &Evidence, require_agent: bool) {
    let r = &ev.results;
    if r.has("agent") {
        if require_agent {
            o.check(
                "agent present",
                false,
                "the notify binary was not in the guest",
            );
        } else {
            o.skipped.push("agent missing: no crash loop".into());
        }
        return;
    }
    o.fact_eq("mkfs.xfs succeeded", &r.fact::<i32>("mkfs_rc"), 0);
    o.fact_eq("the first mount succeeded", &r.fact::<i32>("mount_rc"), 0);
    o.fact_eq(
        "the mount for the replays succeeded",
        &r.fact::<i32>("mount2_rc"),
        0,
    );
    let n = r.fact::<u64>("crash_n").value.unwrap_or(0);
    let kills = r.fact::<u64>("kills").value.unwrap_or(0);
    o.check(
        "the agent was killed 2 x CRASH_N times",
        n > 0 && kills == 2 * n,
        format!("crash_n={n} kills={kills}"),
    );
    // After every kill: the journal reads, keeps every acknowledged record, lists each once.
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut unreadable = Vec::new();
    let mut lost = Vec::new();
    let mut twice = Vec::new();
    let mut by_sigkill = 0;
    for k in 1..=kills {
        if r.fact::<i32>(format!("kill_{k}_exit")).is(&137) {
            by_sigkill += 1;
        }
        if !r.fact::<i32>(format!("kill_{k}_list_rc")).is(&0) {
            unreadable.push(k);
        }
        acked.extend(list(r, &format!("kill_{k}_acked")).unwrap_or_default());
        let listed = list(r, &format!("kill_{k}_listed")).unwrap_or_default();
        let set: BTreeSet<u64> = listed.iter().copied().collect();
        if set.len() != listed.len() {
            twice.push(k);
        }
        let missing: Vec<u64> = acked.difference(&set).copied().collect();
        if !missing.is_empty() {
            lost.push(format!("kill {k}: {missing:?}"));
        }
    }
    o.check(
        "every kill was a SIGKILL of a running agent",
        kills > 0 && by_sigkill == kills,
        format!("{by_sigkill} of {kills} agents died of SIGKILL (137)"),
    );
    o.check(
        "the journal reads after every kill",
        unreadable.is_empty(),
        format!("unreadable after kills {unreadable:?}"),
    );
    o.check(
        "no acknowledged record is ever missing after a kill",
        lost.is_empty() && !acked.is_empty(),
        format!("{} acknowledged; missing: {lost:?}", acked.len()),
    );
    o.check(
        "no record is listed twice",
        twice.is_empty(),
        format!("duplicate ids after kills {twice:?}"),
    );
    // The end: every acknowledged record replayed, and the processes.
    let end = ev.journal("journal_end.jsonl");
    let states: BTreeMap<u64, Status> = end
        .map(|l| l.items.iter().map(|rec| (rec.id, rec.state)).collect())
        .unwrap_or_default();
    let not_replayed: Vec<u64> = acked
        .iter()
        .filter(|id| states.get(id) != Some(&Status::Replayed))
        .copied()
        .collect();
    o.check(
        "at the end every acknowledged record is replayed",
        end.is_some() && not_replayed.is_empty(),
        format!("not replayed: {not_replayed:?}; states: {states:?}"),
    );
    let victims = list(r, "victims").unwrap_or_default();
    let bystanders = list(r, "bystanders").unwrap_or_default();
    let mut signals: BTreeMap<u64, usize> = BTreeMap::new();
    for k in 1..=kills {
        for p in list(r, &format!("kill_{k}_signalled")).unwrap_or_default() {
            *signals.entry(p).or_default() += 1;
        }
    }
    for p in list(r, "last_signalled").unwrap_or_default() {
        *signals.entry(p).or_default() += 1;
    }
    let double: Vec<&u64> = signals
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(p, _)| p)
        .collect();
    o.check(
        "no process was signalled twice",
        double.is_empty(),
        format!("signalled more than once: {double:?}"),
    );
    let wrong: Vec<&u64> = signals.keys().filter(|p| !victims.contains(p)).collect();
    o.check(
        "only victims were signalled (never a bystander or another process)",
        wrong.is_empty() && !signals.is_empty(),
        format!("{} signalled; not victims: {wrong:?}", signals.len()),
    );
    let alive = list(r, "alive_at_end").unwrap_or_default();
    let dead_bystanders: Vec<&u64> = bystanders.iter().filter(|p| !alive.contains(p)).collect();
    o.check(
        "every bystander is alive at the end",
        !bystanders.is_empty() && dead_bystanders.is_empty(),
        format!("dead bystanders: {dead_bystanders:?}"),
    );
    // Victim i maps page 2 of file i; its record is the one at file i's physical offset.
    let sigbus = list(r, "died_of_sigbus").unwrap_or_default();
    let offsets: BTreeMap<u64, u64> = end
        .map(|l| {
            l.items
                .iter()
                .map(|rec| (rec.damage.dax_offset, rec.id))
                .collect()
        })
        .unwrap_or_default();
    let mut unsignalled = Vec::new();
    for (i, v) in victims.iter().enumerate() {
        let off = r.fact::<u64>(format!("f{}_physoff", i + 1)).value;
        let id = off.and_then(|o| offsets.get(&o));
        if id.is_some_and(|id| acked.contains(id)) && !sigbus.contains(v) {
            unsignalled.push(*v);
        }
    }
    o.check(
        "every victim whose page was acknowledged died of SIGBUS",
        unsignalled.is_empty() && !sigbus.is_empty(),
        format!(
            "{} died of SIGBUS; acknowledged but alive: {unsignalled:?}",
            sigbus.len()
        ),
    );
}
