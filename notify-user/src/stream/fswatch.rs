//! Listening to XFS's own reports beside the probes: every XFS mounted when the run starts is
//! marked for FAN_FS_ERROR, and every XFS that becomes ready during it once its mount shows up
//! in the mount table. Each report is tied to the delivered notification it follows (XFS sends
//! fserror for the files it handled from a kworker, moments after `xfs_dax_notify_failure`
//! returns).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use notify_model::{Dev, Item, Verdict, fserror::FsError};

use crate::{kernel::mountinfo, probe::fserror::FsErrors};

/// How long after the ready edge a mount may take to appear in the mount table.
const MOUNT_WAIT: Duration = Duration::from_secs(10);
/// How long after a delivered notification XFS's report of it may come.
const TIE_WINDOW_NS: u64 = 5_000_000_000;

pub struct FsWatch {
    pub errors: FsErrors,
    /// Ready filesystems not yet visible, with the deadline to find them.
    pending: Vec<(Dev, Instant)>,
    /// The last delivered notification per block device: (seq, ktime).
    delivered: HashMap<Dev, (u64, u64)>,
    /// Reports read, waiting to be handed to the listeners.
    read: Vec<FsError>,
}

impl FsWatch {
    /// Marks every XFS mounted now. A filesystem that cannot be marked is logged, not fatal.
    pub fn start(mut errors: FsErrors) -> FsWatch {
        if let Ok(mounts) = mountinfo::read() {
            for m in mounts.iter().filter(|m| m.fstype == "xfs" && m.root == "/") {
                mark(&mut errors, &m.mount_point, m.dev);
            }
        }
        FsWatch {
            errors,
            pending: Vec::new(),
            delivered: HashMap::new(),
            read: Vec::new(),
        }
    }

    /// Learns from the stream: ready edges (a mount to mark) and delivered notifications (what
    /// a report may follow).
    pub fn on_item(&mut self, item: &Item) {
        match item {
            Item::Kernel(ev) => {
                if let notify_model::EventData::GetTreeExit(s) = &ev.data
                    && s.ret == 0
                    && s.dev.is_known()
                {
                    self.pending.push((s.dev, Instant::now() + MOUNT_WAIT));
                }
            }
            Item::Notification(n)
                if n.data.verdict == Verdict::Delivered && n.data.dev.is_known() =>
            {
                self.delivered.insert(n.data.dev, (n.at.seq, n.at.ktime_ns));
            }
            _ => {}
        }
    }

    /// Marks the ready filesystems that are now visible (gives up on those past the deadline).
    pub fn poll(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let mounts = mountinfo::read().unwrap_or_default();
        let pending = std::mem::take(&mut self.pending);
        for (dev, deadline) in pending {
            match mountinfo::find(&mounts, dev).filter(|m| m.fstype == "xfs") {
                Some(m) => mark(&mut self.errors, &m.mount_point, dev),
                None if mounts.iter().any(|m| m.dev == dev) => {} // not XFS
                None if now < deadline => self.pending.push((dev, deadline)),
                None => log::info!("fserror: {dev} became ready but never showed up mounted"),
            }
        }
    }

    /// When the next poll is due, if a mount is awaited.
    pub fn next_wakeup(&self) -> Option<Duration> {
        (!self.pending.is_empty()).then_some(Duration::from_millis(20))
    }

    /// Waits for reports and keeps them for [`FsWatch::take`]. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        let evs = self.errors.read().await?;
        self.read.extend(evs);
        Ok(())
    }

    /// The reports read so far, each tied to the notification it follows.
    pub fn take(&mut self) -> Vec<FsError> {
        let mut out = std::mem::take(&mut self.read);
        for e in &mut out {
            e.notification_seq = self
                .delivered
                .get(&e.dev)
                .filter(|(_, t)| e.ktime_ns.saturating_sub(*t) <= TIE_WINDOW_NS)
                .map(|(seq, _)| *seq);
        }
        out
    }
}

fn mark(errors: &mut FsErrors, mount_point: &std::path::Path, dev: Dev) {
    match errors.watch(mount_point, dev) {
        Ok(()) => log::info!("fserror: watching {} ({dev})", mount_point.display()),
        Err(e) => eprintln!(
            "notify: cannot watch {} for XFS error reports: {e}",
            mount_point.display()
        ),
    }
}
