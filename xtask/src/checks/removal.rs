//! `removal`: unbinding the pmem namespace under a mounted XFS. The kernel tells the holder the
//! whole device is going away (6.12+: `MF_MEM_PRE_REMOVE`; 6.1: the same range, flags 0). It is
//! not poison: the notification's verdict is `removal`, the agent says `device_removal` and
//! journals nothing. Binding the namespace again brings pmem0 back.

use notify_model::{AgentRecord, EventData, Item, Verdict};

use crate::checks::{evidence::Evidence, outcome::Outcome, replay_records::check_journal};

/// MF_MEM_PRE_REMOVE.
const MF_MEM_PRE_REMOVE: u32 = 0x80;

pub fn check(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    let r = &ev.results;
    o.fact_eq("mount succeeded", &r.fact::<i32>("mount_rc"), 0);
    if r.has("unbind_hung") {
        hung(o, ev, items);
        return;
    }
    o.fact_eq(
        "unbinding the namespace succeeded",
        &r.fact::<i32>("unbind_rc"),
        0,
    );
    o.fact_eq("pmem0 went away", &r.fact::<bool>("pmem_gone"), true);
    o.fact_eq(
        "binding it again brought pmem0 back",
        &r.fact::<bool>("pmem_back"),
        true,
    );
    let Some(items) = items else { return };
    let removal = items.iter().find_map(|i| match i {
        Item::Notification(n) if n.data.verdict == Verdict::Removal => Some(n),
        _ => None,
    });
    o.check(
        "a notification over the whole device with verdict removal",
        removal.is_some_and(|n| n.data.offset == 0 && n.data.len == u64::MAX),
        format!(
            "{:?}",
            removal.map(|n| (n.data.offset, n.data.len, n.data.mf_flags))
        ),
    );
    let said = items.iter().find_map(|i| match i {
        Item::Record(AgentRecord::DeviceRemoval { disk, .. }) => Some(disk.clone()),
        _ => None,
    });
    o.check(
        "the agent said device_removal for pmem0",
        said.as_ref().is_some_and(|d| d.as_deref() == Some("pmem0")),
        format!("{said:?}"),
    );
    nothing_journaled(o, items);
    check_journal(o, r, ev, "journal_end", &[]);
}

/// The kernel never finished the unbind (seen on 7.3.4 under TCG: XFS said "Device is about to
/// be removed!" and the unbind did not return in 60 s, agent or not; it holds the namespace's
/// device lock, so every reader of its sysfs attributes sleeps). What notify must still do:
/// see the notice reach the holder, journal nothing, and not stop with the kernel.
fn hung(o: &mut Outcome, ev: &Evidence, items: Option<&[&Item]>) {
    o.dmesg(&ev.dmesg, "Device is about to be removed!", true);
    let Some(items) = items else { return };
    let notice = items.iter().find_map(|i| match &i.kernel()?.data {
        EventData::NotifyEnter {
            offset,
            len,
            mf_flags,
            ..
        } if *mf_flags & MF_MEM_PRE_REMOVE != 0 => Some((*offset, *len)),
        _ => None,
    });
    o.check(
        "the probe saw MF_MEM_PRE_REMOVE over the whole device reach the holder",
        notice == Some((0, u64::MAX)),
        format!("{notice:?}"),
    );
    nothing_journaled(o, items);
    let log = ev.text("agent.log").unwrap_or("");
    o.check(
        "the agent went on without the namespace's sysfs (it did not sleep with the unbind)",
        log.contains("pmem sysfs did not answer"),
        log.lines().rev().take(3).collect::<Vec<_>>().join(" | "),
    );
}

/// A removal is never journaled: no `journaled` record in the stream.
fn nothing_journaled(o: &mut Outcome, items: &[&Item]) {
    let journaled = items
        .iter()
        .filter(|i| matches!(i, Item::Record(AgentRecord::Journaled { .. })))
        .count();
    o.check(
        "nothing was journaled",
        journaled == 0,
        format!("{journaled} journaled"),
    );
}
