//! XFS's confirmation: after being told of a record's range, XFS reports data loss for each file
//! owner it found (fserror, which the stream reads as FAN_FS_ERROR). The agent waits a moment for
//! those reports and says which of the owners GETFSMAP names XFS reported, and which it did not.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use notify_model::{
    Dev,
    fserror::{FsError, FsErrorKind},
    record::AgentRecord,
};

use crate::agent::Agent;

/// How long XFS's reports may take after the ioctl returned (they come from a kworker).
pub const CONFIRM_WAIT: Duration = Duration::from_secs(3);

/// A record XFS was told of, waiting for its reports.
#[derive(Clone, Debug)]
pub struct Awaiting {
    id: u64,
    disk: String,
    dev: Dev,
    mount_point: PathBuf,
    owners: BTreeSet<u64>,
    reported: BTreeSet<u64>,
    merged: u32,
    deadline: Instant,
}

impl Awaiting {
    pub fn new(
        id: u64,
        disk: &str,
        dev: Dev,
        mount_point: PathBuf,
        owners: impl IntoIterator<Item = u64>,
    ) -> Awaiting {
        Awaiting {
            id,
            disk: disk.to_string(),
            dev,
            mount_point,
            owners: owners.into_iter().collect(),
            reported: BTreeSet::new(),
            merged: 0,
            deadline: Instant::now() + CONFIRM_WAIT,
        }
    }

    /// Done: every owner reported, or the wait is over.
    fn done(&self, now: Instant) -> bool {
        (!self.owners.is_empty() && self.owners.is_subset(&self.reported)) || now >= self.deadline
    }

    fn record(&self) -> AgentRecord {
        AgentRecord::XfsReported {
            id: self.id,
            disk: self.disk.clone(),
            reported: self.reported.iter().copied().collect(),
            owners: self.owners.iter().copied().collect(),
            missing: self.owners.difference(&self.reported).copied().collect(),
            merged: self.merged,
        }
    }
}

impl Agent {
    /// A report of XFS's: attributed to the record that names its file as an owner.
    pub(super) fn on_fs_error(&mut self, e: &FsError) {
        if e.what != FsErrorKind::DataLost {
            return;
        }
        let Some(ino) = e.ino else {
            return;
        };
        let mine = self
            .awaiting
            .iter_mut()
            .filter(|a| a.dev == e.dev || a.mount_point == e.mount_point)
            .find(|a| a.owners.contains(&ino));
        if let Some(a) = mine {
            a.reported.insert(ino);
            a.merged += e.error_count.saturating_sub(1);
        }
    }

    /// The records whose wait is over, as what XFS reported.
    pub(super) fn confirm_due(&mut self, now: Instant) -> Vec<AgentRecord> {
        let (done, wait): (Vec<Awaiting>, Vec<Awaiting>) = std::mem::take(&mut self.awaiting)
            .into_iter()
            .partition(|a| a.done(now));
        self.awaiting = wait;
        done.iter().map(Awaiting::record).collect()
    }

    /// Whether a confirmation is pending (the agent then needs a timer).
    pub(super) fn confirming(&self) -> bool {
        !self.awaiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_owner_reported_ends_the_wait_early() {
        let mut a = Awaiting::new(1, "pmem0", Dev::new(259, 0), "/mnt".into(), [131, 132]);
        let now = Instant::now();
        assert!(!a.done(now));
        a.reported.insert(131);
        assert!(!a.done(now));
        a.reported.insert(132);
        assert!(a.done(now));
        match a.record() {
            AgentRecord::XfsReported {
                reported, missing, ..
            } => assert_eq!((reported, missing), (vec![131, 132], vec![])),
            other => panic!("{other:?}"),
        }
        // No owner named (metadata only): only the deadline ends it.
        let b = Awaiting::new(2, "pmem0", Dev::new(259, 0), "/mnt".into(), []);
        assert!(!b.done(now));
        assert!(b.done(b.deadline));
    }
}
