//! `notify trace`: attach, stream events in kernel order with the agent's conclusions, and on
//! SIGINT/SIGTERM drain what is left, report losses and exit cleanly.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use notify_common::{MAP_EVENTS, MAP_LOST};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    agent::{Action, Agent, AgentOptions},
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
    /// Journal and replay (the enforcing agent) instead of only tracing.
    pub agent: Option<AgentOptions>,
    /// The fleet agent's extras: rotating output, metrics endpoint, SIGHUP reload.
    pub fleet: Option<crate::fleet::Fleet>,
    /// Also write a session file (`notify report` reads it) here on exit: every event of the
    /// run, derived ones included, with the probes, kernel and losses. Kept in memory until
    /// exit, so meant for bounded runs (a test, a lab scenario), not a fleet agent that runs
    /// for weeks.
    pub session: Option<PathBuf>,
}

/// What a `--session` needs from the start of a run.
struct SessionLog {
    path: PathBuf,
    kernel: String,
    attach: AttachMode,
    probes: Vec<crate::session_file::ProbeRecord>,
    started_wall: SystemTime,
    start: Instant,
    events: Vec<TraceEvent>,
}

impl SessionLog {
    /// Writes the session file: `command` is notify's own command line, the exit status 0 (the
    /// run ended on a signal, as asked).
    fn save(self, totals: &Totals) -> anyhow::Result<()> {
        use crate::session_file::{Lost, SessionFile, rfc3339};
        let file = SessionFile {
            lost: Lost {
                kernel: totals.lost_kernel,
                seq_gaps: totals.seq_gaps,
            },
            command: std::env::args().collect(),
            started_wall: rfc3339(self.started_wall),
            duration_ns: self.start.elapsed().as_nanos() as u64,
            ..SessionFile::new(self.kernel, self.attach, self.probes, self.events)
        };
        file.save(&self.path)
            .with_context(|| format!("cannot write the session to {}", self.path.display()))?;
        eprintln!(
            "notify: session {}: {} events",
            self.path.display(),
            file.events.len()
        );
        Ok(())
    }
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

/// The session's ring buffer, registered with the async runtime, and its lost-event counters.
pub struct Ring {
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
}

impl Ring {
    /// Takes the ring buffer and LOST maps out of the session's object.
    pub fn open(session: &mut Session) -> anyhow::Result<Ring> {
        let ebpf = &mut session.probes.ebpf;
        let ring = RingBuf::try_from(
            ebpf.take_map(MAP_EVENTS)
                .context("ring buffer map missing from the BPF object")?,
        )?;
        let lost = PerCpuArray::try_from(
            ebpf.take_map(MAP_LOST)
                .context("lost-event map missing from the BPF object")?,
        )?;
        // SAFETY: the AsyncFd owns the ring buffer, which owns its fd: the fd stays open and the
        // same for as long as it is registered.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("registering the ring buffer with epoll: {e}"))?;
        Ok(Ring { ring, lost })
    }

    /// Waits until the kernel commits records, then hands them all to `pipe`. Cancel-safe:
    /// nothing is read before the await completes.
    pub async fn read_into(&mut self, pipe: &mut Pipeline) -> std::io::Result<()> {
        let mut guard = self.ring.readable_mut().await?;
        let rb = guard.get_inner_mut();
        let now = Instant::now();
        while let Some(item) = rb.next() {
            pipe.push_raw(&item, now);
        }
        guard.clear_ready();
        Ok(())
    }

    /// Hands `pipe` whatever is committed now, without waiting (at shutdown).
    pub fn drain_into(&mut self, pipe: &mut Pipeline) {
        let rb = self.ring.get_mut();
        let now = Instant::now();
        while let Some(item) = rb.next() {
            pipe.push_raw(&item, now);
        }
    }

    /// Sum of the per-CPU counters of records the ring buffer had no room for.
    pub fn lost_in_kernel(&self) -> u64 {
        lost_in_kernel(&self.lost)
    }
}

/// Sum of the per-CPU lost-event counters.
pub fn lost_in_kernel(lost: &PerCpuArray<MapData, u64>) -> u64 {
    lost.get(&0, 0).map(|vals| vals.iter().sum()).unwrap_or(0)
}

pub async fn run(mut opts: TraceOptions) -> anyhow::Result<Totals> {
    if let Some(p) = &opts.session {
        crate::record::check_output(p)?;
    }
    let mut session = Session::open(opts.attach)?;
    session.report_to_stderr();
    let mut log = opts.session.take().map(|path| SessionLog {
        path,
        kernel: session.kernel.release.clone(),
        attach: opts.attach,
        probes: session.probes.outcomes.iter().map(Into::into).collect(),
        started_wall: SystemTime::now(),
        start: Instant::now(),
        events: Vec::new(),
    });
    let mut fleet = opts.fleet.take();
    let fleet_out = match fleet.as_mut() {
        Some(f) => {
            f.start(&session).await?;
            f.open_output()?
        }
        None => None,
    };
    let mut sink = match (&opts.output, fleet_out) {
        (_, Some(w)) => Sink::new(opts.format, w),
        (Some(p), None) => Sink::file(opts.format, p)
            .with_context(|| format!("cannot open output file {}", p.display()))?,
        (None, None) => Sink::stdout(opts.format),
    };
    let mut ring = Ring::open(&mut session)?;
    // Loading parsed the kernel's BTF and the BPF object: tens of MiB of heap, all freed by now
    // but kept by malloc. Give it back: the agent runs for weeks.
    // SAFETY: malloc_trim only releases free memory of the heap.
    unsafe { libc::malloc_trim(0) };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // SIGHUP reloads the fleet agent's configuration; elsewhere it keeps its default action.
    let mut sighup = match fleet {
        Some(_) => Some(signal(SignalKind::hangup())?),
        None => None,
    };
    // The agent and a session need the derived events whether or not they are printed.
    let mut pipe = Pipeline::new(opts.derived || opts.agent.is_some() || log.is_some());
    let mut agent = match opts.agent {
        Some(a) => {
            let (mut agent, recovery) = Agent::open(a)?;
            if !recovery.is_clean() {
                let a = Action::JournalRecovered {
                    recovery: recovery.clone(),
                };
                act(&mut sink, &fleet, &a)?;
            }
            eprintln!(
                "notify: journal {}: {} record(s), {} pending",
                agent.journal_path().display(),
                agent.journal.list().len(),
                agent.journal.pending().len()
            );
            for a in agent.replay_mounted() {
                act(&mut sink, &fleet, &a)?;
            }
            if let Some(f) = &fleet {
                f.after_batch(&pipe.totals, Some(&agent));
            }
            sink.flush()?;
            Some(agent)
        }
        None => None,
    };
    let show_derived = opts.derived;

    loop {
        let now = Instant::now();
        let mut sleep = pipe
            .reorder
            .deadline(now)
            .unwrap_or(Duration::from_secs(3600));
        if let Some(w) = agent.as_ref().and_then(|a| a.next_wakeup()) {
            sleep = sleep.min(w);
        }
        tokio::select! {
            r = ring.read_into(&mut pipe) => r?,
            _ = tokio::time::sleep(sleep) => {}
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = hangup(&mut sighup) => {
                if let (Some(f), Some(a)) = (fleet.as_mut(), agent.as_mut())
                    && let Some(cfg) = f.reload()
                {
                    a.set_enforce(cfg);
                }
            }
        }
        let evs = pipe.ready(Instant::now(), false);
        emit(
            &mut sink,
            &mut agent,
            &pipe.tracker,
            evs,
            show_derived,
            &fleet,
            &mut log,
        )?;
        if let Some(a) = agent.as_mut() {
            for x in a.poll(Instant::now()) {
                act(&mut sink, &fleet, &x)?;
            }
        }
        if let Some(f) = &fleet {
            f.after_batch(&pipe.totals, agent.as_ref());
        }
        sink.flush()?;
    }
    // Whatever the kernel committed before we stopped.
    ring.drain_into(&mut pipe);
    let evs = pipe.ready(Instant::now(), true);
    emit(
        &mut sink,
        &mut agent,
        &pipe.tracker,
        evs,
        show_derived,
        &fleet,
        &mut log,
    )?;
    if let Some(f) = &fleet {
        f.after_batch(&pipe.totals, agent.as_ref());
    }
    sink.flush()?;
    // Closes the event log (a rotating file syncs on close).
    drop(sink);
    pipe.totals.lost_kernel = ring.lost_in_kernel();
    let t = &pipe.totals;
    eprintln!(
        "notify: {} events, {} lost in the kernel (ring buffer full), {} sequence gaps, {} undecodable",
        t.events, t.lost_kernel, t.seq_gaps, t.undecodable
    );
    if let Some(l) = log {
        l.save(&pipe.totals)?;
    }
    Ok(pipe.totals)
}

/// Writes events (derived ones only if asked) and hands every one to the agent.
fn emit(
    sink: &mut Sink,
    agent: &mut Option<Agent>,
    tracker: &Tracker,
    evs: Vec<TraceEvent>,
    show_derived: bool,
    fleet: &Option<crate::fleet::Fleet>,
    log: &mut Option<SessionLog>,
) -> anyhow::Result<()> {
    for ev in evs {
        if let Some(l) = log.as_mut() {
            l.events.push(ev.clone());
        }
        if let Some(f) = fleet {
            f.on_event(&ev);
        }
        let derived = matches!(
            ev.data,
            EventData::HolderState(_) | EventData::Notification(_)
        );
        if show_derived || !derived {
            sink.write(&ev)?;
        }
        if let Some(a) = agent.as_mut() {
            for x in a.on_event(&ev, tracker) {
                act(sink, fleet, &x)?;
            }
        }
    }
    Ok(())
}

/// Writes an agent record and counts it.
fn act(sink: &mut Sink, fleet: &Option<crate::fleet::Fleet>, a: &Action) -> std::io::Result<()> {
    if let Some(f) = fleet {
        f.on_action(a);
    }
    sink.write_action(a)
}

/// Resolves on SIGHUP when the signal is handled; never otherwise.
async fn hangup(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
