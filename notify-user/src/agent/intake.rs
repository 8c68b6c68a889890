//! What enters the journal: every notification the kernel left for userspace (identified to its
//! pmem disk and namespace), and every range of a pmem disk's bad-block list no record covers.
//! The poison list is the source of truth: records are keyed by the namespace and the offset on
//! its disk, never by pfn.

use std::path::Path;

use notify_model::{
    Derived, DevFrom, Item, Notification, State, Verdict,
    journal::{Damage, DaxDevice, Reason},
    record::{AgentRecord, IdentifiedBy, NdctlNames},
};

use crate::{
    agent::{Agent, badblocks, journal},
    kernel::pmem::{self, PmemDisk},
};

/// The damaged range of `disk` as a journal record's payload.
fn damage(disk: &PmemDisk, dax_offset: u64, len: u64, reason: Reason) -> Damage {
    Damage {
        dax: DaxDevice {
            name: disk.name.clone(),
            major: disk.dev.major(),
            minor: disk.dev.minor(),
        },
        dax_offset,
        len,
        mf_flags: 0,
        kernel_seq: 0,
        ktime_ns: 0,
        wall_ns: journal::now_ns(),
        reason,
        namespace: disk.namespace.as_ref().map(|n| n.identity()),
    }
}

/// Which pmem disk a notification is about, and how we know: its block device as the stream
/// attributed it, else the pfn of the memory failure that raised it.
fn identify(disks: &[PmemDisk], n: &Notification) -> Option<(PmemDisk, IdentifiedBy)> {
    if n.dev.is_known()
        && let Some(d) = pmem::disk_of(Path::new("/sys/dev/block"), disks, n.dev)
    {
        let how = match n.dev_from {
            Some(DevFrom::EarlierRegistration) => IdentifiedBy::EarlierRegistration,
            _ => IdentifiedBy::HolderRegistration,
        };
        return Some((d, how));
    }
    if let Some(pfn) = n.pfn
        && let Some(d) = pmem::by_pfn(disks, pfn)
    {
        return Some((d.clone(), IdentifiedBy::MemoryFailurePfn));
    }
    None
}

impl Agent {
    /// A device going away: said, never journaled. The disk may be gone from sysfs already
    /// (the unbind goes on while the event travels): the disks seen earlier name it.
    pub(super) fn removal(&mut self, item: &Derived<Notification>) -> AgentRecord {
        let n = &item.data;
        self.scan_disks();
        AgentRecord::DeviceRemoval {
            dax_offset: n.offset,
            len: n.len,
            mf_flags: n.mf_flags,
            disk: identify(&self.seen_disks, n).map(|(d, _)| d.name),
        }
    }

    /// Journals a notification the kernel dropped (fsynced before anything else is done):
    /// stored already by the batch's group commit ([`Agent::stage`]), else now on its own.
    pub(super) fn journal_notification(&mut self, item: &Derived<Notification>) -> AgentRecord {
        if let Some(i) = self.staged.iter().position(|(k, _)| *k == key(item)) {
            return self.staged.remove(i).1;
        }
        let disks = self.scan_disks();
        match self.plan(&disks, item) {
            Plan::Done(r) => r,
            Plan::Store(u) => self.store(vec![u]).pop().expect("one record, one result"),
        }
    }

    /// Group commit for a batch of items: every dropped notification in it that needs a new
    /// record is stored with one write and one fdatasync before any item of the batch is
    /// handled, so each `journaled` record (the acknowledgement) follows the flush that made
    /// it durable. Repeats and unidentified ones are left to their turn.
    pub(super) fn stage(&mut self, items: &[Item]) {
        self.staged.clear();
        if !items.iter().any(is_dropped) {
            return;
        }
        let disks = self.scan_disks();
        self.stage_with(&disks, items);
    }

    /// [`Agent::stage`] against the pmem disks `disks`.
    fn stage_with(&mut self, disks: &[PmemDisk], items: &[Item]) {
        let notes: Vec<&Derived<Notification>> = items
            .iter()
            .filter_map(|i| match i {
                Item::Notification(n) if n.data.verdict.needs_replay() => Some(n),
                _ => None,
            })
            .collect();
        let mut keys = Vec::new();
        let mut batch: Vec<Unstored> = Vec::new();
        for n in notes {
            if let Plan::Store(u) = self.plan(disks, n)
                && !batch.iter().any(|b| b.same_range(&u.damage))
            {
                keys.push(key(n));
                batch.push(u);
            }
        }
        let records = self.store(batch);
        self.staged = keys.into_iter().zip(records).collect();
    }

    /// What a notification needs: a new record, or nothing stored (its disk is unknown, or the
    /// same range is pending already).
    fn plan(&self, disks: &[PmemDisk], item: &Derived<Notification>) -> Plan {
        let n = &item.data;
        let reason = match n.verdict {
            Verdict::NoHolder => Reason::NoHolder,
            _ if n.state == Some(State::Failed) => Reason::MountFailed,
            _ => Reason::Premature,
        };
        let Some((disk, how)) = identify(disks, n) else {
            return Plan::Done(AgentRecord::Unidentified {
                dax_offset: n.offset,
                len: n.len,
                why: "no holder registration, no earlier registration of this dax device and \
                      no memory_failure pfn on a known pmem disk"
                    .into(),
            });
        };
        // The same range already waiting: one replay covers both.
        if let Some(r) = self.journal.pending().iter().find(|r| {
            r.damage.dax.name == disk.name
                && r.damage.dax_offset == n.offset
                && r.damage.len == n.len
        }) {
            return Plan::Done(AgentRecord::Journaled {
                id: r.id,
                reason,
                ndctl: disk.ndctl(),
                disk: disk.name,
                dax_offset: n.offset,
                len: n.len,
                identified_by: IdentifiedBy::DuplicateOfPending,
            });
        }
        Plan::Store(Unstored {
            damage: Damage {
                mf_flags: n.mf_flags,
                kernel_seq: n.exit_seq,
                ktime_ns: item.at.ktime_ns,
                ..damage(&disk, n.offset, n.len, reason)
            },
            how,
            ndctl: disk.ndctl(),
        })
    }

    /// Stores `batch` with one flush: a `journaled` record for each once it is durable, or a
    /// `journal_write_failed` for each when it is not (they are then held for [`retry`]).
    ///
    /// [`retry`]: Agent::retry_unstored
    fn store(&mut self, batch: Vec<Unstored>) -> Vec<AgentRecord> {
        if batch.is_empty() {
            return vec![];
        }
        match self
            .journal
            .append_batch(batch.iter().map(|u| u.damage.clone()).collect())
        {
            Ok(ids) => ids
                .into_iter()
                .zip(batch)
                .map(|(id, u)| u.journaled(id))
                .collect(),
            Err(e) => {
                eprintln!(
                    "notify: {} notification(s) NOT stored: {e}. {}",
                    batch.len(),
                    RETRY
                );
                let mut out = Vec::new();
                for u in batch {
                    let held = self.unstored.len() < MAX_UNSTORED;
                    out.push(AgentRecord::JournalWriteFailed {
                        op: "append".into(),
                        id: None,
                        disk: u.damage.dax.name.clone(),
                        dax_offset: u.damage.dax_offset,
                        len: u.damage.len,
                        error: e.to_string(),
                        action: if held {
                            RETRY.into()
                        } else {
                            format!(
                                "not held: {MAX_UNSTORED} unstored notifications are held \
                                 already; this one is lost unless the kernel reports the range \
                                 again (it is in the pmem bad-block list when the platform \
                                 lists it there, which the agent reads again)"
                            )
                        },
                    });
                    if held {
                        self.unstored.push(u);
                    }
                }
                out
            }
        }
    }

    /// Tries again to store what a failed write left in memory (at most once per
    /// [`RETRY_EVERY`]): `journaled` records once stored; nothing new while it still fails (the
    /// failure was said once).
    pub(super) fn retry_unstored(&mut self, now: std::time::Instant) -> Vec<AgentRecord> {
        if self.unstored.is_empty() || self.next_retry.is_some_and(|t| now < t) {
            return vec![];
        }
        self.next_retry = Some(now + RETRY_EVERY);
        let held = std::mem::take(&mut self.unstored);
        match self
            .journal
            .append_batch(held.iter().map(|u| u.damage.clone()).collect())
        {
            Ok(ids) => {
                eprintln!(
                    "notify: journal writable again: {} held notification(s) stored",
                    ids.len()
                );
                ids.into_iter()
                    .zip(held)
                    .map(|(id, u)| u.journaled(id))
                    .collect()
            }
            Err(_) => {
                self.unstored = held;
                vec![]
            }
        }
    }

    /// The agent stops: one last write of what failed writes left in memory; what still
    /// cannot be stored is named on stderr, range by range, since nothing else will keep it.
    pub(super) fn give_up_unstored(&mut self) {
        self.next_retry = None;
        let stored = self.retry_unstored(std::time::Instant::now());
        if !stored.is_empty() {
            eprintln!(
                "notify: {} held notification(s) stored on the way out",
                stored.len()
            );
        }
        for u in &self.unstored {
            eprintln!(
                "notify: LOST (never stored in the journal): {} dax offset {:#x} len {:#x} ({:?}); \
                 to see whom it hits: notify resolve --device /dev/{} --offset {:#x} --len {:#x}",
                u.damage.dax.name,
                u.damage.dax_offset,
                u.damage.len,
                u.damage.reason,
                u.damage.dax.name,
                u.damage.dax_offset,
                u.damage.len,
            );
        }
    }

    /// The pmem driver's bad-block list is the poison list (machine checks, address range
    /// scrubs, and the lab's emulation of them list ranges there): ranges in it that no journal
    /// record covers are journaled (one flush for all) so the replay that follows handles them
    /// too.
    pub(super) fn reconcile_badblocks(&mut self, disk: &PmemDisk) -> Vec<AgentRecord> {
        match badblocks::read(&disk.name) {
            Ok(bad) => self.journal_bad_ranges(disk, &bad),
            Err(_) => vec![],
        }
    }

    /// Journals the ranges of `bad` (`disk`'s bad-block list) that no record covers and no
    /// failed write holds, with one flush for all: `journaled` records once stored, or
    /// `journal_write_failed` (and held for the retry) when the write fails.
    pub fn journal_bad_ranges(
        &mut self,
        disk: &PmemDisk,
        bad: &[badblocks::ByteRange],
    ) -> Vec<AgentRecord> {
        let held = self.unstored.iter().map(|u| &u.damage);
        let covered: Vec<badblocks::ByteRange> = self
            .journal
            .list()
            .into_iter()
            .map(|r| &r.damage)
            .chain(held)
            .filter(|d| d.dax.name == disk.name)
            .map(|d| badblocks::ByteRange {
                start: d.dax_offset,
                len: d.len,
            })
            .collect();
        let batch = badblocks::subtract(bad, &covered)
            .into_iter()
            .map(|r| Unstored {
                damage: damage(disk, r.start, r.len, Reason::Badblocks),
                how: IdentifiedBy::BadblocksList,
                ndctl: disk.ndctl(),
            })
            .collect();
        self.store(batch)
    }
}

/// What the agent does with a notification it could not store.
const RETRY: &str = "held in memory and written again at every batch and tick (at most once a \
                     second) until the journal takes it, then reported as journaled and \
                     replayed; lost if the agent stops before that. Free space on, or repair, \
                     the journal's filesystem";
/// How many unstored notifications are held at most (a journal that never comes back must not
/// grow the agent without bound).
pub(super) const MAX_UNSTORED: usize = 4096;
/// How often held notifications are written again.
pub(super) const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A notification on its way into the journal (held in memory while writing fails).
pub(super) struct Unstored {
    damage: Damage,
    how: IdentifiedBy,
    /// The disk's ndctl names, for its `journaled` record.
    ndctl: NdctlNames,
}

impl Unstored {
    fn same_range(&self, d: &Damage) -> bool {
        self.damage.dax.name == d.dax.name
            && self.damage.dax_offset == d.dax_offset
            && self.damage.len == d.len
    }

    fn journaled(self, id: u64) -> AgentRecord {
        AgentRecord::Journaled {
            id,
            reason: self.damage.reason,
            disk: self.damage.dax.name,
            ndctl: self.ndctl,
            dax_offset: self.damage.dax_offset,
            len: self.damage.len,
            identified_by: self.how,
        }
    }
}

enum Plan {
    Done(AgentRecord),
    Store(Unstored),
}

/// A notification the kernel left for userspace (what gets journaled).
fn is_dropped(i: &Item) -> bool {
    matches!(i, Item::Notification(n) if n.data.verdict.needs_replay())
}

/// Which notification a staged result belongs to: its kernel sequence number and range.
pub(super) type Key = (u64, u64, u64);

fn key(item: &Derived<Notification>) -> Key {
    (item.data.exit_seq, item.data.offset, item.data.len)
}

/// The `journal_write_failed` record of a state change that could not be stored.
pub(super) fn write_failed(
    op: &str,
    r: &notify_model::journal::Record,
    e: &journal::JournalError,
    action: &str,
) -> AgentRecord {
    eprintln!(
        "notify: journal: {op} of record {} NOT stored: {e}. {action}",
        r.id
    );
    AgentRecord::JournalWriteFailed {
        op: op.into(),
        id: Some(r.id),
        disk: r.damage.dax.name.clone(),
        dax_offset: r.damage.dax_offset,
        len: r.damage.len,
        error: e.to_string(),
        action: action.into(),
    }
}

#[cfg(test)]
mod tests {
    use notify_model::{Dev, event::Header};

    use super::*;

    fn dropped(seq: u64, offset: u64, dev: Dev) -> Item {
        Item::Notification(Derived {
            at: Header {
                seq,
                ktime_ns: seq,
                cpu: 0,
                pid: 1,
                tid: 1,
                comm: "mount".into(),
            },
            data: Notification {
                dax_dev: 1,
                holder: 2,
                dev,
                dev_from: None,
                pfn: None,
                start_off: 0,
                offset,
                len: 4096,
                mf_flags: 0x20,
                ret: -5,
                xfs_ret: Some(-5),
                readiness: None,
                state: Some(State::Mounting),
                verdict: Verdict::Premature,
                enter_seq: None,
                exit_seq: seq,
                kills: vec![],
            },
        })
    }

    #[test]
    fn a_batch_is_stored_before_its_first_item_and_acknowledged_in_order() {
        let dir = std::env::temp_dir().join(format!("notify-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("journal");
        let mut agent = Agent::for_test(path.clone());
        let dev = Dev(259 << 20 | 99);
        let disk = PmemDisk {
            name: "pmem-notify-test".into(),
            dev,
            phys_start: None,
            size: 1 << 30,
            namespace: None,
        };
        let items = vec![
            dropped(10, 0x1000, dev),
            Item::Record(AgentRecord::MountNotVisible { dev, waited_ms: 1 }),
            dropped(11, 0x3000, dev),
            dropped(12, 0x5000, dev),
        ];
        agent.stage_with(std::slice::from_ref(&disk), &items);
        // Stored (in the file, as another reader sees it) before any item is handled.
        let snap = journal::snapshot(&path).unwrap();
        let seqs: Vec<u64> = snap.records.iter().map(|r| r.damage.kernel_seq).collect();
        assert_eq!(seqs, [10, 11, 12]);
        // Each acknowledged in its turn, with the id the flush gave it, and not stored again.
        let out: Vec<AgentRecord> = items.iter().flat_map(|i| agent.on_item(i)).collect();
        let acks: Vec<(u64, u64)> = out
            .iter()
            .map(|r| match r {
                AgentRecord::Journaled {
                    id,
                    dax_offset,
                    identified_by: IdentifiedBy::HolderRegistration,
                    ..
                } => (*id, *dax_offset),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(acks, [(1, 0x1000), (2, 0x3000), (3, 0x5000)]);
        assert_eq!(agent.journal.list().len(), 3);
        assert!(agent.staged.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
