//! `journal_faults`: the journal lives on ext4 over a device-mapper device, which is switched
//! to the `error` target while the agent runs and back afterwards. A record stored before the
//! fault is still in the journal when its filesystem is mounted again; the notification that
//! arrived during the fault is reported as not stored (`journal_write_failed`), and either
//! stored later (a `journaled` record, and in the journal) or said LOST when the agent stopped:
//! never dropped silently.

use notify_model::{AgentRecord, Item, journal::Reason};

use crate::checks::{events::PAGE, evidence::Evidence, outcome::Outcome};

pub fn check(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    let r = &ev.results;
    for (key, what) in [
        ("mount_rc", "mount of the pmem XFS (to place the pages)"),
        ("jmkfs_rc", "mkfs.ext4 on the device-mapper device"),
        ("jmount_rc", "mount of the journal's ext4"),
        ("dm_error_rc", "switching the device to the error target"),
        ("dm_linear_rc", "switching it back"),
        (
            "jremount_rc",
            "mounting the journal's ext4 again after the fault",
        ),
    ] {
        o.fact_eq(&format!("{what} succeeded"), &r.fact::<i32>(key), 0);
    }
    let Some(items) = items else { return };
    let (Some(a), Some(b)) = (
        r.fact::<u64>("a_physoff").value,
        r.fact::<u64>("b_physoff").value,
    ) else {
        o.check(
            "script reported both pages' offsets",
            false,
            format!("{:?}", ev.results),
        );
        return;
    };
    let journaled = |off: u64| {
        items.iter().position(|i| {
            matches!(i, Item::Record(AgentRecord::Journaled { dax_offset, len, reason: Reason::NoHolder, .. })
                if *dax_offset == off && *len == PAGE)
        })
    };
    let id_of = |at: usize| match items[at] {
        Item::Record(AgentRecord::Journaled { id, .. }) => Some(*id),
        _ => None,
    };
    // 1. Before the fault: stored and acknowledged.
    let a_at = journaled(a);
    o.check(
        "before the fault: page a journaled (no holder)",
        a_at.is_some(),
        format!("no journaled record at dax offset {a:#x}"),
    );
    // 2. During it: the append fails and the record says so, naming the journal file.
    let failed = items.iter().position(|i| {
        matches!(i, Item::Record(AgentRecord::JournalWriteFailed { op, dax_offset, .. })
            if op == "append" && *dax_offset == b)
    });
    let failed_detail = failed
        .map(|f| format!("{:?}", items[f]))
        .unwrap_or_else(|| format!("no journal_write_failed for dax offset {b:#x}"));
    o.check(
        "during the fault: page b's append failed, reported as journal_write_failed naming the journal and what the agent does",
        failed.is_some_and(|f| match items[f] {
            Item::Record(AgentRecord::JournalWriteFailed { error, action, id, .. }) => {
                id.is_none() && error.contains("/jfs/journal") && !action.is_empty()
            }
            _ => false,
        }),
        failed_detail,
    );
    let b_at = journaled(b);
    o.check(
        "page b was not reported journaled before its append failed",
        match (b_at, failed) {
            (Some(j), Some(f)) => j > f,
            _ => true,
        },
        format!("journaled at {b_at:?}, failure at {failed:?}"),
    );
    // 3. After it: the journal, read from the device again, still has a; b is either stored
    //    (journaled later, and listed) or said LOST on stderr when the agent stopped.
    let listing = ev.journal("journal_end.jsonl");
    o.fact_eq(
        "`notify journal list` after the fault exited 0",
        &r.fact::<i32>("journal_end_rc"),
        0,
    );
    let listed = |id: Option<u64>| {
        id.is_some_and(|id| listing.is_some_and(|l| l.items.iter().any(|rec| rec.id == id)))
    };
    let a_id = a_at.and_then(id_of);
    o.check(
        "the record stored before the fault is in the journal after it",
        listed(a_id) && listing.is_some_and(|l| l.bad.is_empty()),
        format!(
            "id {a_id:?}; listing: {}",
            ev.text("journal_end.txt").unwrap_or("(none)")
        ),
    );
    let log = ev.text("agent.log").unwrap_or("");
    let lost_line = log
        .lines()
        .find(|l| l.contains("LOST") && l.contains(&format!("{b:#x}")));
    let b_id = b_at.and_then(id_of);
    o.check(
        "page b is accounted for: stored once the device came back, or said LOST when the agent stopped",
        listed(b_id) || (b_at.is_none() && lost_line.is_some()),
        format!(
            "journaled id {b_id:?} (listed: {}); LOST line: {lost_line:?}",
            listed(b_id)
        ),
    );
}
