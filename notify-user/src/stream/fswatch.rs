//! Listening to XFS's own reports beside the probes: every XFS mounted when the run starts is
//! marked for FAN_FS_ERROR, and every XFS that becomes ready during it once its mount shows up
//! in the mount table. Each report is tied to the delivered notification it follows (XFS sends
//! fserror for the files it handled from a kworker, moments after `xfs_dax_notify_failure`
//! returns).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use notify_model::{Dev, Item, Verdict, fserror::FsError, health::Health};
use tokio::sync::mpsc;

use crate::{
    kernel::{channels, mountinfo},
    probe::{
        fserror::{FsErrors, ktime_ns},
        healthmon::{Monitor, OpenError},
    },
};

/// How long after the ready edge a mount may take to appear in the mount table.
const MOUNT_WAIT: Duration = Duration::from_secs(10);
/// How long after a delivered notification XFS's report of it may come.
const TIE_WINDOW_NS: u64 = 5_000_000_000;
/// How long a report is held before it is tied and handed on: XFS's report of a notification
/// can be read from fanotify before the notification's own records are read from the ring
/// buffer (seen on 7.3: the report read 39 ms after the notification's kernel time, ahead of
/// it), and the tie needs the notification first.
pub const REPORT_HOLD: Duration = Duration::from_millis(200);

pub struct FsWatch {
    pub errors: FsErrors,
    /// Health monitors held (only when asked): their records come through the channel.
    health: Option<(
        mpsc::UnboundedSender<Health>,
        mpsc::UnboundedReceiver<Health>,
    )>,
    /// The filesystems marked: (device, mount point).
    marked: Vec<(Dev, std::path::PathBuf)>,
    /// Health records read (and refusals), waiting for the listeners.
    health_read: Vec<Health>,
    /// Ready filesystems not yet visible, with the deadline to find them.
    pending: Vec<(Dev, Instant)>,
    /// The last delivered notification per block device: (seq, ktime).
    delivered: HashMap<Dev, (u64, u64)>,
    /// Reports read, waiting to be handed to the listeners.
    read: Vec<(FsError, Instant)>,
}

impl FsWatch {
    /// Marks every XFS mounted now. A filesystem that cannot be marked is logged, not fatal.
    pub fn start(errors: FsErrors) -> FsWatch {
        let mut w = FsWatch {
            errors,
            health: None,
            marked: Vec::new(),
            health_read: Vec::new(),
            pending: Vec::new(),
            delivered: HashMap::new(),
            read: Vec::new(),
        };
        if let Ok(mounts) = mountinfo::read() {
            for m in mounts.iter().filter(|m| m.fstype == "xfs" && m.root == "/") {
                w.mark(&m.mount_point, m.dev);
            }
        }
        w
    }

    /// Holds the health monitor of every XFS watched, now and from now on, where no other
    /// client holds it (opt-in: xfs_healer uses it where it runs).
    pub fn hold_health_monitors(&mut self) {
        if self.health.is_none() {
            self.health = Some(mpsc::unbounded_channel());
            for (dev, mnt) in self.marked.clone() {
                self.monitor(&mnt, dev);
            }
        }
    }

    fn monitor(&mut self, mount_point: &std::path::Path, dev: Dev) {
        let Some((tx, _)) = &self.health else {
            return;
        };
        match Monitor::open(mount_point, dev) {
            Ok(mut m) => {
                eprintln!(
                    "notify: healthmon: holding the health monitor of {} ({dev})",
                    mount_point.display()
                );
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Ok(Some(recs)) = m.read().await {
                        for r in recs {
                            if tx.send(r).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
            Err(e) => {
                let holders: Vec<String> = channels::monitor_holders(std::path::Path::new("/proc"))
                    .into_iter()
                    .filter(|h| h.dev == dev)
                    .map(|h| format!("held by {} (pid {})", h.comm, h.pid))
                    .collect();
                eprintln!(
                    "notify: healthmon: {}: {e}{}",
                    mount_point.display(),
                    if holders.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", holders.join(", "))
                    }
                );
                let mut reasons = vec![e.to_string()];
                reasons.extend(holders);
                let what = match e {
                    OpenError::Held => "monitor_held_elsewhere",
                    _ => "monitor_refused",
                };
                self.health_read.push(Health {
                    reasons,
                    ..Health::new(
                        ktime_ns(),
                        0,
                        dev,
                        mount_point.to_path_buf(),
                        "mount".into(),
                        what.into(),
                    )
                });
            }
        }
    }

    fn mark(&mut self, mount_point: &std::path::Path, dev: Dev) {
        if self.marked.iter().any(|(d, _)| *d == dev) {
            return;
        }
        match self.errors.watch(mount_point, dev) {
            Ok(()) => log::info!("fserror: watching {} ({dev})", mount_point.display()),
            Err(e) => eprintln!(
                "notify: cannot watch {} for XFS error reports: {e}",
                mount_point.display()
            ),
        }
        self.marked.push((dev, mount_point.to_path_buf()));
        self.monitor(mount_point, dev);
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
                Some(m) => {
                    let mp = m.mount_point.clone();
                    self.mark(&mp, dev);
                }
                None if mounts.iter().any(|m| m.dev == dev) => {} // not XFS
                None if now < deadline => self.pending.push((dev, deadline)),
                None => log::info!("fserror: {dev} became ready but never showed up mounted"),
            }
        }
    }

    /// When the next poll is due (a mount awaited), or a held report is to be handed on.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let poll = (!self.pending.is_empty()).then_some(Duration::from_millis(20));
        let held = self
            .read
            .iter()
            .map(|(_, at)| (*at + REPORT_HOLD).saturating_duration_since(Instant::now()))
            .min();
        match (poll, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Waits for reports and keeps them for [`FsWatch::take`]. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        let health = async {
            match &mut self.health {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            evs = self.errors.read() => {
                let now = Instant::now();
                self.read.extend(evs?.into_iter().map(|e| (e, now)));
            }
            Some(h) = health => self.health_read.push(h),
        }
        Ok(())
    }

    /// The health-monitor records read so far.
    pub fn take_health(&mut self) -> Vec<Health> {
        std::mem::take(&mut self.health_read)
    }

    /// The reports held for [`REPORT_HOLD`] by `now` (every one with `all`), each tied to the
    /// notification it follows, in the order read.
    pub fn take(&mut self, now: Instant, all: bool) -> Vec<FsError> {
        let (due, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.read)
            .into_iter()
            .partition(|(_, at)| all || now.saturating_duration_since(*at) >= REPORT_HOLD);
        self.read = held;
        let mut out: Vec<FsError> = due.into_iter().map(|(e, _)| e).collect();
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
