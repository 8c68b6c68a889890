//! The timeline of a recorded session, one lane per device (`notify report` renders it as text,
//! `session::text`, and as SVG, `session::svg`).
//!
//! A lane is one device as the stream's device model (`stream::devices`) knows it: the dax
//! device and the block device(s) on it, tied together by the events that name both. A memory
//! failure goes to the lane of the notification its task raised; a mount-family syscall exit to
//! the one lane its process touched. What stays unattributed is listed apart.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
};

use notify_model::{
    Dev, EventData, Header, Item, Notification, Readiness, State, TraceEvent, Verdict,
    event::ret_str,
};

use crate::{
    export::sink::{details, fs_error_details, health_details},
    stream::{
        devices::{Devices, Place},
        pipeline,
    },
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

/// Adds the stream's derived items when a recording has none (a raw trace); otherwise returns
/// the items as they are. Agent records are not part of a timeline.
pub fn ensure_derived(items: &[Item]) -> Vec<Item> {
    if items.iter().any(Item::is_derived) {
        return items
            .iter()
            .filter(|i| !matches!(i, Item::Record(_)))
            .cloned()
            .collect();
    }
    pipeline::derive(items.iter().cloned())
}

/// The header of a kernel or derived item; an XFS report (no kernel sequence number) takes the
/// sequence number of the item before it in the recording, where it was read.
fn header(item: &Item, seq_before: u64) -> Option<Header> {
    match item {
        Item::Kernel(e) => Some(e.header()),
        Item::HolderState(d) => Some(d.at.clone()),
        Item::Notification(d) => Some(d.at.clone()),
        Item::FsError(e) => Some(Header {
            seq: seq_before,
            ktime_ns: e.ktime_ns,
            cpu: 0,
            pid: 0,
            tid: 0,
            comm: "xfs".into(),
        }),
        Item::Health(h) => Some(Header {
            seq: seq_before,
            ktime_ns: h.ktime_ns,
            cpu: 0,
            pid: 0,
            tid: 0,
            comm: "xfs".into(),
        }),
        Item::Record(_) => None,
    }
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
    /// Which device each event is about (the stream's one model).
    devices: Devices,
    /// Memory-failure span by thread: index into spans.
    mf_open: HashMap<u32, usize>,
    /// Lane each span notified.
    spans: Vec<Option<usize>>,
    /// Whether a span already has its tick.
    span_ticked: Vec<bool>,
}

impl Builder {
    fn slot(&mut self, item: &Item) -> Slot {
        match item {
            Item::HolderState(t) => {
                Slot::Lane(self.devices.bind(t.data.dax_dev, t.data.holder, t.data.dev))
            }
            Item::Notification(n) => {
                Slot::Lane(self.devices.bind(n.data.dax_dev, n.data.holder, n.data.dev))
            }
            Item::FsError(e) => Slot::Lane(self.devices.bind(0, 0, e.dev)),
            Item::Health(h) => Slot::Lane(self.devices.bind(0, 0, h.dev)),
            Item::Record(_) => Slot::Other,
            Item::Kernel(ev) => self.kernel_slot(ev),
        }
    }

    fn kernel_slot(&mut self, ev: &TraceEvent) -> Slot {
        let tid = ev.tid;
        match self.devices.place(ev) {
            Place::Device(d) => {
                // A notification on this thread tells where its memory failure belongs.
                if matches!(
                    ev.data,
                    EventData::NotifyEnter { .. }
                        | EventData::NotifyExit { .. }
                        | EventData::XfsNotifyExit { .. }
                ) && let Some(&s) = self.mf_open.get(&tid)
                {
                    self.spans[s].get_or_insert(d);
                }
                Slot::Lane(d)
            }
            Place::FailureOf(_) => match &ev.data {
                EventData::MemoryFailureEnter { .. } => {
                    self.spans.push(None);
                    self.span_ticked.push(false);
                    let s = self.spans.len() - 1;
                    self.mf_open.insert(tid, s);
                    Slot::Span(s)
                }
                EventData::MemoryFailureExit { .. } => match self.mf_open.remove(&tid) {
                    Some(s) => Slot::Span(s),
                    None => Slot::Other,
                },
                _ => match self.mf_open.get(&tid) {
                    Some(&s) => Slot::Span(s),
                    None => Slot::Other,
                },
            },
            Place::Process(pid) => Slot::Pid(pid),
            Place::Nowhere => Slot::Other,
        }
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
    pub fn build(items: &[Item]) -> Timeline {
        let items = ensure_derived(items);
        // Kernel order; a derived item keeps its cause's seq and stays after it, an XFS report
        // stays after the item it was read after.
        let mut seq_before = 0;
        let mut keyed: Vec<(Header, Item)> = items
            .into_iter()
            .map(|i| {
                let h = header(&i, seq_before).unwrap_or_default();
                seq_before = h.seq;
                (h, i)
            })
            .collect();
        keyed.sort_by_key(|(h, _)| h.seq);
        let (hs, items): (Vec<Header>, Vec<Item>) = keyed.into_iter().unzip();
        let t0 = hs.iter().map(|h| h.ktime_ns).min().unwrap_or(0);
        let t1 = hs.iter().map(|h| h.ktime_ns).max().unwrap_or(0);
        let mut b = Builder::default();
        let slots: Vec<Slot> = items.iter().map(|e| b.slot(e)).collect();
        // Which lanes each process touched, for syscall exits.
        let mut pid_lanes: HashMap<u32, Vec<usize>> = HashMap::new();
        for (h, slot) in hs.iter().zip(&slots) {
            let lane = match *slot {
                Slot::Lane(l) => Some(l),
                Slot::Span(s) => b.spans[s],
                _ => None,
            };
            if let Some(l) = lane {
                let v = pid_lanes.entry(h.pid).or_default();
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
        let mut lanes: Vec<Lane> = b
            .devices
            .all()
            .iter()
            .map(|d| Lane {
                dax_dev: d.dax_dev,
                devs: d.devs.clone(),
                holders: d.holders.clone(),
                ..Lane::default()
            })
            .collect();
        let mut releases_nothing: HashSet<u64> = HashSet::new();
        // Derived notifications replace the notify_enter/xfs_notify_exit/notify_exit lines they
        // summarise: (thread, first seq, last seq) of each.
        let summarised: Vec<(u32, u64, u64)> = items
            .iter()
            .filter_map(|e| match e {
                Item::Notification(n) => Some((
                    n.at.tid,
                    n.data.enter_seq.unwrap_or(n.data.exit_seq),
                    n.data.exit_seq,
                )),
                _ => None,
            })
            .collect();
        let is_summarised = |ev: &TraceEvent| {
            summarised
                .iter()
                .any(|&(tid, a, z)| tid == ev.tid && a <= ev.seq && ev.seq <= z)
        };
        for ((item, h), slot) in items.iter().zip(&hs).zip(&slots) {
            let lane = match *slot {
                Slot::Lane(l) => Some(l),
                Slot::Span(s) => b.spans[s],
                Slot::Pid(p) => match pid_lanes.get(&p).map(|v| v.as_slice()) {
                    Some([l]) => Some(*l),
                    _ => None,
                },
                Slot::Other => None,
            };
            let t_ns = h.ktime_ns - t0;
            match item {
                Item::HolderState(d) => {
                    let t = &d.data;
                    let Some(l) = lane else { continue };
                    let lane = &mut lanes[l];
                    // Fold into the line of the event that caused it.
                    if let Some(step) = lane
                        .steps
                        .iter_mut()
                        .rev()
                        .find(|s| s.seq == h.seq && s.kind == t.cause)
                    {
                        step.transition = Some((t.from, t.to));
                    } else {
                        lane.steps.push(Step {
                            seq: h.seq,
                            t_ns,
                            pid: h.pid,
                            comm: h.comm.clone(),
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
                        seq: h.seq,
                        inferred: false,
                    });
                }
                Item::Notification(d) => {
                    let n = &d.data;
                    let mark = Mark {
                        seq: h.seq,
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
                        seq: h.seq,
                        t_ns,
                        pid: h.pid,
                        comm: h.comm.clone(),
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
                Item::Record(_) => {}
                Item::FsError(_) | Item::Health(_) => {
                    let (kind, detail) = match item {
                        Item::FsError(e) => ("fs_error", fs_error_details(e)),
                        Item::Health(x) => ("health", health_details(x)),
                        _ => unreachable!(),
                    };
                    let step = Step {
                        seq: h.seq,
                        t_ns,
                        pid: 0,
                        comm: "xfs".into(),
                        kind,
                        detail,
                        transition: None,
                    };
                    match lane {
                        Some(l) => lanes[l].steps.push(step),
                        None => tl.other.push(step),
                    }
                }
                Item::Kernel(ev) => {
                    let data = &ev.data;
                    // The tick of a memory failure: its entry, or its tracepoint when the entry
                    // probe did not attach.
                    let tick = match (data, *slot) {
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
