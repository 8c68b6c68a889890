//! The one event loop: ring buffer -> pipeline -> listeners, as Tetragon's observer hands each
//! event to its listeners. A listener (output sink, metrics, session log, the agent) sees every
//! item in order; what it emits (the agent's records) is handed to every listener right after
//! the item that caused it, before the next item.

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, Instant},
};

use notify_model::Item;

use crate::{
    probe::{Probes, bbnotify::BadblocksNotify, fserror::FsErrors, ring::Ring},
    stream::{
        fswatch::FsWatch,
        pipeline::{Pipeline, Totals},
    },
};

/// Something that consumes the stream.
pub trait Listener {
    /// Before the first item: work that must come first (the agent's journal recovery and its
    /// replay of records whose filesystem is mounted already).
    fn on_start(&mut self, _emit: &mut Vec<Item>) -> anyhow::Result<()> {
        Ok(())
    }

    /// A batch is about to be handed over item by item: a listener that stores items durably
    /// can store the whole batch with one flush first (the agent's group commit).
    fn before_items(&mut self, _items: &[Item]) -> anyhow::Result<()> {
        Ok(())
    }

    /// One item, in order. Items pushed to `emit` are handed to every listener next.
    fn on_item(&mut self, item: &Item, emit: &mut Vec<Item>) -> anyhow::Result<()>;

    /// Time-driven work at each wakeup (the agent waiting for a mount to appear).
    fn on_tick(&mut self, _now: Instant, _emit: &mut Vec<Item>) -> anyhow::Result<()> {
        Ok(())
    }

    /// When this listener needs a wakeup even if no event comes.
    fn next_wakeup(&self) -> Option<Duration> {
        None
    }

    /// The bad-block lists this listener wants to hear of: (disk, its badblocks file). The
    /// stream waits on each for the pmem driver's notification.
    fn badblock_lists(&self) -> Vec<(String, PathBuf)> {
        Vec::new()
    }

    /// The pmem driver said these disks' bad-block lists changed.
    fn on_badblocks_changed(
        &mut self,
        _disks: &[String],
        _emit: &mut Vec<Item>,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// After each batch of items: flush, publish running totals.
    fn on_batch(&mut self, _totals: &Totals) -> anyhow::Result<()> {
        Ok(())
    }

    /// SIGHUP.
    fn on_hangup(&mut self) {}

    /// The run is over: final writes. `totals` include the kernel's lost count.
    fn finish(&mut self, _totals: &Totals) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The running stream: its ring, its pipeline, and who listens.
pub struct Stream<'a> {
    ring: Ring,
    pub pipe: Pipeline,
    listeners: Vec<&'a mut dyn Listener>,
    /// A read of the ring failed; only the drain at the end is still tried.
    pub ring_failed: Option<std::io::Error>,
    /// XFS's own error reports, where the kernel has them.
    pub fswatch: Option<FsWatch>,
    /// The pmem driver's notifications of changed bad-block lists (the agent sets it).
    pub badblocks: Option<BadblocksNotify>,
    /// When the ring was last read ([`RING_COALESCE`]).
    last_read: Option<Instant>,
}

/// After a small read, the next read of the ring waits until this long after it. A record
/// that finds the reader idle is read at once; records that follow within the window (a
/// mount writes a dozen over a few milliseconds) wait for its end and are read together, so
/// they cost one wakeup, one decode step, one dispatch and one write, not a dozen, on CPUs the
/// mount itself runs on. Measured (`bench mount-overhead --icount 0 --vcpus 1`, 6.12): the
/// trace's own CPU per mount cycle 364 k -> 302 k instructions (clean), 774 k -> 692 k (with
/// log recovery).
pub const RING_COALESCE: Duration = Duration::from_millis(10);

/// A read of at least this many records is not followed by a wait: a busy ring (a storm) is
/// read back to back as before, so the window delays a storm's records once, at its start
/// (10 ms of records: at 20k records/s, the lab's storm rate, 200 of the default ring's 8,738).
const COALESCE_BELOW: usize = 64;

/// The longest a wait lasts with nothing to wake for.
const IDLE: Duration = Duration::from_secs(3600);

impl<'a> Stream<'a> {
    /// The stream of `probes`: their ring buffer, and the names their kernel gives to values.
    pub fn open(probes: &mut Probes, listeners: Vec<&'a mut dyn Listener>) -> anyhow::Result<Self> {
        let ring = Ring::open(probes)?;
        let mut pipe = Pipeline::new();
        pipe.symbols = probes.symbols.clone();
        let fswatch = if probes.channels.fserror.is_present() {
            match FsErrors::open() {
                Ok(e) => {
                    let w = FsWatch::start(e);
                    eprintln!(
                        "notify: fserror: watching {} XFS filesystem(s) for FAN_FS_ERROR, and \
                         each one that mounts",
                        w.errors.watched().len()
                    );
                    Some(w)
                }
                Err(e) => {
                    eprintln!("notify: fserror: cannot listen (fanotify_init: {e})");
                    None
                }
            }
        } else {
            eprintln!("notify: fserror: {}", probes.channels.fserror.reason);
            None
        };
        Ok(Stream {
            ring,
            pipe,
            listeners,
            ring_failed: None,
            fswatch,
            badblocks: None,
            last_read: None,
        })
    }

    /// Hands `items` to every listener, and whatever they emit right after each.
    fn dispatch(&mut self, items: Vec<Item>) -> anyhow::Result<()> {
        if !items.is_empty() {
            for l in self.listeners.iter_mut() {
                l.before_items(&items)?;
            }
        }
        let mut queue: VecDeque<Item> = items.into();
        let mut emitted = Vec::new();
        while let Some(item) = queue.pop_front() {
            for l in self.listeners.iter_mut() {
                l.on_item(&item, &mut emitted)?;
            }
            // Emitted items go before the rest, in the order they were emitted.
            for e in emitted.drain(..).rev() {
                queue.push_front(e);
            }
        }
        Ok(())
    }

    /// Holds the health monitor of every XFS watched where no other client holds it (opt-in).
    pub fn hold_health_monitors(&mut self) {
        match self.fswatch.as_mut() {
            Some(w) => w.hold_health_monitors(),
            None => eprintln!(
                "notify: healthmon: not on this kernel (no XFS error reporting to go with it)"
            ),
        }
    }

    /// Kernel items first (the report watcher learns from them), then the XFS reports read
    /// since the last step.
    fn dispatch_with_reports(&mut self, items: Vec<Item>, last: bool) -> anyhow::Result<()> {
        if let Some(w) = self.fswatch.as_mut() {
            for i in &items {
                w.on_item(i);
            }
        }
        self.dispatch(items)?;
        if let Some(w) = self.fswatch.as_mut() {
            w.poll(Instant::now());
            let mut reports: Vec<Item> = w
                .take(Instant::now(), last)
                .into_iter()
                .map(Item::FsError)
                .collect();
            reports.extend(w.take_health().into_iter().map(Item::Health));
            self.dispatch(reports)?;
        }
        Ok(())
    }

    /// Lets every listener do its start-up work.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut emitted = Vec::new();
        for l in self.listeners.iter_mut() {
            l.on_start(&mut emitted)?;
        }
        self.dispatch(emitted)?;
        self.watch_badblock_lists();
        self.batch_end()
    }

    /// Waits on every bad-block list a listener wants and the set does not hold yet (a disk
    /// seen since).
    fn watch_badblock_lists(&mut self) {
        if let Some(bb) = self.badblocks.as_mut() {
            for l in &self.listeners {
                bb.watch_all(&l.badblock_lists());
            }
        }
    }

    /// Waits for the kernel to commit records, for the reorder window or a listener's wakeup to
    /// come due, or for `cap`. Cancel-safe: nothing is read across an await point, so it can be
    /// one arm of a `select!` with signals.
    pub async fn wait(&mut self, cap: Duration) {
        let now = Instant::now();
        let mut sleep = self.pipe.deadline(now).unwrap_or(IDLE).min(cap);
        for l in &self.listeners {
            if let Some(w) = l.next_wakeup() {
                sleep = sleep.min(w);
            }
        }
        if let Some(w) = self.fswatch.as_ref().and_then(FsWatch::next_wakeup) {
            sleep = sleep.min(w);
        }
        let ring_ok = self.ring_failed.is_none();
        let not_before = self
            .last_read
            .map(|t| t + RING_COALESCE)
            .filter(|t| *t > now);
        let (ring, pipe) = (&mut self.ring, &mut self.pipe);
        tokio::select! {
            r = async move {
                // Within the window of the last read: wait for a record, then for the window's
                // end, and read what has come by then (the readiness is kept across the sleep).
                if let Some(t) = not_before {
                    ring.readable().await?;
                    tokio::time::sleep_until(t.into()).await;
                }
                ring.read_into(pipe).await
            }, if ring_ok => {
                self.last_read = match &r {
                    Ok(n) if *n < COALESCE_BELOW => Some(Instant::now()),
                    _ => None,
                };
                if let Err(e) = r {
                    eprintln!("notify: reading the ring buffer: {e}");
                    self.ring_failed = Some(e);
                }
            }
            r = fs_wait(&mut self.fswatch) => {
                if let Err(e) = r {
                    eprintln!("notify: reading XFS error reports: {e}; no longer listening");
                    self.fswatch = None;
                }
            }
            r = bb_wait(&mut self.badblocks) => {
                if let Err(e) = r {
                    eprintln!(
                        "notify: waiting for bad-block notifications: {e}; no longer listening \
                         (lists are still read at mounts and at start)"
                    );
                    self.badblocks = None;
                }
            }
            _ = tokio::time::sleep(sleep) => {}
        }
    }

    /// What is in order now goes to the listeners; then their time-driven work and the end of
    /// the batch.
    pub fn step(&mut self) -> anyhow::Result<()> {
        let items = self.pipe.ready(Instant::now(), false);
        self.dispatch_with_reports(items, false)?;
        let mut emitted = Vec::new();
        let now = Instant::now();
        for l in self.listeners.iter_mut() {
            l.on_tick(now, &mut emitted)?;
        }
        let changed = self
            .badblocks
            .as_mut()
            .map(BadblocksNotify::take_changed)
            .unwrap_or_default();
        if !changed.is_empty() {
            for l in self.listeners.iter_mut() {
                l.on_badblocks_changed(&changed, &mut emitted)?;
            }
        }
        self.dispatch(emitted)?;
        self.watch_badblock_lists();
        self.batch_end()
    }

    fn batch_end(&mut self) -> anyhow::Result<()> {
        for l in self.listeners.iter_mut() {
            l.on_batch(&self.pipe.totals)?;
        }
        Ok(())
    }

    /// SIGHUP for every listener.
    pub fn hangup(&mut self) {
        for l in self.listeners.iter_mut() {
            l.on_hangup();
        }
    }

    /// Whatever the kernel committed before we stopped, then the end of the run for every
    /// listener. Returns the totals, the kernel's lost count included.
    pub fn finish(mut self) -> anyhow::Result<Totals> {
        self.ring.drain_into(&mut self.pipe);
        let items = self.pipe.ready(Instant::now(), true);
        self.dispatch_with_reports(items, true)?;
        self.batch_end()?;
        self.pipe.totals.lost_kernel = self.ring.lost_in_kernel();
        let totals = self.pipe.totals.clone();
        for l in self.listeners.iter_mut() {
            l.finish(&totals)?;
        }
        Ok(totals)
    }
}

/// Waits for XFS reports; never when there is no watcher.
async fn bb_wait(w: &mut Option<BadblocksNotify>) -> std::io::Result<()> {
    match w {
        Some(w) => w.wait().await,
        None => std::future::pending().await,
    }
}

async fn fs_wait(w: &mut Option<FsWatch>) -> std::io::Result<()> {
    match w {
        Some(w) => w.wait().await,
        None => std::future::pending().await,
    }
}
