//! `notify trace`: attach, stream events in kernel order with the agent's conclusions, and on
//! SIGINT/SIGTERM drain what is left, report losses and exit cleanly.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use notify_common::{MAP_EVENTS, MAP_LOST};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    event::{self, EventData, TraceEvent},
    output::{Format, Sink},
    probes::AttachMode,
    readiness::{Derived, Tracker},
    reorder::Reorder,
    session::Session,
};

/// How long a record waits for a smaller sequence number before that number is declared lost.
/// Ring-buffer commits from two CPUs are microseconds apart; this is generous.
pub const REORDER_WINDOW: Duration = Duration::from_millis(100);

pub struct TraceOptions {
    pub format: Format,
    pub attach: AttachMode,
    pub output: Option<PathBuf>,
    /// Emit the agent's derived events (holder_state, notification) too.
    pub derived: bool,
}

/// Counters printed at the end.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub events: u64,
    /// Sum of the per-CPU LOST counters: reservations that failed in the kernel.
    pub lost_kernel: u64,
    /// Sequence numbers that never arrived.
    pub seq_gaps: u64,
    pub undecodable: u64,
}

/// Drains the ring buffer, reorders, tracks readiness and writes.
pub struct Pipeline {
    pub reorder: Reorder<TraceEvent>,
    pub tracker: Tracker,
    pub totals: Totals,
    derived: bool,
}

impl Pipeline {
    pub fn new(derived: bool) -> Self {
        Pipeline {
            reorder: Reorder::new(1, REORDER_WINDOW),
            tracker: Tracker::new(),
            totals: Totals::default(),
            derived,
        }
    }

    /// Takes one raw record.
    pub fn push_raw(&mut self, bytes: &[u8], now: Instant) {
        match event::decode(bytes) {
            Ok(ev) => {
                log::trace!("raw event seq {} kind {}", ev.seq, ev.data.kind_name());
                self.reorder.push(ev, now)
            }
            Err(e) => {
                self.totals.undecodable += 1;
                log::warn!("{e}");
            }
        }
    }

    /// Events now in order, followed by what the tracker concluded from each.
    pub fn ready(&mut self, now: Instant, flush: bool) -> Vec<TraceEvent> {
        let evs = if flush {
            self.reorder.flush()
        } else {
            self.reorder.pop_ready(now)
        };
        self.totals.seq_gaps = self.reorder.lost();
        let mut out = Vec::with_capacity(evs.len());
        for ev in evs {
            self.totals.events += 1;
            let derived = self.tracker.apply(&ev);
            let (seq, ktime_ns, cpu, pid, tid, comm) =
                (ev.seq, ev.ktime_ns, ev.cpu, ev.pid, ev.tid, ev.comm.clone());
            out.push(ev);
            if self.derived {
                for d in derived {
                    out.push(TraceEvent {
                        seq,
                        ktime_ns,
                        cpu,
                        pid,
                        tid,
                        comm: comm.clone(),
                        data: match d {
                            Derived::Transition(t) => EventData::HolderState(t),
                            Derived::Notification(n) => EventData::Notification(n),
                        },
                    });
                }
            }
        }
        out
    }
}

/// Sum of the per-CPU lost-event counters.
pub fn lost_in_kernel(lost: &PerCpuArray<MapData, u64>) -> u64 {
    lost.get(&0, 0).map(|vals| vals.iter().sum()).unwrap_or(0)
}

pub async fn run(opts: TraceOptions) -> anyhow::Result<Totals> {
    let mut session = Session::open(opts.attach)?;
    session.report_to_stderr();
    let mut sink = match &opts.output {
        Some(p) => Sink::file(opts.format, p)
            .with_context(|| format!("cannot open output file {}", p.display()))?,
        None => Sink::stdout(opts.format),
    };
    let ring = RingBuf::try_from(
        session
            .probes
            .ebpf
            .take_map(MAP_EVENTS)
            .context("ring buffer map missing from the BPF object")?,
    )?;
    let lost: PerCpuArray<MapData, u64> = PerCpuArray::try_from(
        session
            .probes
            .ebpf
            .take_map(MAP_LOST)
            .context("lost-event map missing from the BPF object")?,
    )?;
    // SAFETY: the ring buffer owns its fd and outlives the registration (both live in this
    // function; the AsyncFd owns the map).
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer with epoll: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut pipe = Pipeline::new(opts.derived);

    loop {
        let now = Instant::now();
        let sleep = pipe
            .reorder
            .deadline(now)
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                let now = Instant::now();
                while let Some(item) = rb.next() {
                    pipe.push_raw(&item, now);
                }
                guard.clear_ready();
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
        for ev in pipe.ready(Instant::now(), false) {
            sink.write(&ev)?;
        }
        sink.flush()?;
    }
    // Whatever the kernel committed before we stopped.
    let rb = ring.get_mut();
    let now = Instant::now();
    while let Some(item) = rb.next() {
        pipe.push_raw(&item, now);
    }
    for ev in pipe.ready(now, true) {
        sink.write(&ev)?;
    }
    sink.flush()?;
    pipe.totals.lost_kernel = lost_in_kernel(&lost);
    let t = &pipe.totals;
    eprintln!(
        "notify: {} events, {} lost in the kernel (ring buffer full), {} sequence gaps, {} undecodable",
        t.events, t.lost_kernel, t.seq_gaps, t.undecodable
    );
    Ok(pipe.totals)
}
