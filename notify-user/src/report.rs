//! `notify report`: a timeline per device built from a recorded session, rendered as text and as
//! a hand-written SVG.
//!
//! A lane is one device: the dax device and the block device(s) on it, tied together by the
//! events that name both (`holder_get`: dax device, holder, block device; mount steps: holder and
//! block device; `holder_put`: dax device and holder). Events that name no device are attributed
//! by task: a memory failure goes to the lane of the notification its task raised; a mount-family
//! syscall exit to the one lane its process touched. What stays unattributed is listed apart.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use crate::{
    event::{Dev, EventData, Readiness, TraceEvent, errno_name},
    output::details,
    readiness::{Derived, Notification, State, Tracker, Verdict},
    session_file::SessionFile,
};

/// One line of a lane: a kernel event, with the state change it caused folded in, or a
/// notification.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub seq: u64,
    /// Nanoseconds since the first event of the session.
    pub t_ns: u64,
    pub pid: u32,
    pub comm: String,
    pub kind: &'static str,
    pub detail: String,
    /// (from, to) when this event changed the holder's state.
    pub transition: Option<(Option<State>, State)>,
}

/// A stretch of time the holder spent in one state.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub state: State,
    pub start_ns: u64,
    /// None: until the end of the session.
    pub end_ns: Option<u64>,
    /// The event that began it.
    pub seq: u64,
    /// Not the tracker's conclusion but read off an event whose holder the tracker never saw
    /// register (it was mounted before the session began): put_super, holder_put.
    pub inferred: bool,
}

/// A notification, where it landed.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub seq: u64,
    pub t_ns: u64,
    pub verdict: Verdict,
    /// The holder's state when it arrived (None: no holder, or a holder registered before the
    /// session began).
    pub phase: Option<State>,
    pub readiness: Option<Readiness>,
    pub offset: u64,
    pub len: u64,
    pub ret: i64,
    pub xfs_ret: Option<i64>,
    pub enter_seq: Option<u64>,
}

impl Mark {
    /// The phase as people read it.
    pub fn phase_name(&self) -> &'static str {
        match (self.phase, self.readiness) {
            (Some(s), _) => s.name(),
            (None, Some(Readiness::NoHolder)) => "no holder",
            (None, Some(Readiness::Born)) => "untracked, superblock born",
            (None, Some(Readiness::NotBorn)) => "untracked, superblock not born",
            (None, _) => "untracked",
        }
    }
}

/// A memory failure on a page frame.
#[derive(Clone, Debug, PartialEq)]
pub struct PfnTick {
    pub seq: u64,
    pub t_ns: u64,
    pub pfn: u64,
}

/// One device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lane {
    pub dax_dev: Option<u64>,
    /// Block devices seen on it, first one first.
    pub devs: Vec<Dev>,
    pub holders: Vec<u64>,
    pub steps: Vec<Step>,
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
    pub pfns: Vec<PfnTick>,
}

impl Lane {
    /// "259:0 (pmem0), dax 0xff…"; names from the session's device table.
    pub fn label(&self, names: &BTreeMap<String, String>) -> String {
        let mut parts: Vec<String> = self
            .devs
            .iter()
            .map(|d| match names.get(&d.to_string()) {
                Some(n) => format!("{d} ({n})"),
                None => d.to_string(),
            })
            .collect();
        if let Some(x) = self.dax_dev {
            parts.push(format!("dax {x:#x}"));
        }
        if parts.is_empty() {
            "unidentified device".into()
        } else {
            parts.join(", ")
        }
    }

    /// The block device as a short key ("259:0"), else the dax device.
    pub fn key(&self) -> String {
        match (self.devs.first(), self.dax_dev) {
            (Some(d), _) => d.to_string(),
            (None, Some(x)) => format!("{x:#x}"),
            (None, None) => "?".into(),
        }
    }

    /// The states it went through, in order (bands).
    pub fn states(&self) -> Vec<State> {
        self.bands.iter().map(|b| b.state).collect()
    }
}

/// The model both renderers draw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// ktime of the first event.
    pub t0_ns: u64,
    /// From the first event to the last.
    pub span_ns: u64,
    pub lanes: Vec<Lane>,
    /// Events tied to no device.
    pub other: Vec<Step>,
    /// Memory failures tied to no device.
    pub other_pfns: Vec<PfnTick>,
}

/// Adds the tracker's derived events when a recording has none (a raw trace); otherwise
/// returns the events as they are.
pub fn ensure_derived(events: &[TraceEvent]) -> Vec<TraceEvent> {
    let has_derived = events.iter().any(|e| {
        matches!(
            e.data,
            EventData::HolderState(_) | EventData::Notification(_)
        )
    });
    if has_derived {
        return events.to_vec();
    }
    let mut tracker = Tracker::new();
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        let derived = tracker.apply(ev);
        out.push(ev.clone());
        for d in derived {
            out.push(TraceEvent {
                data: match d {
                    Derived::Transition(t) => EventData::HolderState(t),
                    Derived::Notification(n) => EventData::Notification(n),
                },
                ..ev.clone()
            });
        }
    }
    out
}

/// Where an event goes before task-based attribution is resolved.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Lane(usize),
    /// A memory-failure span of a task: resolved once we know which device it notified.
    Span(usize),
    /// A syscall exit: resolved by process.
    Pid(u32),
    Other,
}

#[derive(Default)]
struct Builder {
    lanes: Vec<Lane>,
    by_dax: HashMap<u64, usize>,
    by_dev: HashMap<Dev, usize>,
    by_holder: HashMap<u64, usize>,
    /// Mount in progress by thread: its lane.
    mounting: HashMap<u32, usize>,
    /// Memory-failure span by thread: index into spans.
    mf_open: HashMap<u32, usize>,
    /// Lane each span notified.
    spans: Vec<Option<usize>>,
    /// Whether a span already has its tick.
    span_ticked: Vec<bool>,
}

impl Builder {
    fn new_lane(&mut self) -> usize {
        self.lanes.push(Lane::default());
        self.lanes.len() - 1
    }

    fn bind_dax(&mut self, lane: usize, dax: u64) {
        if dax == 0 {
            return;
        }
        self.by_dax.entry(dax).or_insert(lane);
        if self.lanes[lane].dax_dev.is_none() {
            self.lanes[lane].dax_dev = Some(dax);
        }
    }

    fn bind_dev(&mut self, lane: usize, dev: Dev) {
        if !dev.is_known() {
            return;
        }
        self.by_dev.entry(dev).or_insert(lane);
        if !self.lanes[lane].devs.contains(&dev) {
            self.lanes[lane].devs.push(dev);
        }
    }

    fn bind_holder(&mut self, lane: usize, holder: u64) {
        if holder == 0 {
            return;
        }
        self.by_holder.insert(holder, lane);
        if !self.lanes[lane].holders.contains(&holder) {
            self.lanes[lane].holders.push(holder);
        }
    }

    /// The lane of whichever identity is known, in order of strength.
    fn find(&self, dax: u64, holder: u64, dev: Dev) -> Option<usize> {
        (dax != 0)
            .then(|| self.by_dax.get(&dax))
            .flatten()
            .or_else(|| (holder != 0).then(|| self.by_holder.get(&holder)).flatten())
            .or_else(|| dev.is_known().then(|| self.by_dev.get(&dev)).flatten())
            .copied()
    }

    /// The lane for these identities, created if none is known, and bound to all of them.
    fn lane(&mut self, dax: u64, holder: u64, dev: Dev) -> usize {
        let l = match self.find(dax, holder, dev) {
            Some(l) => l,
            None => self.new_lane(),
        };
        self.bind_dax(l, dax);
        self.bind_holder(l, holder);
        self.bind_dev(l, dev);
        l
    }

    fn slot(&mut self, ev: &TraceEvent) -> Slot {
        let tid = ev.tid;
        match &ev.data {
            EventData::HolderGet {
                dax_dev,
                holder,
                dev,
                ..
            } => {
                if *dax_dev == 0 {
                    // A device of this filesystem that cannot do DAX (external log, rt device):
                    // a line in its filesystem's lane.
                    return match self
                        .find(0, *holder, Dev(0))
                        .or_else(|| self.mounting.get(&tid).copied())
                    {
                        Some(l) => Slot::Lane(l),
                        None => Slot::Other,
                    };
                }
                let l = match self.find(*dax_dev, *holder, *dev) {
                    Some(l) => l,
                    None => match self.mounting.get(&tid) {
                        Some(&l) => l,
                        None => self.new_lane(),
                    },
                };
                self.bind_dax(l, *dax_dev);
                self.bind_holder(l, *holder);
                self.bind_dev(l, *dev);
                Slot::Lane(l)
            }
            EventData::HolderPut { dax_dev, holder } => {
                Slot::Lane(self.lane(*dax_dev, *holder, Dev(0)))
            }
            EventData::FillSuperEnter(s) => {
                let l = match self.find(0, s.holder, s.dev) {
                    Some(l) => l,
                    None => self.new_lane(),
                };
                self.bind_holder(l, s.holder);
                self.bind_dev(l, s.dev);
                self.mounting.insert(tid, l);
                Slot::Lane(l)
            }
            EventData::GetTreeExit(s) => {
                // Fires for every filesystem type: only mounts we know of count.
                let started = self.mounting.remove(&tid);
                match self.find(0, s.holder, s.dev).or(started) {
                    Some(l) => Slot::Lane(l),
                    None => Slot::Other,
                }
            }
            EventData::FillSuperExit(s)
            | EventData::MountfsEnter(s)
            | EventData::MountfsExit(s)
            | EventData::LogRecoverEnter(s)
            | EventData::LogRecoverExit(s)
            | EventData::LogRecoverFinishEnter(s)
            | EventData::LogRecoverFinishExit(s)
            | EventData::PutSuper(s) => {
                let l = match self
                    .find(0, s.holder, s.dev)
                    .or_else(|| self.mounting.get(&tid).copied())
                {
                    Some(l) => l,
                    None => self.new_lane(),
                };
                self.bind_holder(l, s.holder);
                self.bind_dev(l, s.dev);
                Slot::Lane(l)
            }
            EventData::XfsTracepoint { dev, .. } => {
                if dev.is_known() {
                    Slot::Lane(self.lane(0, 0, *dev))
                } else {
                    Slot::Other
                }
            }
            EventData::NotifyEnter {
                dax_dev, holder, ..
            } => {
                let l = self.lane(*dax_dev, *holder, Dev(0));
                if let Some(&s) = self.mf_open.get(&tid) {
                    self.spans[s].get_or_insert(l);
                }
                Slot::Lane(l)
            }
            EventData::NotifyExit { dax_dev, .. } | EventData::XfsNotifyExit { dax_dev, .. } => {
                let l = self.lane(*dax_dev, 0, Dev(0));
                if let Some(&s) = self.mf_open.get(&tid) {
                    self.spans[s].get_or_insert(l);
                }
                Slot::Lane(l)
            }
            EventData::HolderState(t) => Slot::Lane(self.lane(t.dax_dev, t.holder, t.dev)),
            EventData::Notification(n) => Slot::Lane(self.lane(n.dax_dev, n.holder, n.dev)),
            EventData::MemoryFailureEnter { .. } => {
                self.spans.push(None);
                self.span_ticked.push(false);
                let s = self.spans.len() - 1;
                self.mf_open.insert(tid, s);
                Slot::Span(s)
            }
            EventData::MfEvent { .. } => match self.mf_open.get(&tid) {
                Some(&s) => Slot::Span(s),
                None => Slot::Other,
            },
            EventData::MemoryFailureExit { .. } => match self.mf_open.remove(&tid) {
                Some(s) => Slot::Span(s),
                None => Slot::Other,
            },
            EventData::SyscallExit { .. } => Slot::Pid(ev.pid),
            EventData::Unknown { .. } => Slot::Other,
        }
    }
}

fn ret_str(ret: i64) -> String {
    match errno_name(ret) {
        Some(n) => format!("{ret} ({n})"),
        None => ret.to_string(),
    }
}

/// What a line of the text timeline says about a notification.
pub fn notification_detail(n: &Notification, phase: &str) -> String {
    let mut s = format!(
        "{} during {phase}: off={:#x} len={} ret={}",
        n.verdict.name().to_uppercase(),
        n.offset,
        n.len,
        ret_str(n.ret)
    );
    if let Some(x) = n.xfs_ret {
        let _ = write!(s, " xfs_ret={}", ret_str(x));
    }
    if let Some(r) = n.readiness {
        let _ = write!(
            s,
            " sb={}",
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        );
    }
    if let Some(e) = n.enter_seq {
        let _ = write!(s, " (enter seq {e})");
    }
    s
}

impl Timeline {
    /// Builds the timeline from a session's events (kernel events in seq order, each followed by
    /// what it caused). Derived events are computed here if the recording has none.
    pub fn build(events: &[TraceEvent]) -> Timeline {
        let mut events = ensure_derived(events);
        // Kernel order; a derived event keeps its cause's seq and stays after it.
        events.sort_by_key(|e| e.seq);
        let t0 = events.iter().map(|e| e.ktime_ns).min().unwrap_or(0);
        let t1 = events.iter().map(|e| e.ktime_ns).max().unwrap_or(0);
        let mut b = Builder::default();
        let slots: Vec<Slot> = events.iter().map(|e| b.slot(e)).collect();
        // Which lanes each process touched, for syscall exits.
        let mut pid_lanes: HashMap<u32, Vec<usize>> = HashMap::new();
        for (ev, slot) in events.iter().zip(&slots) {
            let lane = match *slot {
                Slot::Lane(l) => Some(l),
                Slot::Span(s) => b.spans[s],
                _ => None,
            };
            if let Some(l) = lane {
                let v = pid_lanes.entry(ev.pid).or_default();
                if !v.contains(&l) {
                    v.push(l);
                }
            }
        }
        let mut tl = Timeline {
            t0_ns: t0,
            span_ns: t1 - t0,
            ..Timeline::default()
        };
        let mut lanes = std::mem::take(&mut b.lanes);
        let mut releases_nothing: HashSet<u64> = HashSet::new();
        // Derived notifications replace the notify_enter/xfs_notify_exit/notify_exit lines they
        // summarise: (thread, first seq, last seq) of each.
        let summarised: Vec<(u32, u64, u64)> = events
            .iter()
            .filter_map(|e| match &e.data {
                EventData::Notification(n) => {
                    Some((e.tid, n.enter_seq.unwrap_or(n.exit_seq), n.exit_seq))
                }
                _ => None,
            })
            .collect();
        let is_summarised = |ev: &TraceEvent| {
            summarised
                .iter()
                .any(|&(tid, a, z)| tid == ev.tid && a <= ev.seq && ev.seq <= z)
        };
        for (ev, slot) in events.iter().zip(&slots) {
            let lane = match *slot {
                Slot::Lane(l) => Some(l),
                Slot::Span(s) => b.spans[s],
                Slot::Pid(p) => match pid_lanes.get(&p).map(|v| v.as_slice()) {
                    Some([l]) => Some(*l),
                    _ => None,
                },
                Slot::Other => None,
            };
            let t_ns = ev.ktime_ns - t0;
            // The tick of a memory failure: its entry, or its tracepoint when the entry probe
            // did not attach.
            let tick = match (&ev.data, *slot) {
                (EventData::MemoryFailureEnter { pfn, .. }, Slot::Span(s)) => {
                    b.span_ticked[s] = true;
                    Some(*pfn)
                }
                (EventData::MfEvent { pfn, .. }, Slot::Span(s)) if !b.span_ticked[s] => {
                    b.span_ticked[s] = true;
                    Some(*pfn)
                }
                (EventData::MfEvent { pfn, .. }, Slot::Other) => Some(*pfn),
                _ => None,
            }
            .map(|pfn| PfnTick {
                seq: ev.seq,
                t_ns,
                pfn,
            });
            match &ev.data {
                EventData::HolderState(t) => {
                    let Some(l) = lane else { continue };
                    let lane = &mut lanes[l];
                    // Fold into the line of the event that caused it.
                    if let Some(step) = lane
                        .steps
                        .iter_mut()
                        .rev()
                        .find(|s| s.seq == ev.seq && s.kind == t.cause)
                    {
                        step.transition = Some((t.from, t.to));
                    } else {
                        lane.steps.push(Step {
                            seq: ev.seq,
                            t_ns,
                            pid: ev.pid,
                            comm: ev.comm.clone(),
                            kind: "holder_state",
                            detail: format!("({})", t.cause),
                            transition: Some((t.from, t.to)),
                        });
                    }
                    if let Some(last) = lane.bands.last_mut() {
                        last.end_ns.get_or_insert(t_ns);
                    }
                    lane.bands.push(Band {
                        state: t.to,
                        start_ns: t_ns,
                        end_ns: None,
                        seq: ev.seq,
                        inferred: false,
                    });
                }
                EventData::Notification(n) => {
                    let mark = Mark {
                        seq: ev.seq,
                        t_ns,
                        verdict: n.verdict,
                        phase: n.state,
                        readiness: n.readiness,
                        offset: n.offset,
                        len: n.len,
                        ret: n.ret,
                        xfs_ret: n.xfs_ret,
                        enter_seq: n.enter_seq,
                    };
                    let step = Step {
                        seq: ev.seq,
                        t_ns,
                        pid: ev.pid,
                        comm: ev.comm.clone(),
                        kind: "notification",
                        detail: notification_detail(n, mark.phase_name()),
                        transition: None,
                    };
                    match lane {
                        Some(l) => {
                            lanes[l].steps.push(step);
                            lanes[l].marks.push(mark);
                        }
                        None => tl.other.push(step),
                    }
                }
                data => {
                    if matches!(
                        data,
                        EventData::NotifyEnter { .. }
                            | EventData::NotifyExit { .. }
                            | EventData::XfsNotifyExit { .. }
                    ) && is_summarised(ev)
                    {
                        continue;
                    }
                    let step = Step {
                        seq: ev.seq,
                        t_ns,
                        pid: ev.pid,
                        comm: ev.comm.clone(),
                        kind: data.kind_name(),
                        detail: details(data),
                        transition: None,
                    };
                    if matches!(data, EventData::HolderPut { dax_dev: 0, .. }) {
                        // fs_put_dax(NULL, holder): the release of a device that never held
                        // anything (external log, rt device). Not a release of the lane's dax.
                        releases_nothing.insert(ev.seq);
                    }
                    match lane {
                        Some(l) => {
                            lanes[l].steps.push(step);
                            lanes[l].pfns.extend(tick);
                        }
                        None => {
                            tl.other.push(step);
                            tl.other_pfns.extend(tick);
                        }
                    }
                }
            }
        }
        // States the tracker could not conclude because the holder registered before the
        // session: an unmount and a release still show.
        for lane in &mut lanes {
            let mut extra = Vec::new();
            for s in &lane.steps {
                let state = match s.kind {
                    "put_super" => State::Unmounting,
                    "holder_put" if !releases_nothing.contains(&s.seq) => State::Released,
                    _ => continue,
                };
                if s.transition.is_none() {
                    extra.push(Band {
                        state,
                        start_ns: s.t_ns,
                        end_ns: None,
                        seq: s.seq,
                        inferred: true,
                    });
                }
            }
            if extra.is_empty() {
                continue;
            }
            lane.bands.extend(extra);
            lane.bands.sort_by_key(|b| b.seq);
            let starts: Vec<u64> = lane.bands.iter().map(|b| b.start_ns).collect();
            for (i, band) in lane.bands.iter_mut().enumerate() {
                band.end_ns = starts.get(i + 1).copied();
            }
        }
        tl.lanes = lanes;
        tl
    }

    /// Notifications of every lane, in seq order.
    pub fn marks(&self) -> Vec<&Mark> {
        let mut v: Vec<&Mark> = self.lanes.iter().flat_map(|l| &l.marks).collect();
        v.sort_by_key(|m| m.seq);
        v
    }
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The text report: a header, then each device's timeline, then what belongs to none.
pub fn render_text(s: &SessionFile, tl: &Timeline) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "session: {}", s.command.join(" "));
    let attached = s.probes.iter().filter(|p| p.method.is_some()).count();
    let _ = writeln!(
        o,
        "kernel {}, attach {} ({attached}/{} probes attached), started {}, {} ms, exit {}",
        s.kernel,
        s.attach,
        s.probes.len(),
        s.started_wall,
        ms(s.duration_ns),
        match s.exit_status {
            crate::session_file::ExitStatus::Code(c) => format!("code {c}"),
            crate::session_file::ExitStatus::Signal(g) => format!("signal {g}"),
        }
    );
    let _ = writeln!(
        o,
        "{} events; lost: {} in the kernel, {} sequence gaps",
        s.events.len(),
        s.lost.kernel,
        s.lost.seq_gaps
    );
    if let Some(e) = &s.error {
        let _ = writeln!(o, "error: {e}");
    }
    let _ = writeln!(o, "times in ms from the first event");
    for (i, lane) in tl.lanes.iter().enumerate() {
        let _ = writeln!(o, "\ndevice {}: {}", i + 1, lane.label(&s.devices));
        if !lane.holders.is_empty() {
            let hs: Vec<String> = lane.holders.iter().map(|h| format!("{h:#x}")).collect();
            let _ = writeln!(o, "  holders: {}", hs.join(", "));
        }
        if !lane.bands.is_empty() {
            let names: Vec<String> = lane
                .bands
                .iter()
                .map(|b| {
                    if b.inferred {
                        format!("({})", b.state.name())
                    } else {
                        b.state.name().to_string()
                    }
                })
                .collect();
            let _ = writeln!(o, "  states: {}", names.join(" -> "));
        }
        write_steps(&mut o, &lane.steps);
    }
    if !tl.other.is_empty() {
        let _ = writeln!(o, "\nnot tied to a device:");
        write_steps(&mut o, &tl.other);
    }
    let marks = tl.marks();
    let mut by_verdict: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &marks {
        *by_verdict.entry(m.verdict.name()).or_default() += 1;
    }
    let counts: Vec<String> = by_verdict.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        o,
        "\nnotifications: {}",
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    );
    o
}

fn write_steps(o: &mut String, steps: &[Step]) {
    let _ = writeln!(
        o,
        "  {:>12} {:>6}  {:<18} {:<24} WHAT",
        "MS", "SEQ", "TASK", "EVENT"
    );
    for s in steps {
        let mut what = s.detail.clone();
        if let Some((from, to)) = s.transition {
            let _ = write!(
                what,
                "  [{} -> {}]",
                from.map(|f| f.name()).unwrap_or("new"),
                to.name()
            );
        }
        let task = format!("{}({})", s.comm, s.pid);
        let _ = writeln!(
            o,
            "  {:>12} {:>6}  {:<18} {:<24} {what}",
            ms(s.t_ns),
            s.seq,
            task,
            s.kind
        );
    }
}

/// Colours of the holder states.
pub fn state_colour(s: State) -> &'static str {
    match s {
        State::Registered => "#9ecae1",
        State::Mounting => "#fdd49e",
        State::Recovering => "#fc8d59",
        State::MountDone => "#c7e9c0",
        State::Ready => "#41ab5d",
        State::Unmounting => "#bcbddc",
        State::Released => "#d9d9d9",
        State::Failed => "#7f0000",
    }
}

/// Colours of the verdicts.
pub fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Delivered => "#2166ac",
        Verdict::Premature => "#e31a1c",
        Verdict::NoHolder => "#ff7f00",
        Verdict::Unsupported => "#6a3d9a",
        Verdict::DeviceDead => "#000000",
        Verdict::Failed => "#8c510a",
    }
}

const ALL_STATES: [State; 8] = [
    State::Registered,
    State::Mounting,
    State::Recovering,
    State::MountDone,
    State::Ready,
    State::Unmounting,
    State::Released,
    State::Failed,
];

const ALL_VERDICTS: [Verdict; 6] = [
    Verdict::Delivered,
    Verdict::Premature,
    Verdict::NoHolder,
    Verdict::Unsupported,
    Verdict::DeviceDead,
    Verdict::Failed,
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A 1-2-5 step giving about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The SVG picture: one swimlane per device with the holder's states as coloured bands along a
/// time axis, notifications as triangles coloured by verdict, memory failures as ticks, and a
/// legend.
pub fn render_svg(s: &SessionFile, tl: &Timeline) -> String {
    const W: f64 = 1100.0;
    const LEFT: f64 = 250.0;
    const RIGHT: f64 = 30.0;
    const TOP: f64 = 56.0;
    const LANE_H: f64 = 78.0;
    let plot_w = W - LEFT - RIGHT;
    // The axis runs a little past the last event so that the final state shows.
    let span_ms = (tl.span_ns as f64 / 1e6).max(1.0) * 1.04;
    let x = |ns: u64| LEFT + (ns as f64 / 1e6) / span_ms * plot_w;
    let x_end = LEFT + plot_w;
    let other_lane = !tl.other.is_empty() || !tl.other_pfns.is_empty();
    let n_lanes = tl.lanes.len() + usize::from(other_lane);
    let axis_y = TOP + n_lanes.max(1) as f64 * LANE_H + 6.0;
    let legend_y = axis_y + 44.0;
    let h = legend_y + 70.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        o,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">notify session: {}</text>"#,
        esc(&s.command.join(" "))
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="38" fill="#555">kernel {}, attach {}, {} events, lost {} + {} gaps, exit {}, started {}</text>"##,
        esc(&s.kernel),
        esc(&s.attach),
        s.events.len(),
        s.lost.kernel,
        s.lost.seq_gaps,
        match s.exit_status {
            crate::session_file::ExitStatus::Code(c) => format!("code {c}"),
            crate::session_file::ExitStatus::Signal(g) => format!("signal {g}"),
        },
        esc(&s.started_wall)
    );
    for (i, lane) in tl.lanes.iter().enumerate() {
        let y0 = TOP + i as f64 * LANE_H;
        let bar_y = y0 + 28.0;
        let _ = writeln!(o, r#"<g class="lane" data-lane="{}">"#, esc(&lane.key()));
        let fill = if i % 2 == 0 { "#f4f4f4" } else { "#fafafa" };
        let _ = writeln!(
            o,
            r#"<rect x="0" y="{y0}" width="{W}" height="{LANE_H}" fill="{fill}"/>"#
        );
        let label = lane.label(&s.devices);
        let (first, second) = match label.split_once(", dax ") {
            Some((a, b)) => (a.to_string(), format!("dax {b}")),
            None => (label.clone(), String::new()),
        };
        let _ = writeln!(
            o,
            r#"<text x="10" y="{}" font-weight="bold">{}</text>"#,
            y0 + 34.0,
            esc(&first)
        );
        if !second.is_empty() {
            let _ = writeln!(
                o,
                r##"<text x="10" y="{}" font-size="10" fill="#555">{}</text>"##,
                y0 + 50.0,
                esc(&second)
            );
        }
        // The lane's empty track, then the states over it.
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{bar_y}" width="{plot_w}" height="20" fill="none" stroke="#cccccc"/>"##
        );
        for b in &lane.bands {
            let x0 = x(b.start_ns);
            let x1 = b.end_ns.map(x).unwrap_or(x_end);
            let w = (x1 - x0).max(1.5);
            let dash = if b.inferred {
                r##" stroke="#444" stroke-dasharray="3,2""##
            } else {
                ""
            };
            let _ = writeln!(
                o,
                r#"<rect class="band state-{n}" x="{x0:.2}" y="{bar_y}" width="{w:.2}" height="20" fill="{c}"{dash}><title>{n}{inf} from {t} ms (seq {seq})</title></rect>"#,
                n = b.state.name(),
                c = state_colour(b.state),
                inf = if b.inferred { " (inferred)" } else { "" },
                t = ms(b.start_ns),
                seq = b.seq
            );
            if w > 8.0 * b.state.name().len() as f64 {
                let fg = if matches!(b.state, State::Failed | State::Ready) {
                    "#ffffff"
                } else {
                    "#222222"
                };
                let _ = writeln!(
                    o,
                    r#"<text x="{:.2}" y="{}" font-size="11" fill="{fg}">{}</text>"#,
                    x0 + 4.0,
                    bar_y + 14.0,
                    b.state.name()
                );
            }
        }
        // Every event of the lane as a small dot on the track (tooltip: seq, kind, details).
        for st in lane.steps.iter().filter(|s| s.kind != "notification") {
            let _ = writeln!(
                o,
                r##"<circle class="step" cx="{:.2}" cy="{}" r="2.5" fill="#333" stroke="#fff" stroke-width="0.8"><title>seq {} {} {}({}): {}</title></circle>"##,
                x(st.t_ns),
                bar_y + 10.0,
                st.seq,
                st.kind,
                esc(&st.comm),
                st.pid,
                esc(&st.detail)
            );
        }
        for m in &lane.marks {
            let_marker(&mut o, x(m.t_ns), y0 + 4.0, m);
        }
        for t in &lane.pfns {
            pfn_tick(&mut o, x(t.t_ns), bar_y + 22.0, t);
        }
        let _ = writeln!(o, "</g>");
    }
    if other_lane {
        let y0 = TOP + tl.lanes.len() as f64 * LANE_H;
        let _ = writeln!(o, r#"<g class="other">"#);
        let _ = writeln!(
            o,
            r##"<rect x="0" y="{y0}" width="{W}" height="{LANE_H}" fill="#ffffff" stroke="#eeeeee"/>"##
        );
        let _ = writeln!(
            o,
            r##"<text x="10" y="{}" fill="#555">not tied to a device</text>"##,
            y0 + 34.0
        );
        for st in &tl.other {
            let _ = writeln!(
                o,
                r##"<circle class="event" cx="{:.2}" cy="{}" r="3.5" fill="#777"><title>seq {} {} {}({}): {}</title></circle>"##,
                x(st.t_ns),
                y0 + 38.0,
                st.seq,
                st.kind,
                esc(&st.comm),
                st.pid,
                esc(&st.detail)
            );
        }
        for t in &tl.other_pfns {
            pfn_tick(&mut o, x(t.t_ns), y0 + 50.0, t);
        }
        let _ = writeln!(o, "</g>");
    }
    // Time axis.
    let _ = writeln!(o, r#"<g class="axis">"#);
    let _ = writeln!(
        o,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{x_end}" y2="{axis_y}" stroke="#333"/>"##
    );
    let step = tick_step(span_ms, 8.0);
    let mut t = 0.0;
    while t <= span_ms + 1e-9 {
        let xx = LEFT + t / span_ms * plot_w;
        let label = if step >= 1000.0 {
            format!("{} s", t / 1000.0)
        } else if step >= 1.0 {
            format!("{t:.0} ms")
        } else {
            format!("{t:.3} ms")
        };
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.2}" y1="{}" x2="{xx:.2}" y2="{}" stroke="#333"/><line x1="{xx:.2}" y1="{TOP}" x2="{xx:.2}" y2="{axis_y}" stroke="#000" stroke-opacity="0.07"/><text x="{xx:.2}" y="{}" text-anchor="middle" font-size="11">{label}</text>"##,
            axis_y,
            axis_y + 5.0,
            axis_y + 18.0
        );
        t += step;
    }
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="{}" font-size="11" fill="#555">time since the first event</text>"##,
        axis_y + 34.0
    );
    let _ = writeln!(o, "</g>");
    // Legend.
    let _ = writeln!(o, r#"<g class="legend">"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="{}" font-weight="bold">holder state</text>"#,
        legend_y + 12.0
    );
    for (i, st) in ALL_STATES.iter().enumerate() {
        let lx = 110.0 + i as f64 * 112.0;
        let _ = writeln!(
            o,
            r##"<rect class="legend-state state-{n}" x="{lx}" y="{}" width="16" height="12" fill="{c}" stroke="#888"/><text x="{}" y="{}">{n}</text>"##,
            legend_y + 2.0,
            lx + 20.0,
            legend_y + 12.0,
            n = st.name(),
            c = state_colour(*st)
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="10" y="{}" font-weight="bold">notification</text>"#,
        legend_y + 36.0
    );
    for (i, v) in ALL_VERDICTS.iter().enumerate() {
        let lx = 110.0 + i as f64 * 112.0;
        let (cx, cy) = (lx + 8.0, legend_y + 26.0);
        let _ = writeln!(
            o,
            r##"<path class="legend-verdict verdict-{n}" d="M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z" fill="{c}" stroke="#222"/><text x="{}" y="{}">{n}</text>"##,
            cx - 7.0,
            cy,
            cx + 7.0,
            cy,
            cx,
            cy + 12.0,
            lx + 20.0,
            legend_y + 36.0,
            n = v.name(),
            c = verdict_colour(*v)
        );
    }
    let lx = 110.0 + 6.0 * 112.0;
    let _ = writeln!(
        o,
        r##"<line x1="{lx}" y1="{}" x2="{lx}" y2="{}" stroke="#222" stroke-width="2"/><text x="{}" y="{}">memory_failure (pfn)</text>"##,
        legend_y + 24.0,
        legend_y + 38.0,
        lx + 8.0,
        legend_y + 36.0
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="{}" font-size="10" fill="#555">dashed band: inferred from put_super/holder_put of a holder registered before the session</text>"##,
        legend_y + 58.0
    );
    let _ = writeln!(o, "</g>");
    let _ = writeln!(o, "</svg>");
    o
}

fn let_marker(o: &mut String, cx: f64, top: f64, m: &Mark) {
    let _ = writeln!(
        o,
        r##"<path class="marker verdict-{n}" d="M{:.2},{:.1} L{:.2},{:.1} L{:.2},{:.1} Z" fill="{c}" stroke="#222"><title>seq {seq}: {n} during {phase}, off {off:#x} len {len}, ret {ret}</title></path>"##,
        cx - 8.0,
        top,
        cx + 8.0,
        top,
        cx,
        top + 20.0,
        n = m.verdict.name(),
        c = verdict_colour(m.verdict),
        seq = m.seq,
        phase = m.phase_name(),
        off = m.offset,
        len = m.len,
        ret = ret_str(m.ret)
    );
}

fn pfn_tick(o: &mut String, cx: f64, y: f64, t: &PfnTick) {
    let _ = writeln!(
        o,
        r##"<line class="pfn" x1="{cx:.2}" y1="{y}" x2="{cx:.2}" y2="{}" stroke="#222" stroke-width="2"><title>memory_failure pfn {:#x} (seq {})</title></line><text x="{:.2}" y="{}" font-size="9" fill="#333">{:#x}</text>"##,
        y + 14.0,
        t.pfn,
        t.seq,
        cx + 3.0,
        y + 12.0,
        t.pfn
    );
}

/// Converts SVG text to a PNG file with `rsvg-convert` (Debian: librsvg2-bin): the one
/// rasteriser that is a package away, so that notify carries no rendering library.
pub fn svg_to_png(svg: &str, png: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = match Command::new("rsvg-convert")
        .args(["--format", "png", "--background-color", "white", "--output"])
        .arg(png)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "--png needs rsvg-convert, which is not installed (Debian: apt-get install \
             librsvg2-bin); --svg writes the picture without it"
        ),
        Err(e) => anyhow::bail!("cannot run rsvg-convert: {e}"),
    };
    child
        .stdin
        .take()
        .context("rsvg-convert stdin")?
        .write_all(svg.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "rsvg-convert failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `notify report SESSION [--svg FILE] [--png FILE]`.
pub fn run(session: &Path, svg: Option<&Path>, png: Option<&Path>) -> anyhow::Result<()> {
    let s = SessionFile::load(session)?;
    let tl = Timeline::build(&s.events);
    print!("{}", render_text(&s, &tl));
    if svg.is_some() || png.is_some() {
        let picture = render_svg(&s, &tl);
        if let Some(p) = svg {
            std::fs::write(p, &picture).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("notify: wrote {}", p.display());
        }
        if let Some(p) = png {
            svg_to_png(&picture, p)?;
            eprintln!("notify: wrote {}", p.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_file::{ExitStatus, FORMAT, Lost, VERSION};

    fn fixture(name: &str) -> Vec<TraceEvent> {
        let p = format!(
            "{}/../xtask/tests/fixtures/{name}/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn session(events: Vec<TraceEvent>) -> SessionFile {
        SessionFile {
            format: FORMAT.into(),
            version: VERSION,
            kernel: "6.12.0".into(),
            attach: "kprobe".into(),
            probes: vec![],
            lost: Lost::default(),
            command: vec!["sh".into(), "scenario".into()],
            exit_status: ExitStatus::Code(0),
            started_wall: "2025-01-01T00:00:00.000Z".into(),
            duration_ns: 1,
            error: None,
            devices: [("259:0".to_string(), "pmem0".to_string())].into(),
            events,
        }
    }

    const FLAVOURS: [&str; 4] = ["6.1-fentry", "6.1-kprobe", "6.12-fentry", "6.12-kprobe"];

    #[test]
    fn premature_fixture_a_notification_during_recovery() {
        for fl in FLAVOURS {
            let tl = Timeline::build(&fixture(&format!("{fl}/premature")));
            assert_eq!(tl.lanes.len(), 1, "{fl}: {:#?}", tl.lanes);
            let lane = &tl.lanes[0];
            assert_eq!(lane.devs.first(), Some(&Dev(259 << 20)), "{fl}");
            assert!(lane.dax_dev.is_some(), "{fl}");
            assert_eq!(
                lane.states(),
                [
                    State::Registered,
                    State::Mounting,
                    State::Recovering,
                    State::Mounting,
                    State::MountDone,
                    State::Ready
                ],
                "{fl}"
            );
            assert_eq!(lane.marks.len(), 1, "{fl}");
            let m = &lane.marks[0];
            assert_eq!(m.verdict, Verdict::Premature, "{fl}");
            assert_eq!(m.phase, Some(State::Recovering), "{fl}");
            // The notification lies inside the recovering band, in time and in seq.
            let rec = lane
                .bands
                .iter()
                .find(|b| b.state == State::Recovering)
                .unwrap();
            assert!(
                rec.start_ns <= m.t_ns && m.t_ns <= rec.end_ns.unwrap() && rec.seq < m.seq,
                "{fl}: {rec:?} {m:?}"
            );
            // The memory failure that raised it is on this device's lane.
            assert_eq!(lane.pfns.len(), 1, "{fl}");
            // Ordering: steps are in seq order, the first event at time 0.
            assert!(lane.steps.windows(2).all(|w| w[0].seq <= w[1].seq), "{fl}");
            assert_eq!(lane.steps[0].t_ns, 0, "{fl}");
            assert_eq!(lane.steps[0].kind, "fill_super_enter", "{fl}");
            // The mount(2) exit is attributed to the device through its process.
            assert!(
                lane.steps.iter().any(|s| s.kind == "syscall_exit"),
                "{fl}: {:#?}",
                lane.steps
            );
            assert!(tl.other.is_empty(), "{fl}: {:#?}", tl.other);
        }
    }

    #[test]
    fn premature_text_timeline_in_order() {
        let evs = fixture("6.12-kprobe/premature");
        // What the text must show, taken from the recorded kernel events themselves.
        let dax = evs
            .iter()
            .find_map(|e| match e.data {
                EventData::HolderGet { dax_dev, .. } => Some(dax_dev),
                _ => None,
            })
            .expect("a holder_get");
        let n = evs
            .iter()
            .find_map(|e| match &e.data {
                EventData::Notification(n) => Some((e.seq, e.ktime_ns, n.enter_seq)),
                _ => None,
            })
            .expect("a notification");
        let t0 = evs.iter().map(|e| e.ktime_ns).min().unwrap();
        let s = session(evs);
        let tl = Timeline::build(&s.events);
        let text = render_text(&s, &tl);
        assert!(
            text.contains(&format!("device 1: 259:0 (pmem0), dax {dax:#x}")),
            "{text}"
        );
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing:\n{text}"))
        };
        // registration -> fill_super -> log recovery -> notification -> ready, in that order.
        let order = [
            "[new -> registered]",
            "[registered -> mounting]",
            "[mounting -> recovering]",
            "PREMATURE during recovering",
            "[recovering -> mounting]",
            "[mounting -> mount_done]",
            "[mount_done -> ready]",
            "notifications: 1 premature",
        ];
        for w in order.windows(2) {
            assert!(at(w[0]) < at(w[1]), "{} before {}:\n{text}", w[0], w[1]);
        }
        // Seq numbers and ms since the first event (the mount's fill_super_enter).
        let (seq, ktime, enter) = n;
        let line = text.lines().find(|l| l.contains("PREMATURE")).unwrap();
        assert!(line.contains(&format!(" {seq}  ")), "{line}");
        let ms = format!("{:.3}", (ktime - t0) as f64 / 1e6);
        assert!(line.contains(&ms), "{ms}: {line}");
        assert!(
            line.contains(&format!("(enter seq {})", enter.unwrap())),
            "{line}"
        );
        // The notify entry/returns it summarises are not repeated.
        for k in ["notify_enter", "xfs_notify_exit", "notify_exit"] {
            assert!(!text.contains(&format!(" {k} ")), "{k}:\n{text}");
        }
    }

    #[test]
    fn external_log_release_is_not_a_second_release() {
        // The mount suite mounts with external logs: unmount calls fs_put_dax(NULL, holder) for
        // the log device. Every holder registered inside the session, so nothing is inferred.
        for fl in FLAVOURS {
            let p = format!(
                "{}/../xtask/tests/fixtures/{fl}/mount_suite/session.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let s = SessionFile::load(Path::new(&p)).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                s.events
                    .iter()
                    .any(|e| matches!(e.data, EventData::HolderPut { dax_dev: 0, .. })),
                "{fl}: the fixture has a NULL-dax release"
            );
            let tl = Timeline::build(&s.events);
            for lane in &tl.lanes {
                let inferred: Vec<_> = lane.bands.iter().filter(|b| b.inferred).collect();
                assert!(inferred.is_empty(), "{fl}: inferred {inferred:?}");
            }
        }
    }

    #[test]
    fn remount_fixture_unmount_release_then_a_new_holder() {
        for fl in FLAVOURS {
            let tl = Timeline::build(&fixture(&format!("{fl}/remount")));
            assert_eq!(tl.lanes.len(), 1, "{fl}: {:#?}", tl.lanes);
            let lane = &tl.lanes[0];
            assert_eq!(lane.holders.len(), 2, "{fl}: old and new holder");
            // The old holder was mounted before the session: its unmount and release are
            // inferred from the events, then the tracker follows the new mount.
            let states = lane.states();
            assert_eq!(
                states,
                [
                    State::Unmounting,
                    State::Released,
                    State::Registered,
                    State::Mounting,
                    State::Recovering,
                    State::Mounting,
                    State::MountDone,
                    State::Ready
                ],
                "{fl}"
            );
            assert!(lane.bands[0].inferred && lane.bands[1].inferred);
            assert!(!lane.bands[2].inferred);
            let m = &lane.marks[..];
            assert_eq!(m.len(), 1, "{fl}");
            assert_eq!(m[0].verdict, Verdict::Delivered, "{fl}");
            assert_eq!(m[0].phase, Some(State::Ready), "{fl}");
            // The umount(2) exit and the umount record belong to the device.
            for k in ["syscall_exit", "xfs_tracepoint", "put_super", "holder_put"] {
                assert!(lane.steps.iter().any(|s| s.kind == k), "{fl}: {k}");
            }
            // Bands tile the axis: each ends where the next starts.
            for w in lane.bands.windows(2) {
                assert_eq!(w[0].end_ns, Some(w[1].start_ns), "{fl}");
            }
            assert_eq!(lane.bands.last().unwrap().end_ns, None);
        }
    }

    #[test]
    fn mounted_and_no_holder_fixtures() {
        for fl in FLAVOURS {
            let tl = Timeline::build(&fixture(&format!("{fl}/mounted")));
            assert_eq!(tl.lanes.len(), 1, "{fl}");
            let m = &tl.lanes[0].marks;
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].verdict, Verdict::Delivered, "{fl}");
            // Mounted before the session: no tracked state, the kernel said born.
            assert_eq!(m[0].phase, None);
            assert_eq!(m[0].phase_name(), "untracked, superblock born");
            assert!(tl.lanes[0].bands.is_empty());

            let tl = Timeline::build(&fixture(&format!("{fl}/no_holder")));
            assert_eq!(tl.lanes.len(), 1, "{fl}");
            let lane = &tl.lanes[0];
            assert!(lane.devs.is_empty() && lane.dax_dev.is_some(), "{fl}");
            assert_eq!(lane.marks[0].verdict, Verdict::NoHolder, "{fl}");
            assert_eq!(lane.marks[0].phase_name(), "no holder");
            assert_eq!(lane.pfns.len(), 1);
        }
    }

    #[test]
    fn raw_events_get_their_verdicts_derived() {
        let raw: Vec<TraceEvent> = fixture("6.1-kprobe/premature")
            .into_iter()
            .filter(|e| {
                !matches!(
                    e.data,
                    EventData::HolderState(_) | EventData::Notification(_)
                )
            })
            .collect();
        let tl = Timeline::build(&raw);
        assert_eq!(tl.lanes[0].marks[0].verdict, Verdict::Premature);
        assert_eq!(tl.lanes[0].marks[0].phase, Some(State::Recovering));
        assert_eq!(tl, Timeline::build(&fixture("6.1-kprobe/premature")));
    }

    #[test]
    fn two_devices_two_lanes() {
        // Two scenarios of different devices in one session: the no_holder one on another dax
        // device, shifted after the premature one.
        let mut evs = fixture("6.12-kprobe/premature");
        let last = evs.last().unwrap().clone();
        let other = fixture("6.1-fentry/no_holder");
        let first = other.iter().map(|e| e.ktime_ns).min().unwrap();
        let other_dax = other
            .iter()
            .find_map(|e| match e.data {
                EventData::NotifyEnter { dax_dev, .. } => Some(dax_dev),
                _ => None,
            })
            .expect("a notify_enter");
        for mut e in other {
            e.seq += last.seq;
            e.ktime_ns = last.ktime_ns + 1_000_000 + (e.ktime_ns - first);
            if let EventData::Notification(n) = &mut e.data {
                n.exit_seq += last.seq;
                n.enter_seq = n.enter_seq.map(|s| s + last.seq);
            }
            evs.push(e);
        }
        let s = session(evs);
        let tl = Timeline::build(&s.events);
        assert_eq!(tl.lanes.len(), 2);
        let svg = render_svg(&s, &tl);
        assert_eq!(svg.matches(r#"<g class="lane""#).count(), 2, "{svg}");
        assert!(svg.contains(r#"data-lane="259:0""#));
        assert!(
            svg.contains(&format!(r#"data-lane="{other_dax:#x}""#)),
            "{svg}"
        );
        assert_eq!(
            svg.matches(r#"class="marker verdict-premature""#).count(),
            1
        );
        assert_eq!(
            svg.matches(r#"class="marker verdict-no_holder""#).count(),
            1
        );
        assert_eq!(svg.matches(r#"class="pfn""#).count(), 2);
    }

    #[test]
    fn svg_lanes_markers_legend() {
        for sc in ["premature", "remount", "mounted", "no_holder"] {
            let s = session(fixture(&format!("6.12-kprobe/{sc}")));
            let tl = Timeline::build(&s.events);
            let svg = render_svg(&s, &tl);
            assert!(
                svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
                "{sc}"
            );
            assert!(svg.trim_end().ends_with("</svg>"), "{sc}");
            assert_eq!(
                svg.matches(r#"<g class="lane""#).count(),
                tl.lanes.len(),
                "{sc}: one lane per device"
            );
            let marks = tl.marks();
            assert_eq!(
                svg.matches(r#"<path class="marker "#).count(),
                marks.len(),
                "{sc}: a marker per notification"
            );
            for m in marks {
                let v = m.verdict;
                let needle = format!(r#"class="marker verdict-{}" d="#, v.name());
                let at = svg
                    .find(&needle)
                    .unwrap_or_else(|| panic!("{sc}: {needle}"));
                let tag = &svg[at..at + svg[at..].find('>').unwrap()];
                assert!(
                    tag.contains(&format!(r#"fill="{}""#, verdict_colour(v))),
                    "{tag}"
                );
            }
            // The legend names every state and verdict with its colour.
            for st in ALL_STATES {
                assert!(
                    svg.contains(&format!(r#"class="legend-state state-{}" x="#, st.name())),
                    "{sc}: legend {}",
                    st.name()
                );
            }
            for v in ALL_VERDICTS {
                assert!(svg.contains(&format!("legend-verdict verdict-{}", v.name())));
            }
            // Bands in their state's colour.
            for b in tl.lanes.iter().flat_map(|l| &l.bands) {
                assert!(svg.contains(&format!(r#"class="band state-{}" "#, b.state.name())));
            }
            // Well formed enough for a strict reader: every element opened is closed.
            assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
        }
        let s = session(fixture("6.12-kprobe/premature"));
        let svg = render_svg(&s, &Timeline::build(&s.events));
        assert!(svg.contains(r##"fill="#e31a1c""##));
        assert!(svg.contains("premature during recovering"));
    }

    #[test]
    fn host_like_session_without_dax_names_the_loop_device() {
        // What a host without kprobes records: tracepoints only.
        let ev = |seq, pid, comm: &str, data| TraceEvent {
            seq,
            ktime_ns: 1_000_000 * seq,
            cpu: 0,
            pid,
            tid: pid,
            comm: comm.into(),
            data,
        };
        let loop0 = Dev(7 << 20);
        let evs = vec![
            ev(
                1,
                10,
                "mount",
                EventData::SyscallExit {
                    syscall: "mount".into(),
                    ret: 0,
                },
            ),
            ev(
                2,
                11,
                "umount",
                EventData::SyscallExit {
                    syscall: "umount".into(),
                    ret: 0,
                },
            ),
            ev(
                3,
                11,
                "umount",
                EventData::XfsTracepoint {
                    tracepoint: "xfs_log_umount_write".into(),
                    dev: loop0,
                },
            ),
        ];
        let mut s = session(evs);
        s.devices = [("7:0".to_string(), "loop0".to_string())].into();
        let tl = Timeline::build(&s.events);
        assert_eq!(tl.lanes.len(), 1);
        assert_eq!(
            tl.lanes[0].steps.len(),
            2,
            "umount exit goes with its process"
        );
        assert_eq!(tl.other.len(), 1, "the mount exit names no device");
        let text = render_text(&s, &tl);
        assert!(text.contains("device 1: 7:0 (loop0)"), "{text}");
        assert!(text.contains("not tied to a device"), "{text}");
        let svg = render_svg(&s, &tl);
        assert!(svg.contains(r#"<g class="other">"#));
        // The lane's events are drawn even without holder states.
        assert_eq!(svg.matches(r#"<circle class="step""#).count(), 2);
        // An empty session renders too.
        let empty = session(vec![]);
        let tl = Timeline::build(&empty.events);
        assert!(render_text(&empty, &tl).contains("notifications: none"));
        assert!(render_svg(&empty, &tl).contains("</svg>"));
    }
}
