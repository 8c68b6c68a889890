//! `healthmon`: XFS 7.0+ allows one health monitor per filesystem. With another client holding
//! it (`benchhelp holdmon`, a stand-in for xfs_healer) `notify doctor` names the holder and
//! `notify trace --healthmon` reports the slot held and takes nothing; with the slot free, the
//! trace holds it and streams XFS's own health records: a media error at the poisoned page's
//! sectors, and the shutdown. Before 7.0 there is no monitor, and no health record.

use notify_model::{Item, fserror::FsErrorKind, health::Health};

use crate::checks::{evidence::Evidence, outcome::Outcome, tell::xfs_can_be_told};

fn health<'a>(items: &'a [&'a Item]) -> impl Iterator<Item = &'a Health> {
    items.iter().filter_map(|i| match i {
        Item::Health(h) => Some(h),
        _ => None,
    })
}

pub fn check(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    let r = &ev.results;
    o.fact_eq("mount_rc is 0", &r.fact::<i32>("mount_rc"), 0);
    let Some(seven) = xfs_can_be_told(r) else {
        o.check(
            "the script said which kernel ran",
            false,
            r.fact::<String>("kernel").shown(),
        );
        return;
    };
    let Some(items) = items else { return };
    o.fact_eq(
        "notify doctor (monitor held elsewhere) exited 0",
        &r.fact::<i32>("doctor_held_rc"),
        0,
    );
    o.fact_eq(
        "the trace beside the holder exited 0 on SIGINT",
        &r.fact::<i32>("agent_held_exit"),
        0,
    );
    let doctor = ev.text("doctor_held.txt").unwrap_or("");
    let held_line = doctor
        .lines()
        .find(|l| l.contains("healthmon slot:") && l.contains("held by benchhelp"));
    let held: Vec<&Health> = ev
        .events("events_held.jsonl")
        .map(|f| {
            f.items
                .iter()
                .filter_map(|i| match i {
                    Item::Health(h) => Some(h),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let all: Vec<&Health> = health(items).collect();
    if !seven {
        let log = ev.text("agent_held.log").unwrap_or("");
        o.check(
            "trace --healthmon says the kernel has no health monitor",
            log.contains("healthmon: not on this kernel"),
            log.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
        );
        o.check(
            "no health record before Linux 7.0",
            held.is_empty() && all.is_empty(),
            format!("{} + {} health records", held.len(), all.len()),
        );
        o.check(
            "doctor names no monitor holder before Linux 7.0",
            held_line.is_none(),
            held_line.unwrap_or("none"),
        );
        return;
    }
    o.check(
        "doctor names the monitor's holder (benchhelp) and will not take it",
        held_line.is_some_and(|l| l.contains("will not take it")),
        held_line.map_or_else(|| doctor.to_string(), str::to_string),
    );
    let elsewhere = held.iter().find(|h| h.what == "monitor_held_elsewhere");
    o.check(
        "trace --healthmon beside a holder: monitor_held_elsewhere, naming it",
        elsewhere.is_some_and(|h| h.reasons.iter().any(|x| x.contains("benchhelp"))),
        format!("{elsewhere:?}"),
    );
    o.check(
        "trace --healthmon beside a holder read no health record of its own",
        held.iter().all(|h| h.what == "monitor_held_elsewhere"),
        format!("{:?}", held.iter().map(|h| &h.what).collect::<Vec<_>>()),
    );
    let physoff = r.fact::<u64>("h_physoff").value;
    let media = all.iter().find(|h| h.what == "media_error");
    let covers = media.is_some_and(|h| match (h.daddr, h.sectors, physoff) {
        (Some(d), Some(n), Some(p)) => (d..d + n).contains(&(p / 512)),
        _ => false,
    });
    o.check(
        "healthmon: a media error at the poisoned page's sectors",
        covers,
        format!("{media:?}, page at byte {physoff:?}"),
    );
    o.check(
        "healthmon: the shutdown",
        all.iter().any(|h| h.what == "shutdown"),
        format!("{:?}", all.iter().map(|h| &h.what).collect::<Vec<_>>()),
    );
    let ino = r.fact::<u64>("h_ino").value;
    o.check(
        "fserror: data lost for the poisoned file",
        items.iter().any(|i| match i {
            Item::FsError(e) => e.what == FsErrorKind::DataLost && e.ino == ino,
            _ => false,
        }),
        format!("ino {ino:?}"),
    );
}
