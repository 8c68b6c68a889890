//! The enforcing agent: journals every notification the kernel left for userspace, and replays
//! it once its filesystem is ready.
//!
//! Order of duties for a dropped notification: journal it (fsynced) before anything else, so a
//! crash at any later point loses nothing; when the filesystem becomes ready, resolve and act;
//! mark the record replayed only after acting, so a crash mid-replay replays again (the mappers
//! are re-scanned then, so a process that already died is not hit twice and a new process that
//! reuses its pid is only signalled if it really maps the damaged range).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use notify_model::{
    Derived, Dev, DevFrom, EventData, Item, Notification, State, Verdict,
    journal::{Damage, DaxDevice, Reason, Recovery},
    record::{AgentRecord, IdentifiedBy},
};

use crate::{
    enforce,
    kernel::pmem::{self, PmemDisk},
    stream::Listener,
    {kernel::mountinfo, resolve::site},
};

pub mod badblocks;
pub mod journal;
pub mod replay;

use journal::Journal;

/// How long after the ready edge the agent waits for the mount to show up in its mount
/// namespace (the VFS attaches it right after `vfs_get_tree` returns).
pub const MOUNT_WAIT: Duration = Duration::from_secs(10);
/// How often it looks meanwhile.
pub const MOUNT_POLL: Duration = Duration::from_millis(20);

pub struct AgentOptions {
    pub journal: PathBuf,
    pub enforce: enforce::Config,
}

pub struct Agent {
    pub journal: Journal,
    /// What opening the journal found, reported at start.
    recovery: Option<Recovery>,
    cfg: enforce::Config,
    /// Block devices that became ready, waiting to appear in mountinfo.
    waiting: Vec<(Dev, Instant)>,
}

fn disks() -> Vec<PmemDisk> {
    pmem::scan().unwrap_or_default()
}

impl Agent {
    pub fn open(opts: AgentOptions) -> anyhow::Result<(Agent, Recovery)> {
        if let Some(dir) = opts.journal.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create journal directory {}: {e}", dir.display())
            })?;
        }
        let (journal, recovery) = Journal::open(&opts.journal)?;
        Ok((
            Agent {
                journal,
                recovery: Some(recovery.clone()),
                cfg: opts.enforce,
                waiting: Vec::new(),
            },
            recovery,
        ))
    }

    /// Replaces the enforcement settings (policy, allowlists, dry run): a SIGHUP reload.
    /// Applies from the next replay on.
    pub fn set_enforce(&mut self, cfg: enforce::Config) {
        self.cfg = cfg;
    }

    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// Pending records whose filesystem is already mounted: replays them now. Called at start,
    /// for notifications journaled before a restart whose mount completed meanwhile.
    pub fn replay_mounted(&mut self) -> Vec<AgentRecord> {
        let disks: Vec<String> = self
            .journal
            .pending()
            .iter()
            .map(|r| r.damage.dax.name.clone())
            .collect();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for d in disks {
            if !seen.contains(&d) {
                out.extend(self.replay_disk(&d));
                seen.push(d);
            }
        }
        out
    }

    /// Replays every pending record of `disk` whose filesystem is mounted; returns what it did.
    fn replay_disk(&mut self, disk: &str) -> Vec<AgentRecord> {
        let mut out = Vec::new();
        let pending: Vec<(u64, u64, u64)> = self
            .journal
            .pending()
            .iter()
            .filter(|r| r.damage.dax.name == disk)
            .map(|r| (r.id, r.damage.dax_offset, r.damage.len))
            .collect();
        let mut ids = Vec::new();
        let mut items = Vec::new();
        for (id, off, len) in pending {
            let site = match site::find_site(disk, off) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("finding the filesystem of {disk}: {e}");
                    continue;
                }
            };
            ids.push(id);
            items.push((site, off, len));
        }
        // One walk of /proc for every record of the disk.
        let reports = replay::replay_batch(&self.cfg, &items);
        for (id, report) in ids.into_iter().zip(reports) {
            for d in &report.decisions {
                out.push(AgentRecord::Enforcement {
                    id,
                    decision: d.clone(),
                });
            }
            // Acted (or decided not to): only now is the record done.
            if let Err(e) = self.journal.mark_replayed(id, &report.summary()) {
                log::error!("journal: marking {id} replayed: {e}");
            }
            out.push(AgentRecord::Replayed {
                id,
                disk: disk.to_string(),
                report,
            });
        }
        out
    }

    /// Which pmem disk a notification is about, and how we know: its block device as the
    /// stream attributed it, else the pfn of the memory failure that raised it.
    fn identify(&self, n: &Notification) -> Option<(PmemDisk, IdentifiedBy)> {
        let disks = disks();
        if n.dev.is_known()
            && let Some(d) = pmem::disk_of(Path::new("/sys/dev/block"), &disks, n.dev)
        {
            let how = match n.dev_from {
                Some(DevFrom::EarlierRegistration) => IdentifiedBy::EarlierRegistration,
                _ => IdentifiedBy::HolderRegistration,
            };
            return Some((d, how));
        }
        if let Some(pfn) = n.pfn
            && let Some(d) = pmem::by_pfn(&disks, pfn)
        {
            return Some((d.clone(), IdentifiedBy::MemoryFailurePfn));
        }
        None
    }

    /// Feeds one item (kernel or derived, in order).
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
            Item::Notification(n) if n.data.verdict.needs_replay() => {
                out.push(self.journal_notification(n));
            }
            // The ready edge, from the tracker when it saw the registration.
            Item::HolderState(t) if t.data.to == State::Ready => {
                self.await_mount(t.data.dev);
            }
            _ => {}
        }
        out
    }

    fn journal_notification(&mut self, item: &Derived<Notification>) -> AgentRecord {
        let n = &item.data;
        let reason = match n.verdict {
            Verdict::NoHolder => Reason::NoHolder,
            _ if n.state == Some(State::Failed) => Reason::MountFailed,
            _ => Reason::Premature,
        };
        let Some((disk, how)) = self.identify(n) else {
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
                disk: disk.name,
                dax_offset: n.offset,
                len: n.len,
                identified_by: IdentifiedBy::DuplicateOfPending,
            };
        }
        let rec = Damage {
            dax: DaxDevice {
                name: disk.name.clone(),
                major: disk.dev.major(),
                minor: disk.dev.minor(),
            },
            dax_offset: n.offset,
            len: n.len,
            mf_flags: n.mf_flags,
            kernel_seq: n.exit_seq,
            ktime_ns: item.at.ktime_ns,
            wall_ns: journal::now_ns(),
            reason,
        };
        match self.journal.append(rec) {
            Ok(id) => AgentRecord::Journaled {
                id,
                reason,
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

    /// Starts waiting for `dev`'s mount to appear (once per device).
    fn await_mount(&mut self, dev: Dev) {
        if dev.is_known() && !self.waiting.iter().any(|(d, _)| *d == dev) {
            self.waiting.push((dev, Instant::now() + MOUNT_WAIT));
        }
    }

    /// When the agent next needs to look at mountinfo, if it is waiting for a mount.
    pub fn next_wakeup(&self) -> Option<Duration> {
        (!self.waiting.is_empty()).then_some(MOUNT_POLL)
    }

    /// Replays for every ready device whose mount is now visible; gives up on those past their
    /// deadline.
    pub fn poll(&mut self, now: Instant) -> Vec<AgentRecord> {
        let mut out = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        let disks = disks();
        for (dev, deadline) in waiting {
            let mounted = mountinfo::read()
                .map(|m| m.iter().any(|m| m.dev == dev))
                .unwrap_or(false);
            if mounted {
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
        out
    }

    /// The pmem driver's bad-block list is a second source (background scrub, ARS): ranges in it
    /// that no journal record covers are journaled so the replay that follows handles them too.
    fn reconcile_badblocks(&mut self, disk: &PmemDisk) -> Vec<AgentRecord> {
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
            let rec = Damage {
                dax: DaxDevice {
                    name: disk.name.clone(),
                    major: disk.dev.major(),
                    minor: disk.dev.minor(),
                },
                dax_offset: r.start,
                len: r.len,
                mf_flags: 0,
                kernel_seq: 0,
                ktime_ns: 0,
                wall_ns: journal::now_ns(),
                reason: Reason::Badblocks,
            };
            match self.journal.append(rec) {
                Ok(id) => out.push(AgentRecord::Journaled {
                    id,
                    reason: Reason::Badblocks,
                    disk: disk.name.clone(),
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

impl Listener for Agent {
    fn on_start(&mut self, emit: &mut Vec<Item>) -> anyhow::Result<()> {
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
        emit.extend(self.replay_mounted().into_iter().map(Item::Record));
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
}
