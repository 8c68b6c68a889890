//! The enforcing agent: journals every notification the kernel left for userspace and every
//! bad range the pmem driver lists, tells XFS of them once its filesystem is ready (7.0+), and
//! acts on the processes mapping them by policy.
//!
//! Order of duties for a dropped notification: journal it (fsynced) before anything else, so a
//! crash at any later point loses nothing; when the filesystem becomes ready, tell XFS, resolve
//! and act; mark the record replayed only after acting, so a crash mid-replay replays again (the
//! mappers are re-scanned then, so a process that already died is not hit twice and a new
//! process that reuses its pid is only signalled if it really maps the damaged range). XFS is
//! told once per mount: the journal records each mount it was told on.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use notify_model::{
    Dev, EventData, Item, State, Verdict,
    journal::{Reason, Recovery},
    record::{AgentRecord, NdctlNames},
};

use crate::{
    enforce,
    kernel::{
        channels::Channels,
        mountinfo,
        pmem::{self, PmemDisk},
    },
    stream::{self, Listener},
};

pub mod badblocks;
pub mod journal;
pub mod redrive;
pub mod replay;
pub mod tell;
// The agent's own implementation, by duty (private: parts of this module).
mod confirm;
mod intake;
mod pass;

pub use pass::mount_id;

use journal::Journal;

/// How long after the ready edge the agent waits for the mount to show up in its mount
/// namespace (the VFS attaches it right after `vfs_get_tree` returns).
pub const MOUNT_WAIT: Duration = Duration::from_secs(10);
/// How often it looks meanwhile.
pub const MOUNT_POLL: Duration = Duration::from_millis(20);

pub struct AgentOptions {
    pub journal: PathBuf,
    pub enforce: enforce::Config,
    /// What this kernel offers (whether XFS can be told).
    pub channels: Channels,
    /// How often to read the pmem bad-block lists for ranges added since (additions are never
    /// signalled); None: only at ready edges and at start.
    pub rescan: Option<Duration>,
    /// Re-drive each pending range through `hard_offline_page` (opt-in: a testing interface,
    /// `agent::redrive`), for XFS's own kill semantics.
    pub redrive: bool,
    /// Shut a filesystem down when a replayed range hits its metadata (what XFS would have done
    /// at the time). Off by default: the default reports it with the repair advice.
    pub metadata_shutdown: bool,
}

/// Whether XFS can be told of a range on this kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tell {
    /// `XFS_IOC_VERIFY_MEDIA` with its report flag.
    Verify,
    /// Why not.
    Cannot(String),
}

pub struct Agent {
    pub journal: Journal,
    /// What opening the journal found, reported at start.
    recovery: Option<Recovery>,
    cfg: enforce::Config,
    tell: Tell,
    /// Block devices that became ready, waiting to appear in mountinfo.
    waiting: Vec<(Dev, Instant)>,
    rescan: Option<Duration>,
    next_rescan: Option<Instant>,
    redrive: bool,
    metadata_shutdown: bool,
    /// Every pmem disk seen in this run, by name (the last scan's facts): a notification that
    /// its device is going away arrives when the disk may already be gone from sysfs.
    seen_disks: Vec<PmemDisk>,
    /// A scan of pmem sysfs that did not answer in time, still running.
    stuck_scan: Option<std::thread::JoinHandle<()>>,
    /// The current batch's notifications, stored by its group commit, waiting for their turn.
    staged: Vec<(intake::Key, AgentRecord)>,
    /// Notifications a failed journal write left in memory, written again until stored.
    unstored: Vec<intake::Unstored>,
    next_retry: Option<Instant>,
}

/// How long a scan of pmem sysfs may take before the agent goes on without it. A namespace
/// being unbound holds its device lock, and reading its `mode` waits for it (seen on 7.3: an
/// unbind under a mounted XFS that had not returned after 60 s left every reader of the
/// namespace's attributes asleep in `mode_show`): the agent must not stop with it.
const SCAN_WAIT: Duration = Duration::from_secs(2);

impl Agent {
    /// Scans the pmem disks now and remembers them; when sysfs does not answer within
    /// [`SCAN_WAIT`] (or an earlier scan is still stuck), the disks seen before.
    pub(super) fn scan_disks(&mut self) -> Vec<PmemDisk> {
        if self.stuck_scan.as_ref().is_some_and(|h| !h.is_finished()) {
            return self.seen_disks.clone();
        }
        self.stuck_scan = None;
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let _ = tx.send(pmem::scan().unwrap_or_default());
        });
        let Ok(now) = rx.recv_timeout(SCAN_WAIT) else {
            log::warn!(
                "pmem sysfs did not answer within {SCAN_WAIT:?} (a namespace being removed holds \
                 its lock): going on with the disks seen before"
            );
            self.stuck_scan = Some(h);
            return self.seen_disks.clone();
        };
        for d in &now {
            match self.seen_disks.iter_mut().find(|s| s.name == d.name) {
                Some(s) => *s = d.clone(),
                None => self.seen_disks.push(d.clone()),
            }
        }
        now
    }

    pub fn open(opts: AgentOptions) -> anyhow::Result<(Agent, Recovery)> {
        if let Some(dir) = opts.journal.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create journal directory {}: {e}", dir.display())
            })?;
        }
        let (journal, recovery) = Journal::open(&opts.journal).map_err(|e| match e {
            journal::JournalError::Io { .. } => anyhow::anyhow!(
                "{e}\nnotify does not start without a journal it can write: a notification it \
                 could not store would be lost. Make the journal's filesystem writable (not \
                 full, not read-only, its device healthy) or pass --journal on one that is."
            ),
            e => e.into(),
        })?;
        let tell = if opts.channels.verify_media.is_present() {
            Tell::Verify
        } else {
            Tell::Cannot(format!(
                "XFS could not be told on this kernel ({})",
                opts.channels.verify_media.reason
            ))
        };
        Ok((
            Agent {
                journal,
                recovery: Some(recovery.clone()),
                cfg: opts.enforce,
                tell,
                waiting: Vec::new(),
                rescan: opts.rescan,
                next_rescan: opts.rescan.map(|r| Instant::now() + r),
                redrive: opts.redrive,
                metadata_shutdown: opts.metadata_shutdown,
                seen_disks: Vec::new(),
                stuck_scan: None,
                staged: Vec::new(),
                unstored: Vec::new(),
                next_retry: None,
            },
            recovery,
        ))
    }

    /// Replaces the enforcement settings (policy, allowlists, dry run): a SIGHUP reload.
    /// Applies from the next replay on.
    pub fn set_enforce(&mut self, cfg: enforce::Config) {
        let spare = std::mem::take(&mut self.cfg.spare);
        self.cfg = cfg;
        self.cfg.spare = spare;
    }

    /// The ndctl names of a disk seen by name (null when it was never seen or has none).
    pub(crate) fn ndctl_names(&self, disk: &str) -> NdctlNames {
        self.seen_disks
            .iter()
            .find(|d| d.name == disk)
            .map(PmemDisk::ndctl)
            .unwrap_or_default()
    }

    /// An agent on `journal` with the default policy and no kernel channels, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(journal: PathBuf) -> Agent {
        Agent::open(AgentOptions {
            journal,
            enforce: Default::default(),
            channels: crate::kernel::channels::Channels::detect(
                &crate::kernel::kallsyms::Kallsyms::parse(""),
            ),
            rescan: None,
            redrive: false,
            metadata_shutdown: false,
        })
        .expect("open a test agent's journal")
        .0
    }

    /// Records awaiting replay.
    pub fn pending_count(&self) -> usize {
        self.journal.pending().len()
    }

    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// Every disk with open records: its pass now. Called at start, for records journaled before
    /// a restart whose mount completed meanwhile (and for `notify journal replay`).
    pub fn replay_mounted(&mut self) -> Vec<AgentRecord> {
        let mut disks: Vec<String> = self
            .journal
            .list()
            .iter()
            .filter(|r| r.state != notify_model::journal::Status::Closed)
            .map(|r| r.damage.dax.name.clone())
            .collect();
        disks.sort();
        disks.dedup();
        let mut out = Vec::new();
        for d in disks {
            out.extend(self.replay_disk(&d));
        }
        out
    }

    /// Feeds a batch of items in order, its dropped notifications stored with one flush first
    /// (what the stream does through [`Listener::before_items`]).
    pub fn on_items(&mut self, items: &[Item]) -> Vec<AgentRecord> {
        self.stage(items);
        items.iter().flat_map(|i| Agent::on_item(self, i)).collect()
    }

    /// Feeds one item (kernel, derived or XFS's report, in order).
    pub fn on_item(&mut self, item: &Item) -> Vec<AgentRecord> {
        let mut out = Vec::new();
        match item {
            Item::Kernel(ev) => match &ev.data {
                // The ready edge straight from vfs_get_tree's return (an agent started
                // mid-mount never saw the registration).
                EventData::GetTreeExit(step) if step.ret == 0 && step.dev.is_known() => {
                    self.await_mount(step.dev);
                }
                _ => {}
            },
            Item::Notification(n) if n.data.verdict == Verdict::Removal => {
                out.push(self.removal(n));
            }
            Item::Notification(n) if n.data.verdict.needs_replay() => {
                let rec = self.journal_notification(n);
                // A disk in use by something that never registers a holder (ext4,
                // device-mapper) will not get one: close the record now, not at some pass.
                let no_holder_on = match &rec {
                    AgentRecord::Journaled {
                        disk,
                        reason: Reason::NoHolder,
                        ..
                    } => Some(disk.clone()),
                    _ => None,
                };
                out.push(rec);
                if let Some(disk) = no_holder_on {
                    out.extend(self.close_if_never_xfs(&disk));
                }
            }
            // The ready edge, from the tracker when it saw the registration.
            Item::HolderState(t) if t.data.to == State::Ready => {
                self.await_mount(t.data.dev);
            }
            // A holder on a disk not seen yet (created since the last scan): learn it now, while
            // it is in sysfs, so that its removal, which may arrive once it is gone, names it.
            Item::HolderState(t)
                if t.data.dev.is_known()
                    && !self.seen_disks.iter().any(|d| d.dev == t.data.dev) =>
            {
                self.scan_disks();
            }
            _ => {}
        }
        if let Item::Kernel(ev) = item
            && let EventData::Sigbus { target, code, .. } = &ev.data
            && *code > 0
        {
            // The kernel's own memory-error kill: the policy never signals it again.
            self.cfg.spare.insert(*target as i32);
        }
        out
    }

    /// Starts waiting for `dev`'s mount to appear (once per device).
    fn await_mount(&mut self, dev: Dev) {
        if dev.is_known() && !self.waiting.iter().any(|(d, _)| *d == dev) {
            self.waiting.push((dev, Instant::now() + MOUNT_WAIT));
        }
    }

    /// When the agent next needs to wake up: a mount it waits for, XFS's reports it waits for,
    /// the next bad-block rescan.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let mut w = None::<Duration>;
        let mut at = |d: Duration| w = Some(w.map_or(d, |x| x.min(d)));
        if !self.waiting.is_empty() {
            at(MOUNT_POLL);
        }
        if let Some(t) = self.next_rescan {
            at(t.saturating_duration_since(Instant::now()));
        }
        if !self.unstored.is_empty() {
            at(self.next_retry.map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            }));
        }
        w
    }

    /// Time-driven work: ready devices whose mount is now visible get their pass (those past
    /// their deadline are given up on), XFS's reports waited for long enough are concluded, and
    /// the bad-block lists are read again when due; notifications a failed write left in memory
    /// are written again.
    pub fn poll(&mut self, now: Instant) -> Vec<AgentRecord> {
        let mut out = self.retry_unstored(now);
        let rescan_due = self.rescan.is_some() && self.next_rescan.is_some_and(|due| now >= due);
        // A scan of sysfs (a thread and a walk of every pmem disk) only when something here
        // needs the disks: this runs at every step of the stream, a mount's dozen events
        // included.
        if self.waiting.is_empty() && !rescan_due {
            return out;
        }
        let waiting = std::mem::take(&mut self.waiting);
        let disks = self.scan_disks();
        for (dev, deadline) in waiting {
            let mounts = mountinfo::read().unwrap_or_default();
            if mounts.iter().any(|m| m.dev == dev) {
                if let Some(d) = pmem::disk_of(Path::new("/sys/dev/block"), &disks, dev) {
                    out.extend(self.reconcile_badblocks(&d));
                    out.extend(self.replay_disk(&d.name));
                }
            } else if now >= deadline {
                out.push(AgentRecord::MountNotVisible {
                    dev,
                    waited_ms: MOUNT_WAIT.as_millis() as u64,
                });
            } else {
                self.waiting.push((dev, deadline));
            }
        }
        if let (Some(every), Some(due)) = (self.rescan, self.next_rescan)
            && now >= due
        {
            self.next_rescan = Some(now + every);
            out.extend(self.reread_badblocks(&disks, |_| true));
        }
        out
    }

    /// Reads again the bad-block lists of `disks` that `which` selects: new ranges are
    /// journaled, and replayed where their filesystem is ready.
    fn reread_badblocks(
        &mut self,
        disks: &[PmemDisk],
        which: impl Fn(&PmemDisk) -> bool,
    ) -> Vec<AgentRecord> {
        let mut out = Vec::new();
        for d in disks.iter().filter(|d| which(d)) {
            let new = self.reconcile_badblocks(d);
            if !new.is_empty() {
                out.extend(new);
                out.extend(self.replay_disk(&d.name));
            }
        }
        out
    }
}

impl Listener for Agent {
    fn on_start(&mut self, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        self.scan_disks();
        if let Some(recovery) = self.recovery.take()
            && !recovery.is_clean()
        {
            emit.push(Item::Record(AgentRecord::JournalRecovered { recovery }));
        }
        eprintln!(
            "notify: journal {}: {} record(s), {} pending",
            self.journal_path().display(),
            self.journal.list().len(),
            self.journal.pending().len()
        );
        if let Tell::Cannot(why) = &self.tell {
            eprintln!("notify: {why}");
        }
        emit.extend(self.replay_mounted().into_iter().map(Item::Record));
        Ok(())
    }

    fn before_items(&mut self, items: &[Item]) -> anyhow::Result<()> {
        self.stage(items);
        Ok(())
    }

    fn on_item(&mut self, item: &Item, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        emit.extend(Agent::on_item(self, item).into_iter().map(Item::Record));
        Ok(())
    }

    fn next_wakeup(&self) -> Option<Duration> {
        Agent::next_wakeup(self)
    }

    fn on_tick(&mut self, now: Instant, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        emit.extend(self.poll(now).into_iter().map(Item::Record));
        Ok(())
    }

    fn badblock_lists(&self) -> Vec<(String, PathBuf)> {
        let sys_block = Path::new("/sys/block");
        self.seen_disks
            .iter()
            .map(|d| (d.name.clone(), d.badblocks_path(sys_block)))
            .collect()
    }

    fn on_badblocks_changed(
        &mut self,
        changed: &[String],
        emit: &mut Vec<Item>,
    ) -> anyhow::Result<()> {
        log::info!("the pmem driver notified a changed bad-block list: {changed:?}");
        let disks = self.scan_disks();
        let records = self.reread_badblocks(&disks, |d| changed.contains(&d.name));
        emit.extend(records.into_iter().map(Item::Record));
        Ok(())
    }

    fn finish(&mut self, _totals: &stream::Totals) -> anyhow::Result<()> {
        self.give_up_unstored();
        Ok(())
    }
}
