//! `ext4`: ext4 on pmem (-o dax) never registers as the dax holder. A poisoned page of one of
//! its files is a no-holder notification; the agent journals it (identified by its pfn: there
//! is no holder to name the device) and closes the record at once with the reason, so nothing
//! waits forever for an XFS that will never come.

use notify_model::{
    AgentRecord, Item, Verdict,
    journal::{Reason, Status},
};

use crate::checks::{
    events::PAGE, evidence::Evidence, outcome::Outcome, replay_records::check_journal,
};

pub fn check(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    let r = &ev.results;
    o.fact_eq("mkfs.ext4 succeeded", &r.fact::<i32>("mkfs_rc"), 0);
    o.fact_eq(
        "mount -t ext4 -o dax succeeded",
        &r.fact::<i32>("mount_rc"),
        0,
    );
    let Some(items) = items else { return };
    let Some(off) = r.fact::<u64>("e_physoff").value else {
        o.check(
            "script reported the page's offset",
            false,
            r.fact::<u64>("e_physoff").shown(),
        );
        return;
    };
    let verdict = items.iter().find_map(|i| match i {
        Item::Notification(n) if n.data.offset == off => Some(n.data.verdict),
        _ => None,
    });
    o.check(
        "the notification for the ext4 page has no holder",
        verdict == Some(Verdict::NoHolder),
        format!("{verdict:?}"),
    );
    let id = items.iter().find_map(|i| match i {
        Item::Record(AgentRecord::Journaled {
            id,
            reason: Reason::NoHolder,
            dax_offset,
            len,
            ..
        }) if *dax_offset == off && *len == PAGE => Some(*id),
        _ => None,
    });
    o.check("journaled (no holder)", id.is_some(), format!("{id:?}"));
    let Some(id) = id else { return };
    let closed = items.iter().find_map(|i| match i {
        Item::Record(AgentRecord::Closed { id: c, why, .. }) if *c == id => Some(why.clone()),
        _ => None,
    });
    o.check(
        "closed at once: ext4 never registers as the dax holder",
        closed.as_deref().is_some_and(|w| w.contains("ext4")),
        format!("{closed:?}"),
    );
    let replayed = items
        .iter()
        .any(|i| matches!(i, Item::Record(AgentRecord::Replayed { .. })));
    o.check("nothing was replayed", !replayed, "");
    check_journal(o, r, ev, "journal_end", &[(id, Status::Closed)]);
}
