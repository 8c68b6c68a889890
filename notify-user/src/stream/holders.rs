//! Readiness of each dax holder, and the verdict on each memory-failure notification.
//! (The types are notify_model's `holder` module: State, Verdict, Transition, Notification.)
//!
//! Pure logic, fed with kernel events in sequence order (see `reorder`). A dax device gets a
//! holder when XFS calls `fs_dax_get_by_bdev` early in `xfs_fs_fill_super`; the filesystem is
//! ready only once `vfs_get_tree` returns 0 (the VFS sets `SB_BORN` there). Notifications that
//! arrive in between are dropped by XFS with -EIO; those are what notify exists to replay.
//!
//! The mount path runs in one task, so steps are tied to their holder by thread id when the probe
//! could not read the holder pointer itself (a kernel whose BTF lacked a field).

use std::collections::HashMap;

use notify_model::{
    Dev, DevFrom, EventData, Kill, MountStep, Notification, Readiness, State, TraceEvent,
    Transition, Verdict,
};

use crate::stream::devices::Devices;

const EIO: i64 = -5;
const ENXIO: i64 = -6;
const EOPNOTSUPP: i64 = -95;

/// Something the tracker concluded.
#[derive(Clone, Debug, PartialEq)]
pub enum Conclusion {
    Transition(Transition),
    Notification(Notification),
}

/// One registration of a dax device by a holder.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub dax_dev: u64,
    pub holder: u64,
    pub dev: Dev,
    pub start_off: u64,
    pub state: State,
    /// Thread that mounts it (0 once mounted).
    pub mount_tid: u32,
    pub registered_seq: u64,
    pub ready_seq: Option<u64>,
}

#[derive(Clone, Debug)]
struct PendingNotify {
    enter_seq: u64,
    holder: u64,
    mf_flags: u32,
    readiness: Readiness,
    xfs_ret: Option<i64>,
    state: Option<State>,
    /// The block device the probe read from the holder's superblock.
    sb_dev: Dev,
    /// SIGBUS the kernel sent on this thread while the notification was handled.
    kills: Vec<Kill>,
}

/// The readiness tracker.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Live registrations by dax device.
    regs: HashMap<u64, Registration>,
    /// Mounts in progress: thread id -> holder (0 until known).
    mounting: HashMap<u32, u64>,
    /// Notifications between entry and return, by thread id.
    notifies: HashMap<u32, PendingNotify>,
    /// Which device each event is about (a notification's block device comes from here).
    devices: Devices,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Live registrations.
    pub fn registrations(&self) -> impl Iterator<Item = &Registration> {
        self.regs.values()
    }

    /// The registration of a dax device, if any.
    pub fn registration(&self, dax_dev: u64) -> Option<&Registration> {
        self.regs.get(&dax_dev)
    }

    /// The holder a mount step belongs to: the pointer the probe read, else the one this thread
    /// is mounting.
    fn holder_of(&self, step: &MountStep, tid: u32) -> u64 {
        if step.holder != 0 {
            step.holder
        } else {
            self.mounting.get(&tid).copied().unwrap_or(0)
        }
    }

    fn set_state(
        &mut self,
        holder: u64,
        to: State,
        cause: &str,
        seq: u64,
        out: &mut Vec<Conclusion>,
    ) {
        if holder == 0 {
            return;
        }
        for reg in self.regs.values_mut().filter(|r| r.holder == holder) {
            if reg.state == to {
                continue;
            }
            // A failed mount stays failed until it is released; a late step cannot revive it.
            if reg.state == State::Failed && to != State::Released {
                continue;
            }
            if to == State::Ready {
                reg.ready_seq = Some(seq);
                reg.mount_tid = 0;
            }
            out.push(Conclusion::Transition(Transition {
                dax_dev: reg.dax_dev,
                holder,
                dev: reg.dev,
                from: Some(reg.state),
                to,
                cause: cause.to_string(),
            }));
            reg.state = to;
        }
    }

    /// The stream's devices as seen so far.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Feeds one event (in sequence order) and returns what it concluded.
    pub fn apply(&mut self, ev: &TraceEvent) -> Vec<Conclusion> {
        self.devices.place(ev);
        let mut out = Vec::new();
        let tid = ev.tid;
        let cause = ev.data.kind_name();
        match &ev.data {
            EventData::FillSuperEnter(step) => {
                self.mounting.insert(tid, step.holder);
            }
            // A NULL dax_dev: the device cannot do DAX (e.g. an external log on a ram disk).
            EventData::HolderGet {
                dax_dev,
                holder,
                start_off,
                dev,
                ..
            } if *dax_dev != 0 => {
                let mount_tid = match self.mounting.get_mut(&tid) {
                    Some(h) => {
                        if *h == 0 {
                            *h = *holder;
                        }
                        tid
                    }
                    None => 0,
                };
                let reg = Registration {
                    dax_dev: *dax_dev,
                    holder: *holder,
                    dev: *dev,
                    start_off: *start_off,
                    state: State::Registered,
                    mount_tid,
                    registered_seq: ev.seq,
                    ready_seq: None,
                };
                out.push(Conclusion::Transition(Transition {
                    dax_dev: *dax_dev,
                    holder: *holder,
                    dev: *dev,
                    from: self.regs.get(dax_dev).map(|r| r.state),
                    to: State::Registered,
                    cause: cause.to_string(),
                }));
                self.regs.insert(*dax_dev, reg);
            }
            EventData::MountfsEnter(step)
            | EventData::LogRecoverExit(step)
            | EventData::LogRecoverFinishExit(step) => {
                let h = self.holder_of(step, tid);
                let to = if step.ret < 0 {
                    State::Failed
                } else {
                    State::Mounting
                };
                self.set_state(h, to, cause, ev.seq, &mut out);
            }
            EventData::LogRecoverEnter(step) | EventData::LogRecoverFinishEnter(step) => {
                let h = self.holder_of(step, tid);
                self.set_state(h, State::Recovering, cause, ev.seq, &mut out);
            }
            EventData::MountfsExit(step) | EventData::FillSuperExit(step) => {
                let h = self.holder_of(step, tid);
                if step.ret < 0 {
                    self.set_state(h, State::Failed, cause, ev.seq, &mut out);
                } else if matches!(ev.data, EventData::FillSuperExit(_)) {
                    self.set_state(h, State::MountDone, cause, ev.seq, &mut out);
                }
            }
            EventData::GetTreeExit(step) => {
                // Fires for every filesystem type; only mounts we saw start, or holders we know,
                // matter.
                let started = self.mounting.remove(&tid);
                let h = if step.holder != 0 {
                    step.holder
                } else {
                    started.unwrap_or(0)
                };
                let to = if step.ret == 0 {
                    State::Ready
                } else {
                    State::Failed
                };
                self.set_state(h, to, cause, ev.seq, &mut out);
            }
            EventData::PutSuper(step) => {
                let h = self.holder_of(step, tid);
                self.set_state(h, State::Unmounting, cause, ev.seq, &mut out);
            }
            EventData::HolderPut { dax_dev, holder } => {
                if let Some(reg) = self.regs.get(dax_dev)
                    && (reg.holder == *holder || *holder == 0)
                {
                    let reg = self.regs.remove(dax_dev).expect("present");
                    out.push(Conclusion::Transition(Transition {
                        dax_dev: *dax_dev,
                        holder: reg.holder,
                        dev: reg.dev,
                        from: Some(reg.state),
                        to: State::Released,
                        cause: cause.to_string(),
                    }));
                }
            }
            EventData::NotifyEnter {
                dax_dev,
                holder,
                mf_flags,
                readiness,
                dev,
                ..
            } => {
                self.notifies.insert(
                    tid,
                    PendingNotify {
                        enter_seq: ev.seq,
                        holder: *holder,
                        mf_flags: *mf_flags,
                        readiness: *readiness,
                        xfs_ret: None,
                        state: self.regs.get(dax_dev).map(|r| r.state),
                        sb_dev: *dev,
                        kills: Vec::new(),
                    },
                );
            }
            EventData::Sigbus {
                target,
                target_comm,
                code,
                ..
            } if *code > 0 => {
                if let Some(p) = self.notifies.get_mut(&tid) {
                    p.kills.push(Kill {
                        target: *target,
                        comm: target_comm.clone(),
                        code: *code,
                        seq: ev.seq,
                    });
                }
            }
            EventData::XfsNotifyExit { ret, .. } => {
                if let Some(p) = self.notifies.get_mut(&tid) {
                    p.xfs_ret = Some(*ret);
                }
            }
            EventData::NotifyExit {
                dax_dev,
                offset,
                len,
                ret,
            } => {
                let pending = self.notifies.remove(&tid);
                let reg = self.regs.get(dax_dev);
                let state = match &pending {
                    Some(p) => p.state,
                    None => reg.map(|r| r.state),
                };
                let holder = pending
                    .as_ref()
                    .map(|p| p.holder)
                    .filter(|h| *h != 0)
                    .or(reg.map(|r| r.holder))
                    .unwrap_or(0);
                let readiness = pending.as_ref().map(|p| p.readiness);
                let mf_flags = pending.as_ref().map(|p| p.mf_flags).unwrap_or(0);
                let verdict = if Verdict::is_removal(mf_flags, *offset, *len) {
                    Verdict::Removal
                } else {
                    verdict(*ret, holder, readiness, state)
                };
                let sb_dev = pending.as_ref().map(|p| p.sb_dev).filter(|d| d.is_known());
                let (dev, dev_from) = match reg.map(|r| r.dev).filter(|d| d.is_known()) {
                    Some(d) => (d, Some(DevFrom::Registration)),
                    None if sb_dev.is_some() => {
                        (sb_dev.unwrap_or_default(), Some(DevFrom::Superblock))
                    }
                    None => match self
                        .devices
                        .of_dax(*dax_dev)
                        .map(|d| d.dev())
                        .filter(|d| d.is_known())
                    {
                        Some(d) => (d, Some(DevFrom::EarlierRegistration)),
                        None => (Dev(0), None),
                    },
                };
                out.push(Conclusion::Notification(Notification {
                    dax_dev: *dax_dev,
                    holder,
                    dev,
                    dev_from,
                    pfn: self.devices.failing_pfn(tid),
                    start_off: reg.map(|r| r.start_off).unwrap_or(0),
                    offset: *offset,
                    len: *len,
                    mf_flags,
                    ret: *ret,
                    xfs_ret: pending.as_ref().and_then(|p| p.xfs_ret),
                    readiness,
                    state,
                    verdict,
                    enter_seq: pending.as_ref().map(|p| p.enter_seq),
                    exit_seq: ev.seq,
                    kills: pending.map(|p| p.kills).unwrap_or_default(),
                }));
            }
            _ => {}
        }
        out
    }
}

/// The verdict on a notification, from its return value and what was known of the holder.
///
/// The kernel's own read of `SB_BORN` (readiness) wins over the tracked state: it is exactly
/// what XFS checked. The tracked state decides only where that read was impossible.
pub fn verdict(
    ret: i64,
    holder: u64,
    readiness: Option<Readiness>,
    state: Option<State>,
) -> Verdict {
    match ret {
        0 => Verdict::Delivered,
        ENXIO => Verdict::DeviceDead,
        EOPNOTSUPP if holder == 0 || readiness == Some(Readiness::NoHolder) => Verdict::NoHolder,
        EOPNOTSUPP => Verdict::Unsupported,
        EIO => {
            let not_born = match readiness {
                Some(Readiness::NotBorn) => true,
                Some(Readiness::Born) => false,
                _ => !matches!(state, Some(State::Ready) | None),
            };
            if not_born {
                Verdict::Premature
            } else {
                Verdict::Failed
            }
        }
        _ => Verdict::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAX: u64 = 0xffff_8880_0000_1000;
    const DAX2: u64 = 0xffff_8880_0000_9000;
    const MP: u64 = 0xffff_8880_0000_2000;
    const MP2: u64 = 0xffff_8880_0000_a000;

    struct Seq {
        n: u64,
    }

    impl Seq {
        fn ev(&mut self, tid: u32, data: EventData) -> TraceEvent {
            self.n += 1;
            TraceEvent {
                seq: self.n,
                ktime_ns: self.n * 1000,
                cpu: 0,
                pid: tid,
                tid,
                comm: "mount".into(),
                data,
            }
        }
    }

    fn step(holder: u64, ret: i64) -> MountStep {
        MountStep {
            holder,
            dev: Dev(259 << 20),
            s_flags: 0,
            ret,
        }
    }

    fn holder_get(dax_dev: u64, holder: u64) -> EventData {
        EventData::HolderGet {
            dax_dev,
            holder,
            holder_ops: 0xffff_ffff_c000_0000,
            start_off: 0,
            dev: Dev(259 << 20),
        }
    }

    fn notify(dax_dev: u64, holder: u64, readiness: Readiness) -> EventData {
        EventData::NotifyEnter {
            dax_dev,
            holder,
            holder_ops: 0,
            offset: 0x10_0000,
            len: 4096,
            s_flags: 0,
            mf_flags: 0x20,
            readiness,
            dev: Dev(0),
        }
    }

    fn notify_exit(dax_dev: u64, ret: i64) -> EventData {
        EventData::NotifyExit {
            dax_dev,
            offset: 0x10_0000,
            len: 4096,
            ret,
        }
    }

    fn feed(t: &mut Tracker, evs: &[TraceEvent]) -> Vec<Conclusion> {
        evs.iter().flat_map(|e| t.apply(e)).collect()
    }

    fn states(d: &[Conclusion], dax_dev: u64) -> Vec<State> {
        d.iter()
            .filter_map(|d| match d {
                Conclusion::Transition(t) if t.dax_dev == dax_dev => Some(t.to),
                _ => None,
            })
            .collect()
    }

    fn notifications(d: &[Conclusion]) -> Vec<&Notification> {
        d.iter()
            .filter_map(|d| match d {
                Conclusion::Notification(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// The mount path as the kernel runs it, with log recovery, and a poisoning thread (tid 9)
    /// whose notification lands during recovery.
    #[test]
    fn premature_notification_during_log_recovery() {
        let mut s = Seq { n: 0 };
        let mut t = Tracker::new();
        let evs = [
            s.ev(1, EventData::FillSuperEnter(step(MP, 0))),
            s.ev(1, holder_get(DAX, MP)),
            s.ev(1, EventData::MountfsEnter(step(MP, 0))),
            s.ev(1, EventData::LogRecoverEnter(step(MP, 0))),
            s.ev(9, notify(DAX, MP, Readiness::NotBorn)),
            s.ev(
                9,
                EventData::XfsNotifyExit {
                    dax_dev: DAX,
                    offset: 0x10_0000,
                    len: 4096,
                    ret: EIO,
                },
            ),
            s.ev(9, notify_exit(DAX, EIO)),
            s.ev(1, EventData::LogRecoverExit(step(MP, 0))),
            s.ev(1, EventData::MountfsExit(step(MP, 0))),
            s.ev(1, EventData::FillSuperExit(step(MP, 0))),
            s.ev(1, EventData::GetTreeExit(step(MP, 0))),
            s.ev(9, notify(DAX, MP, Readiness::Born)),
            s.ev(9, notify_exit(DAX, 0)),
        ];
        let d = feed(&mut t, &evs);
        assert_eq!(
            states(&d, DAX),
            [
                State::Registered,
                State::Mounting,
                State::Recovering,
                State::Mounting,
                State::MountDone,
                State::Ready
            ]
        );
        let n = notifications(&d);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].verdict, Verdict::Premature);
        assert_eq!(n[0].state, Some(State::Recovering));
        assert_eq!(n[0].xfs_ret, Some(EIO));
        assert_eq!(n[0].enter_seq, Some(5));
        assert_eq!(n[1].verdict, Verdict::Delivered);
        assert_eq!(n[1].state, Some(State::Ready));
        assert_eq!(t.registration(DAX).unwrap().ready_seq, Some(11));
    }

    /// Holder pointers unreadable (no BTF for xfs): steps carry holder 0 and are tied to the
    /// registration by the mounting thread.
    #[test]
    fn steps_without_holder_pointers_follow_the_mounting_thread() {
        let mut s = Seq { n: 0 };
        let mut t = Tracker::new();
        let evs = [
            s.ev(1, EventData::FillSuperEnter(step(0, 0))),
            s.ev(1, holder_get(DAX, MP)),
            s.ev(1, EventData::MountfsEnter(step(0, 0))),
            s.ev(7, notify(DAX, MP, Readiness::Unknown)),
            s.ev(7, notify_exit(DAX, EIO)),
            s.ev(1, EventData::GetTreeExit(step(0, 0))),
        ];
        let d = feed(&mut t, &evs);
        assert_eq!(
            states(&d, DAX),
            [State::Registered, State::Mounting, State::Ready]
        );
        assert_eq!(notifications(&d)[0].verdict, Verdict::Premature);
    }

    /// Two devices mounting at once on two CPUs, interleaved: each keeps its own state.
    #[test]
    fn two_devices_interleaved() {
        let mut s = Seq { n: 0 };
        let mut t = Tracker::new();
        let evs = [
            s.ev(1, EventData::FillSuperEnter(step(MP, 0))),
            s.ev(2, EventData::FillSuperEnter(step(0, 0))),
            s.ev(1, holder_get(DAX, MP)),
            s.ev(2, holder_get(DAX2, MP2)),
            s.ev(2, EventData::MountfsEnter(step(0, 0))),
            s.ev(1, EventData::MountfsEnter(step(MP, 0))),
            s.ev(2, EventData::MountfsExit(step(0, -117))),
            s.ev(1, EventData::GetTreeExit(step(MP, 0))),
            s.ev(8, notify(DAX2, MP2, Readiness::NotBorn)),
            s.ev(8, notify_exit(DAX2, EIO)),
            s.ev(2, EventData::GetTreeExit(step(0, -117))),
            s.ev(
                2,
                EventData::HolderPut {
                    dax_dev: DAX2,
                    holder: MP2,
                },
            ),
        ];
        let d = feed(&mut t, &evs);
        assert_eq!(
            states(&d, DAX),
            [State::Registered, State::Mounting, State::Ready]
        );
        assert_eq!(
            states(&d, DAX2),
            [
                State::Registered,
                State::Mounting,
                State::Failed,
                State::Released
            ]
        );
        let n = notifications(&d);
        assert_eq!(n[0].verdict, Verdict::Premature);
        assert_eq!(n[0].state, Some(State::Failed));
        assert!(t.registration(DAX2).is_none());
        assert_eq!(t.registration(DAX).unwrap().state, State::Ready);
    }

    /// A device whose holder_get returned NULL (external log on a non-DAX device) is no holder.
    #[test]
    fn non_dax_registration_is_ignored() {
        let mut s = Seq { n: 0 };
        let mut t = Tracker::new();
        let d = feed(
            &mut t,
            &[
                s.ev(1, EventData::FillSuperEnter(step(MP, 0))),
                s.ev(1, holder_get(0, MP)),
            ],
        );
        assert!(d.is_empty());
        assert_eq!(t.registrations().count(), 0);
    }

    #[test]
    fn unmount_release_and_remount_start_fresh() {
        let mut s = Seq { n: 0 };
        let mut t = Tracker::new();
        let evs = [
            s.ev(1, EventData::FillSuperEnter(step(MP, 0))),
            s.ev(1, holder_get(DAX, MP)),
            s.ev(1, EventData::GetTreeExit(step(MP, 0))),
            s.ev(3, EventData::PutSuper(step(MP, 0))),
            s.ev(
                3,
                EventData::HolderPut {
                    dax_dev: DAX,
                    holder: MP,
                },
            ),
            s.ev(4, notify(DAX, 0, Readiness::NoHolder)),
            s.ev(4, notify_exit(DAX, EOPNOTSUPP)),
            s.ev(5, EventData::FillSuperEnter(step(MP2, 0))),
            s.ev(5, holder_get(DAX, MP2)),
        ];
        let d = feed(&mut t, &evs);
        assert_eq!(
            states(&d, DAX),
            [
                State::Registered,
                State::Ready,
                State::Unmounting,
                State::Released,
                State::Registered
            ]
        );
        assert_eq!(notifications(&d)[0].verdict, Verdict::NoHolder);
        let reg = t.registration(DAX).unwrap();
        assert_eq!(
            (reg.holder, reg.state, reg.ready_seq),
            (MP2, State::Registered, None)
        );
    }

    #[test]
    fn verdict_table() {
        use Readiness::*;
        assert_eq!(verdict(0, MP, Some(Born), None), Verdict::Delivered);
        assert_eq!(
            verdict(EIO, MP, Some(NotBorn), Some(State::Ready)),
            Verdict::Premature
        );
        assert_eq!(
            verdict(EIO, MP, Some(Born), Some(State::Mounting)),
            Verdict::Failed
        );
        assert_eq!(
            verdict(EIO, MP, Some(Unknown), Some(State::Mounting)),
            Verdict::Premature
        );
        assert_eq!(verdict(EIO, MP, None, Some(State::Ready)), Verdict::Failed);
        assert_eq!(
            verdict(EOPNOTSUPP, 0, Some(NoHolder), None),
            Verdict::NoHolder
        );
        assert_eq!(
            verdict(EOPNOTSUPP, MP, Some(Born), None),
            Verdict::Unsupported
        );
        assert_eq!(verdict(ENXIO, MP, None, None), Verdict::DeviceDead);
        assert_eq!(verdict(-117, MP, Some(Born), None), Verdict::Failed);
        assert!(Verdict::Premature.needs_replay() && Verdict::NoHolder.needs_replay());
        assert!(!Verdict::Delivered.needs_replay());
    }
}
