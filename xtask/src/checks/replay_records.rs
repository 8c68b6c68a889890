//! The replay scenario's reading of the agent's records: `replayed` reports (owners, file
//! ranges, decisions), `enforcement` decisions, later agent runs and `notify journal list`.

use std::collections::BTreeMap;

use notify_model::{
    AgentRecord, Item,
    decision::Decision,
    journal::Status,
    record::{OwnerReport, ReplayReport},
};

use crate::checks::{
    events::{PAGE, well_formed},
    evidence::Evidence,
    outcome::Outcome,
    results::{AgentRun, AgentState, Results},
    steps::{brief, context},
};

/// A `replayed` record: its journal id and report.
pub fn replayed(i: &Item) -> Option<(u64, &ReplayReport)> {
    match i {
        Item::Record(AgentRecord::Replayed { id, report, .. }) => Some((*id, report)),
        _ => None,
    }
}

/// An `enforcement` record: its journal id and decision.
pub fn enforcement(i: &Item) -> Option<(u64, &Decision)> {
    match i {
        Item::Record(AgentRecord::Enforcement { id, decision }) => Some((*id, decision)),
        _ => None,
    }
}

/// The enforcement records of a run.
pub fn enforcements<'e>(items: &[&'e Item]) -> Vec<(u64, &'e Decision, &'e Item)> {
    items
        .iter()
        .filter_map(|i| enforcement(i).map(|(id, d)| (id, d, *i)))
        .collect()
}

/// A `replayed` record with its owners and decisions, one compact line each, for failure
/// details.
pub fn owners_brief(i: &Item) -> String {
    let Some((_, rep)) = replayed(i) else {
        return brief(i);
    };
    let owners: Vec<String> = rep.owners.iter().map(json).collect();
    let decisions: Vec<String> = rep.decisions.iter().map(json).collect();
    format!(
        "{}\n    owners: {}\n    decisions: {}",
        brief(i),
        if owners.is_empty() {
            "none".into()
        } else {
            owners.join("\n            ")
        },
        if decisions.is_empty() {
            "none".into()
        } else {
            decisions.join("\n               ")
        }
    )
}

/// The JSON form of a model value shown whole in a failure detail.
fn json<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

/// The file owners (not metadata) of a replay.
pub fn file_owners(rep: &ReplayReport) -> Vec<&OwnerReport> {
    rep.owners.iter().filter(|w| !w.metadata).collect()
}

/// The replayed record names exactly the files `inos`, each with the damaged file range
/// `[page * 4096, +4096)`, and no error.
pub fn check_file_owners(o: &mut Outcome, what: &str, i: &Item, inos: &[u64], page: u64) {
    let Some((_, rep)) = replayed(i) else {
        o.check(what, false, format!("not a replayed record: {}", brief(i)));
        return;
    };
    let got = file_owners(rep);
    let mut got_inos: Vec<Option<u64>> = got.iter().map(|g| g.ino).collect();
    got_inos.sort_unstable();
    let mut want: Vec<Option<u64>> = inos.iter().copied().map(Some).collect();
    want.sort_unstable();
    let ranges_ok = got.iter().all(|g| g.ranges == [(page * PAGE, PAGE)]);
    o.check(
        what,
        got_inos == want && ranges_ok && rep.error.is_none(),
        format!(
            "want file owners ino {inos:?} each with range [{:#x}, +4096), error null; got {}",
            page * PAGE,
            owners_brief(i)
        ),
    );
}

/// The `replayed` record with `dax_offset` `off` and its index, or a failed check showing the
/// records there are.
pub fn replayed_at<'e>(
    o: &mut Outcome,
    run: &str,
    items: &[&'e Item],
    off: u64,
    what: &str,
) -> Option<(usize, &'e Item)> {
    let hit = items
        .iter()
        .position(|i| replayed(i).is_some_and(|(_, r)| r.dax_offset == off));
    if hit.is_none() {
        let seen: Vec<String> = items
            .iter()
            .filter(|i| replayed(i).is_some())
            .map(|i| brief(i))
            .collect();
        o.check(
            format!("{run}: {what}: replayed record at dax_offset {off:#x}"),
            false,
            format!(
                "no replayed record with dax_offset {off:#x}; replayed records: {}\n  records and events at the end:{}",
                if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join("\n    ")
                },
                context(items, items.len().saturating_sub(10), 10)
            ),
        );
    }
    hit.map(|p| (p, items[p]))
}

/// One agent run after the first: present, exited as expected, output well formed; its items
/// in file order.
pub fn later_run<'e>(
    o: &mut Outcome,
    ev: &'e Evidence,
    name: &str,
    file: &str,
) -> Option<Vec<&'e Item>> {
    let run = AgentRun::read(&ev.results, name);
    if !o.fact_eq(&format!("{name} started"), &run.state, AgentState::Running) {
        return None;
    }
    o.fact_eq(&format!("{name} exited 0 on SIGINT"), &run.exit, 0);
    let Some(f) = ev.events(file) else {
        o.check(format!("{file} came back"), false, format!("no {file}"));
        return None;
    };
    well_formed(o, file, f);
    Some(f.in_order())
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Replayed => "replayed",
        Status::Closed => "closed",
    }
}

/// `notify journal list` after a run (`name`: journal_killed, journal_end): it exited 0 and its
/// JSON listing (`name.jsonl`) holds exactly the records `want` in these states.
pub fn check_journal(
    o: &mut Outcome,
    r: &Results,
    ev: &Evidence,
    name: &str,
    want: &[(u64, Status)],
) {
    o.fact_eq(
        &format!("`notify journal list` ({name}) exited 0"),
        &r.fact::<i32>(format!("{name}_rc")),
        0,
    );
    let listing = ev.journal(&format!("{name}.jsonl"));
    let table = ev.text(&format!("{name}.txt")).unwrap_or("(no table)");
    let got: BTreeMap<u64, &str> = listing
        .map(|l| {
            l.items
                .iter()
                .map(|rec| (rec.id, status_name(rec.state)))
                .collect()
        })
        .unwrap_or_default();
    let want_map: BTreeMap<u64, &str> = want.iter().map(|(i, s)| (*i, status_name(*s))).collect();
    let bad = listing.and_then(|l| l.first_bad());
    let desc: Vec<String> = want
        .iter()
        .map(|(i, s)| format!("{i} {}", status_name(*s)))
        .collect();
    o.check(
        format!("journal list ({name}): {}", desc.join(", ")),
        got == want_map && bad.is_none(),
        format!(
            "want {want_map:?}, got {got:?}{}; table:\n    {}",
            bad.map_or(String::new(), |b| format!(
                " (a line is not a journal record: {b})"
            )),
            table.trim_end().replace('\n', "\n    ")
        ),
    );
}
