//! Which device every kernel event is about: the one model of attribution.
//!
//! A device is known by up to three identities that events name in different combinations: the
//! dax device pointer (notifications, holder registration and release), the holder pointer (the
//! `struct xfs_mount *`: mount steps, registration) and the block device number (registration,
//! mount steps, XFS tracepoints). Events arrive in kernel order and each one ties together the
//! identities it names, so a device collects them as the mount goes on. Events that name no
//! device are placed by task: a mount step whose holder the probe could not read goes with the
//! mount its thread runs; a memory failure goes with the notification its thread raises next; a
//! mount-family syscall exit with the one device its process touched.
//!
//! The readiness tracker takes a notification's block device from here (also after the holder
//! released the device, and without having seen the mount at all when the probe read the
//! holder's superblock); the agent turns that device, or the thread's memory-failure pfn, into a
//! pmem disk; the report draws one lane per device. Pure: no I/O.

use std::collections::HashMap;

use notify_model::{Dev, EventData, Phase, TraceEvent};

/// One device and the identities seen for it, first ones first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub dax_dev: Option<u64>,
    pub devs: Vec<Dev>,
    pub holders: Vec<u64>,
}

impl Device {
    /// Its block device: the first one seen (the data device of the filesystem on it).
    pub fn dev(&self) -> Dev {
        self.devs.first().copied().unwrap_or_default()
    }
}

/// Where an event belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A device (index into [`Devices::all`]).
    Device(usize),
    /// A memory failure's entry, tracepoint or return: it belongs to the device its thread
    /// notifies, which comes later in the stream.
    FailureOf(u32),
    /// A mount-family syscall exit: the device its process touched, if only one.
    Process(u32),
    /// Nothing ties it to a device.
    Nowhere,
}

/// The devices of a stream.
#[derive(Debug, Default)]
pub struct Devices {
    devices: Vec<Device>,
    by_dax: HashMap<u64, usize>,
    by_dev: HashMap<Dev, usize>,
    by_holder: HashMap<u64, usize>,
    /// The device a thread is mounting (fill_super entry to get_tree exit).
    mounting: HashMap<u32, usize>,
    /// The pfn of the memory failure a thread is in (memory_failure entry to its return).
    failing: HashMap<u32, u64>,
}

impl Devices {
    pub fn new() -> Devices {
        Devices::default()
    }

    pub fn all(&self) -> &[Device] {
        &self.devices
    }

    pub fn get(&self, i: usize) -> &Device {
        &self.devices[i]
    }

    /// The device of a dax device pointer, if one was seen.
    pub fn of_dax(&self, dax_dev: u64) -> Option<&Device> {
        self.by_dax.get(&dax_dev).map(|&i| &self.devices[i])
    }

    /// The pfn `memory_failure` was called with on this thread, while it runs.
    pub fn failing_pfn(&self, tid: u32) -> Option<u64> {
        self.failing.get(&tid).copied()
    }

    fn new_device(&mut self) -> usize {
        self.devices.push(Device::default());
        self.devices.len() - 1
    }

    fn bind_dax(&mut self, d: usize, dax: u64) {
        if dax == 0 {
            return;
        }
        self.by_dax.entry(dax).or_insert(d);
        if self.devices[d].dax_dev.is_none() {
            self.devices[d].dax_dev = Some(dax);
        }
    }

    fn bind_dev(&mut self, d: usize, dev: Dev) {
        if !dev.is_known() {
            return;
        }
        self.by_dev.entry(dev).or_insert(d);
        if !self.devices[d].devs.contains(&dev) {
            self.devices[d].devs.push(dev);
        }
    }

    fn bind_holder(&mut self, d: usize, holder: u64) {
        if holder == 0 {
            return;
        }
        // A holder pointer is reused after unmount: the latest binding wins.
        self.by_holder.insert(holder, d);
        if !self.devices[d].holders.contains(&holder) {
            self.devices[d].holders.push(holder);
        }
    }

    /// The device of whichever identity is known, in order of strength.
    fn find(&self, dax: u64, holder: u64, dev: Dev) -> Option<usize> {
        (dax != 0)
            .then(|| self.by_dax.get(&dax))
            .flatten()
            .or_else(|| (holder != 0).then(|| self.by_holder.get(&holder)).flatten())
            .or_else(|| dev.is_known().then(|| self.by_dev.get(&dev)).flatten())
            .copied()
    }

    /// The device for these identities, created if none is known, and bound to all of them.
    pub fn bind(&mut self, dax: u64, holder: u64, dev: Dev) -> usize {
        let d = match self.find(dax, holder, dev) {
            Some(d) => d,
            None => self.new_device(),
        };
        self.bind_dax(d, dax);
        self.bind_holder(d, holder);
        self.bind_dev(d, dev);
        d
    }

    /// Places one kernel event (in sequence order) and learns the identities it ties together.
    pub fn place(&mut self, ev: &TraceEvent) -> Place {
        let tid = ev.tid;
        if let Some((phase, s)) = ev.data.mount_step() {
            return Place::Device(match phase {
                Phase::FillSuperEnter => {
                    let d = match self.find(0, s.holder, s.dev) {
                        Some(d) => d,
                        None => self.new_device(),
                    };
                    self.bind_holder(d, s.holder);
                    self.bind_dev(d, s.dev);
                    self.mounting.insert(tid, d);
                    d
                }
                Phase::GetTreeExit => {
                    // Fires for every filesystem type: only mounts we know of count.
                    let started = self.mounting.remove(&tid);
                    match self.find(0, s.holder, s.dev).or(started) {
                        Some(d) => d,
                        None => return Place::Nowhere,
                    }
                }
                _ => {
                    let d = match self
                        .find(0, s.holder, s.dev)
                        .or_else(|| self.mounting.get(&tid).copied())
                    {
                        Some(d) => d,
                        None => self.new_device(),
                    };
                    self.bind_holder(d, s.holder);
                    self.bind_dev(d, s.dev);
                    d
                }
            });
        }
        match &ev.data {
            EventData::HolderGet {
                dax_dev,
                holder,
                dev,
                ..
            } => {
                if *dax_dev == 0 {
                    // A device of this filesystem that cannot do DAX (external log, rt device):
                    // it belongs to its filesystem's device.
                    return match self
                        .find(0, *holder, Dev(0))
                        .or_else(|| self.mounting.get(&tid).copied())
                    {
                        Some(d) => Place::Device(d),
                        None => Place::Nowhere,
                    };
                }
                let d = match self.find(*dax_dev, *holder, *dev) {
                    Some(d) => d,
                    None => match self.mounting.get(&tid) {
                        Some(&d) => d,
                        None => self.new_device(),
                    },
                };
                self.bind_dax(d, *dax_dev);
                self.bind_holder(d, *holder);
                self.bind_dev(d, *dev);
                Place::Device(d)
            }
            EventData::HolderPut { dax_dev, holder } => {
                Place::Device(self.bind(*dax_dev, *holder, Dev(0)))
            }
            EventData::XfsTracepoint { dev, .. } => {
                if dev.is_known() {
                    Place::Device(self.bind(0, 0, *dev))
                } else {
                    Place::Nowhere
                }
            }
            EventData::NotifyEnter {
                dax_dev, holder, ..
            } => Place::Device(self.bind(*dax_dev, *holder, ev.data.dev())),
            EventData::NotifyExit { dax_dev, .. } | EventData::XfsNotifyExit { dax_dev, .. } => {
                Place::Device(self.bind(*dax_dev, 0, Dev(0)))
            }
            EventData::MemoryFailureEnter { pfn, .. } => {
                self.failing.insert(tid, *pfn);
                Place::FailureOf(tid)
            }
            EventData::MfEvent { .. } => {
                if self.failing.contains_key(&tid) {
                    Place::FailureOf(tid)
                } else {
                    Place::Nowhere
                }
            }
            EventData::MemoryFailureExit { .. } => match self.failing.remove(&tid) {
                Some(_) => Place::FailureOf(tid),
                None => Place::Nowhere,
            },
            // A SIGBUS sent from inside a memory failure is part of it (XFS's kill); one sent
            // elsewhere (a DAX fault on a listed sector, a process) names no device.
            EventData::Sigbus { .. } if self.failing.contains_key(&tid) => Place::FailureOf(tid),
            EventData::SyscallExit { .. } => Place::Process(ev.pid),
            // Mount steps are placed above.
            _ => Place::Nowhere,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_model::{MountStep, Readiness};

    fn ev(seq: u64, tid: u32, data: EventData) -> TraceEvent {
        TraceEvent {
            seq,
            ktime_ns: seq,
            cpu: 0,
            pid: tid,
            tid,
            comm: "t".into(),
            data,
        }
    }

    fn step(holder: u64, dev: Dev) -> MountStep {
        MountStep {
            holder,
            dev,
            s_flags: 0,
            ret: 0,
        }
    }

    #[test]
    fn a_mount_ties_holder_block_device_and_dax_device_together() {
        let pmem0 = Dev::new(259, 0);
        let mut d = Devices::new();
        let places = [
            d.place(&ev(1, 1, EventData::FillSuperEnter(step(0x20, pmem0)))),
            d.place(&ev(
                2,
                1,
                EventData::HolderGet {
                    dax_dev: 0x10,
                    holder: 0x20,
                    holder_ops: 0,
                    start_off: 0,
                    dev: pmem0,
                },
            )),
            // A step whose holder the probe could not read: the thread's mount.
            d.place(&ev(3, 1, EventData::MountfsEnter(step(0, Dev(0))))),
            d.place(&ev(
                4,
                9,
                EventData::MemoryFailureEnter { pfn: 7, flags: 0 },
            )),
            d.place(&ev(
                5,
                9,
                EventData::NotifyEnter {
                    dax_dev: 0x10,
                    holder: 0x20,
                    holder_ops: 0,
                    offset: 0,
                    len: 4096,
                    s_flags: 0,
                    mf_flags: 0,
                    readiness: Readiness::NotBorn,
                    dev: Dev(0),
                },
            )),
            d.place(&ev(6, 1, EventData::GetTreeExit(step(0x20, pmem0)))),
            d.place(&ev(
                7,
                1,
                EventData::HolderPut {
                    dax_dev: 0x10,
                    holder: 0x20,
                },
            )),
        ];
        assert_eq!(
            places,
            [
                Place::Device(0),
                Place::Device(0),
                Place::Device(0),
                Place::FailureOf(9),
                Place::Device(0),
                Place::Device(0),
                Place::Device(0)
            ]
        );
        assert_eq!(d.failing_pfn(9), Some(7));
        assert_eq!(d.all().len(), 1);
        // Released, the dax device still names its block device (a later no-holder
        // notification of it is attributed).
        assert_eq!(d.of_dax(0x10).unwrap().dev(), pmem0);
    }

    #[test]
    fn unrelated_events_are_nowhere_and_syscalls_go_by_process() {
        let mut d = Devices::new();
        assert_eq!(
            d.place(&ev(1, 3, EventData::GetTreeExit(step(0, Dev(0))))),
            Place::Nowhere
        );
        assert_eq!(
            d.place(&ev(
                2,
                4,
                EventData::SyscallExit {
                    syscall: "mount".into(),
                    ret: 0
                }
            )),
            Place::Process(4)
        );
        assert!(d.all().is_empty());
    }
}
