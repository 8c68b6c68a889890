//! Kernel events: what a probe saw, decoded.
//!
//! The JSON shape is the project's external schema (docs/EVENTS.md): one object per line, the
//! header fields flat, `kind` naming the variant, kernel pointers as hex strings, device numbers
//! as "major:minor".

use serde::{Deserialize, Serialize};

use crate::dev::{Dev, hex};

/// Where and when a kernel event happened: the header every stream line that comes from the
/// kernel carries (derived items carry the header of the event that caused them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Global sequence number taken in BPF: the true order of events across CPUs.
    pub seq: u64,
    /// CLOCK_MONOTONIC.
    pub ktime_ns: u64,
    pub cpu: u32,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub comm: String,
}

/// A decoded kernel event: the common header plus what happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEvent {
    pub seq: u64,
    pub ktime_ns: u64,
    pub cpu: u32,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub comm: String,
    #[serde(flatten)]
    pub data: EventData,
}

impl TraceEvent {
    pub fn header(&self) -> Header {
        Header {
            seq: self.seq,
            ktime_ns: self.ktime_ns,
            cpu: self.cpu,
            pid: self.pid,
            tid: self.tid,
            comm: self.comm.clone(),
        }
    }
}

/// Readiness of the holder as the probe read it when the notification arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    NoHolder,
    Unknown,
    NotBorn,
    Born,
}

impl Readiness {
    pub fn name(self) -> &'static str {
        match self {
            Readiness::NoHolder => "no_holder",
            Readiness::Unknown => "unknown",
            Readiness::NotBorn => "not_born",
            Readiness::Born => "born",
        }
    }
}

/// A step of the XFS mount path (or unmount).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountStep {
    /// The holder (`struct xfs_mount *`), when it could be read.
    #[serde(with = "hex")]
    pub holder: u64,
    /// `sb->s_dev` as "major:minor", when known.
    pub dev: Dev,
    /// `sb->s_flags` when known.
    pub s_flags: u64,
    /// Return value (exits only).
    pub ret: i64,
}

/// Which step of the mount path a [`MountStep`] event is. The one list of them: consumers match
/// on [`EventData::mount_step`] instead of naming the variants again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    FillSuperEnter,
    FillSuperExit,
    MountfsEnter,
    MountfsExit,
    LogRecoverEnter,
    LogRecoverExit,
    LogRecoverFinishEnter,
    LogRecoverFinishExit,
    /// `vfs_get_tree` return: the ready edge.
    GetTreeExit,
    /// `xfs_fs_put_super`: unmount.
    PutSuper,
}

impl Phase {
    /// A function's return (its step carries the return value).
    pub fn is_exit(self) -> bool {
        matches!(
            self,
            Phase::FillSuperExit
                | Phase::MountfsExit
                | Phase::LogRecoverExit
                | Phase::LogRecoverFinishExit
                | Phase::GetTreeExit
        )
    }
}

/// What happened. `kind` in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventData {
    /// `dax_holder_notify_failure` entry.
    NotifyEnter {
        #[serde(with = "hex")]
        dax_dev: u64,
        #[serde(with = "hex")]
        holder: u64,
        #[serde(with = "hex")]
        holder_ops: u64,
        offset: u64,
        len: u64,
        s_flags: u64,
        mf_flags: u32,
        readiness: Readiness,
        /// The holder's superblock's block device, read where the notification happens
        /// (0:0 without a holder, or when unreadable).
        #[serde(default)]
        dev: Dev,
    },
    /// `dax_holder_notify_failure` return.
    NotifyExit {
        #[serde(with = "hex")]
        dax_dev: u64,
        offset: u64,
        len: u64,
        ret: i64,
    },
    /// `xfs_dax_notify_failure` return: XFS's own verdict.
    XfsNotifyExit {
        #[serde(with = "hex")]
        dax_dev: u64,
        offset: u64,
        len: u64,
        ret: i64,
    },
    /// `fs_dax_get_by_bdev` return: holder registration.
    HolderGet {
        #[serde(with = "hex")]
        dax_dev: u64,
        #[serde(with = "hex")]
        holder: u64,
        #[serde(with = "hex")]
        holder_ops: u64,
        start_off: u64,
        dev: Dev,
    },
    /// `fs_put_dax`: holder release.
    HolderPut {
        #[serde(with = "hex")]
        dax_dev: u64,
        #[serde(with = "hex")]
        holder: u64,
    },
    FillSuperEnter(MountStep),
    FillSuperExit(MountStep),
    MountfsEnter(MountStep),
    MountfsExit(MountStep),
    LogRecoverEnter(MountStep),
    LogRecoverExit(MountStep),
    LogRecoverFinishEnter(MountStep),
    LogRecoverFinishExit(MountStep),
    /// `vfs_get_tree` return: the ready edge (SB_BORN is set once it returns 0).
    GetTreeExit(MountStep),
    /// `xfs_fs_put_super`: unmount.
    PutSuper(MountStep),
    MemoryFailureEnter {
        pfn: u64,
        flags: u32,
    },
    MemoryFailureExit {
        pfn: u64,
        flags: u32,
        ret: i64,
    },
    /// `memory_failure_event` tracepoint. `type`/`result` are raw enum values; their names are
    /// version dependent and filled in from the kernel's format file when known.
    MfEvent {
        pfn: u64,
        #[serde(rename = "type")]
        mf_type: i32,
        result: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        type_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result_name: Option<String>,
    },
    /// A mount-family syscall returned.
    SyscallExit {
        syscall: String,
        ret: i64,
    },
    /// An XFS tracepoint fired.
    XfsTracepoint {
        tracepoint: String,
        dev: Dev,
    },
    /// A SIGBUS was sent (`signal:signal_generate`): the header is the sender (`current`), the
    /// target is a thread. `code` > 0 is the kernel's (BUS_MCEERR_AR/AO from memory-failure
    /// kills and, from 6.12, DAX faults on a listed sector; BUS_ADRERR from a 6.1 DAX fault);
    /// 0 and below come from a process (SI_USER, SI_QUEUE).
    Sigbus {
        target: u32,
        target_comm: String,
        code: i32,
        result: i32,
    },
    /// A kind this build does not know (a newer BPF object).
    Unknown {
        raw_kind: u32,
    },
}

impl EventData {
    /// The snake_case name used as `kind` in JSON.
    pub fn kind_name(&self) -> &'static str {
        if let Some((phase, _)) = self.mount_step() {
            return phase.kind_name();
        }
        match self {
            EventData::NotifyEnter { .. } => "notify_enter",
            EventData::NotifyExit { .. } => "notify_exit",
            EventData::XfsNotifyExit { .. } => "xfs_notify_exit",
            EventData::HolderGet { .. } => "holder_get",
            EventData::HolderPut { .. } => "holder_put",
            EventData::MemoryFailureEnter { .. } => "memory_failure_enter",
            EventData::MemoryFailureExit { .. } => "memory_failure_exit",
            EventData::MfEvent { .. } => "mf_event",
            EventData::SyscallExit { .. } => "syscall_exit",
            EventData::XfsTracepoint { .. } => "xfs_tracepoint",
            EventData::Sigbus { .. } => "sigbus",
            EventData::Unknown { .. } => "unknown",
            _ => unreachable!("mount steps are named by their phase"),
        }
    }

    /// The mount-path step this event is, if it is one.
    pub fn mount_step(&self) -> Option<(Phase, &MountStep)> {
        Some(match self {
            EventData::FillSuperEnter(s) => (Phase::FillSuperEnter, s),
            EventData::FillSuperExit(s) => (Phase::FillSuperExit, s),
            EventData::MountfsEnter(s) => (Phase::MountfsEnter, s),
            EventData::MountfsExit(s) => (Phase::MountfsExit, s),
            EventData::LogRecoverEnter(s) => (Phase::LogRecoverEnter, s),
            EventData::LogRecoverExit(s) => (Phase::LogRecoverExit, s),
            EventData::LogRecoverFinishEnter(s) => (Phase::LogRecoverFinishEnter, s),
            EventData::LogRecoverFinishExit(s) => (Phase::LogRecoverFinishExit, s),
            EventData::GetTreeExit(s) => (Phase::GetTreeExit, s),
            EventData::PutSuper(s) => (Phase::PutSuper, s),
            _ => return None,
        })
    }

    /// The block device the event names, when it names one.
    pub fn dev(&self) -> Dev {
        match self {
            EventData::HolderGet { dev, .. }
            | EventData::XfsTracepoint { dev, .. }
            | EventData::NotifyEnter { dev, .. } => *dev,
            d => d.mount_step().map(|(_, s)| s.dev).unwrap_or_default(),
        }
    }
}

impl Phase {
    pub fn kind_name(self) -> &'static str {
        match self {
            Phase::FillSuperEnter => "fill_super_enter",
            Phase::FillSuperExit => "fill_super_exit",
            Phase::MountfsEnter => "mountfs_enter",
            Phase::MountfsExit => "mountfs_exit",
            Phase::LogRecoverEnter => "log_recover_enter",
            Phase::LogRecoverExit => "log_recover_exit",
            Phase::LogRecoverFinishEnter => "log_recover_finish_enter",
            Phase::LogRecoverFinishExit => "log_recover_finish_exit",
            Phase::GetTreeExit => "get_tree_exit",
            Phase::PutSuper => "put_super",
        }
    }
}

/// Short name of a negative errno return, for people reading a table.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    Some(match -ret {
        0 => return None,
        1 => "EPERM",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        25 => "ENOTTY",
        95 => "EOPNOTSUPP",
        117 => "EUCLEAN",
        _ => return None,
    })
}

/// A return value with its errno name: "-5 (EIO)".
pub fn ret_str(ret: i64) -> String {
    match errno_name(ret) {
        Some(n) => format!("{ret} ({n})"),
        None => ret.to_string(),
    }
}

/// `mf_flags` bits by name (include/linux/mm.h).
pub fn mf_flag_names(flags: u32) -> Vec<&'static str> {
    const NAMES: [&str; 8] = [
        "COUNT_INCREASED",
        "ACTION_REQUIRED",
        "MUST_KILL",
        "SOFT_OFFLINE",
        "UNPOISON",
        "SW_SIMULATED",
        "NO_RETRY",
        "MEM_PRE_REMOVE",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| flags & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// Name of a SIGBUS `si_code`.
pub fn bus_code_name(code: i32) -> &'static str {
    match code {
        1 => "BUS_ADRALN",
        2 => "BUS_ADRERR",
        3 => "BUS_OBJERR",
        4 => "BUS_MCEERR_AR",
        5 => "BUS_MCEERR_AO",
        0 => "SI_USER",
        -1 => "SI_QUEUE",
        -6 => "SI_TKILL",
        0x80 => "SI_KERNEL",
        _ => "other",
    }
}

/// `MF_MEM_PRE_REMOVE`: the dax device is about to go away (not poison).
pub const MF_MEM_PRE_REMOVE: u32 = 1 << 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let t = TraceEvent {
            seq: 9,
            ktime_ns: 5,
            cpu: 0,
            pid: 1,
            tid: 2,
            comm: "kworker/0:1".into(),
            data: EventData::HolderGet {
                dax_dev: u64::MAX - 1,
                holder: 0xffff_8880_1234_5678,
                holder_ops: 0,
                start_off: 1 << 20,
                dev: Dev((259 << 20) | 3),
            },
        };
        let line = serde_json::to_string(&t).unwrap();
        assert!(line.contains(r#""kind":"holder_get""#), "{line}");
        assert!(line.contains(r#""holder":"0xffff888012345678""#), "{line}");
        assert!(line.contains(r#""dev":"259:3""#), "{line}");
        let back: TraceEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, t);
        let step = TraceEvent {
            data: EventData::GetTreeExit(MountStep {
                holder: 1,
                dev: Dev(7 << 20),
                s_flags: 1 << 29,
                ret: 0,
            }),
            ..t
        };
        let line = serde_json::to_string(&step).unwrap();
        assert!(line.contains(r#""kind":"get_tree_exit""#), "{line}");
        assert_eq!(serde_json::from_str::<TraceEvent>(&line).unwrap(), step);
        assert_eq!(step.data.kind_name(), "get_tree_exit");
        assert_eq!(step.data.dev(), Dev(7 << 20));
    }

    #[test]
    fn every_phase_names_its_serde_kind() {
        let s = MountStep {
            holder: 0,
            dev: Dev(0),
            s_flags: 0,
            ret: 0,
        };
        for d in [
            EventData::FillSuperEnter(s),
            EventData::FillSuperExit(s),
            EventData::MountfsEnter(s),
            EventData::MountfsExit(s),
            EventData::LogRecoverEnter(s),
            EventData::LogRecoverExit(s),
            EventData::LogRecoverFinishEnter(s),
            EventData::LogRecoverFinishExit(s),
            EventData::GetTreeExit(s),
            EventData::PutSuper(s),
        ] {
            let v = serde_json::to_value(&d).unwrap();
            assert_eq!(v["kind"], d.kind_name());
            assert!(d.mount_step().is_some());
        }
    }

    #[test]
    fn flag_and_errno_names() {
        assert_eq!(mf_flag_names(0x21), ["COUNT_INCREASED", "SW_SIMULATED"]);
        assert_eq!(errno_name(-5), Some("EIO"));
        assert_eq!(errno_name(-95), Some("EOPNOTSUPP"));
        assert_eq!(errno_name(0), None);
        assert_eq!(ret_str(-5), "-5 (EIO)");
        assert_eq!(ret_str(3), "3");
    }
}
