//! What enters the journal: every notification the kernel left for userspace (identified to its
//! pmem disk and namespace), and every range of a pmem disk's bad-block list no record covers.
//! The poison list is the source of truth: records are keyed by the namespace and the offset on
//! its disk, never by pfn.

use std::path::Path;

use notify_model::{
    Derived, DevFrom, Notification, State, Verdict,
    journal::{Damage, DaxDevice, Reason},
    record::{AgentRecord, IdentifiedBy},
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

    /// Journals a notification the kernel dropped (fsynced before anything else is done).
    pub(super) fn journal_notification(&mut self, item: &Derived<Notification>) -> AgentRecord {
        let n = &item.data;
        let reason = match n.verdict {
            Verdict::NoHolder => Reason::NoHolder,
            _ if n.state == Some(State::Failed) => Reason::MountFailed,
            _ => Reason::Premature,
        };
        let disks = self.scan_disks();
        let Some((disk, how)) = identify(&disks, n) else {
            return AgentRecord::Unidentified {
                dax_offset: n.offset,
                len: n.len,
                why: "no holder registration, no earlier registration of this dax device and \
                      no memory_failure pfn on a known pmem disk"
                    .into(),
            };
        };
        // The same range already waiting: one replay covers both.
        if let Some(r) = self.journal.pending().iter().find(|r| {
            r.damage.dax.name == disk.name
                && r.damage.dax_offset == n.offset
                && r.damage.len == n.len
        }) {
            return AgentRecord::Journaled {
                id: r.id,
                reason,
                ndctl: disk.ndctl(),
                disk: disk.name,
                dax_offset: n.offset,
                len: n.len,
                identified_by: IdentifiedBy::DuplicateOfPending,
            };
        }
        let rec = Damage {
            mf_flags: n.mf_flags,
            kernel_seq: n.exit_seq,
            ktime_ns: item.at.ktime_ns,
            ..damage(&disk, n.offset, n.len, reason)
        };
        match self.journal.append(rec) {
            Ok(id) => AgentRecord::Journaled {
                id,
                reason,
                ndctl: disk.ndctl(),
                disk: disk.name,
                dax_offset: n.offset,
                len: n.len,
                identified_by: how,
            },
            Err(e) => AgentRecord::Unidentified {
                dax_offset: n.offset,
                len: n.len,
                why: format!("journal append failed: {e}"),
            },
        }
    }

    /// The pmem driver's bad-block list is the poison list (machine checks, address range
    /// scrubs, and the lab's emulation of them list ranges there): ranges in it that no journal
    /// record covers are journaled so the replay that follows handles them too.
    pub(super) fn reconcile_badblocks(&mut self, disk: &PmemDisk) -> Vec<AgentRecord> {
        let Ok(bad) = badblocks::read(&disk.name) else {
            return vec![];
        };
        let covered: Vec<badblocks::ByteRange> = self
            .journal
            .list()
            .iter()
            .filter(|r| r.damage.dax.name == disk.name)
            .map(|r| badblocks::ByteRange {
                start: r.damage.dax_offset,
                len: r.damage.len,
            })
            .collect();
        let mut out = Vec::new();
        for r in badblocks::subtract(&bad, &covered) {
            match self
                .journal
                .append(damage(disk, r.start, r.len, Reason::Badblocks))
            {
                Ok(id) => out.push(AgentRecord::Journaled {
                    id,
                    reason: Reason::Badblocks,
                    disk: disk.name.clone(),
                    ndctl: disk.ndctl(),
                    dax_offset: r.start,
                    len: r.len,
                    identified_by: IdentifiedBy::BadblocksList,
                }),
                Err(e) => log::error!("journal append: {e}"),
            }
        }
        out
    }
}
