//! Decoding of the raw ring-buffer records into typed events, and their JSON form.
//!
//! The JSON shape is the project's external schema (docs/EVENTS.md): one object per line, the
//! header fields flat, `kind` naming the variant, kernel pointers as hex strings (they exceed
//! 2^53, which JSON consumers would round), device numbers as "major:minor".

use std::fmt;

use notify_common::{self as abi, kind};
use serde::{Deserialize, Serialize};

/// A decoded event: the common header plus what happened.
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

/// Readiness of the holder as the probe read it when the notification arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    NoHolder,
    Unknown,
    NotBorn,
    Born,
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

/// A kernel dev_t in the kernel's internal encoding (major << 20 | minor), shown "major:minor".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dev(pub u32);

impl Dev {
    pub fn major(self) -> u32 {
        self.0 >> 20
    }
    pub fn minor(self) -> u32 {
        self.0 & 0xfffff
    }
    pub fn is_known(self) -> bool {
        self.0 != 0
    }
    /// The userspace (glibc `makedev`) encoding, as `stat(2)` reports `st_dev`/`st_rdev`.
    pub fn to_user(self) -> u64 {
        libc::makedev(self.major(), self.minor())
    }
    pub fn from_user(dev: u64) -> Dev {
        Dev((libc::major(dev) << 20) | (libc::minor(dev) & 0xfffff))
    }
}

impl fmt::Display for Dev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major(), self.minor())
    }
}

impl Serialize for Dev {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dev {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (maj, min) = s
            .split_once(':')
            .ok_or_else(|| serde::de::Error::custom(format!("bad device {s:?}: want MAJ:MIN")))?;
        let maj: u32 = maj.parse().map_err(serde::de::Error::custom)?;
        let min: u32 = min.parse().map_err(serde::de::Error::custom)?;
        Ok(Dev((maj << 20) | (min & 0xfffff)))
    }
}

/// Kernel pointers as "0x…" strings.
pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0x").unwrap_or(&s);
        u64::from_str_radix(digits, 16).map_err(serde::de::Error::custom)
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
    /// A kind this build does not know (a newer BPF object).
    Unknown {
        raw_kind: u32,
    },
    /// Derived by the agent, not a kernel event: a holder changed state.
    HolderState(crate::readiness::Transition),
    /// Derived by the agent, not a kernel event: a notification and its verdict.
    Notification(crate::readiness::Notification),
}

impl EventData {
    /// The snake_case name used as `kind` in JSON.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EventData::NotifyEnter { .. } => "notify_enter",
            EventData::NotifyExit { .. } => "notify_exit",
            EventData::XfsNotifyExit { .. } => "xfs_notify_exit",
            EventData::HolderGet { .. } => "holder_get",
            EventData::HolderPut { .. } => "holder_put",
            EventData::FillSuperEnter(_) => "fill_super_enter",
            EventData::FillSuperExit(_) => "fill_super_exit",
            EventData::MountfsEnter(_) => "mountfs_enter",
            EventData::MountfsExit(_) => "mountfs_exit",
            EventData::LogRecoverEnter(_) => "log_recover_enter",
            EventData::LogRecoverExit(_) => "log_recover_exit",
            EventData::LogRecoverFinishEnter(_) => "log_recover_finish_enter",
            EventData::LogRecoverFinishExit(_) => "log_recover_finish_exit",
            EventData::GetTreeExit(_) => "get_tree_exit",
            EventData::PutSuper(_) => "put_super",
            EventData::MemoryFailureEnter { .. } => "memory_failure_enter",
            EventData::MemoryFailureExit { .. } => "memory_failure_exit",
            EventData::MfEvent { .. } => "mf_event",
            EventData::SyscallExit { .. } => "syscall_exit",
            EventData::XfsTracepoint { .. } => "xfs_tracepoint",
            EventData::Unknown { .. } => "unknown",
            EventData::HolderState(_) => "holder_state",
            EventData::Notification(_) => "notification",
        }
    }
}

/// Why a record could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than an [`abi::Event`]: a BPF object and agent from different builds.
    Short { got: usize, want: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { got, want } => write!(
                f,
                "ring-buffer record of {got} bytes, expected {want}: the BPF object and the agent \
                 come from different builds (rebuild notify)"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Copies a raw record into an [`abi::Event`]. The ring buffer gives no alignment guarantee
/// beyond 8 bytes and the slice may be longer (a newer object); read it unaligned.
pub fn raw_event(bytes: &[u8]) -> Result<abi::Event, DecodeError> {
    let want = size_of::<abi::Event>();
    if bytes.len() < want {
        return Err(DecodeError::Short {
            got: bytes.len(),
            want,
        });
    }
    // SAFETY: the length is checked and abi::Event is plain data valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<abi::Event>()) })
}

/// Decodes one raw record.
pub fn decode(bytes: &[u8]) -> Result<TraceEvent, DecodeError> {
    Ok(decode_event(&raw_event(bytes)?))
}

fn comm_str(comm: &[u8; abi::COMM_LEN]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// Sign-extends a 32-bit kernel `int` return that may have been widened as unsigned.
fn int_ret(ret: i64) -> i64 {
    ret as i32 as i64
}

/// Decodes a typed [`abi::Event`].
pub fn decode_event(ev: &abi::Event) -> TraceEvent {
    let h = &ev.header;
    // SAFETY (all union reads below): every payload member is plain data valid for any bit
    // pattern; the kind picks the member the BPF side wrote.
    let p = &ev.payload;
    let step = |m: &abi::Mount| MountStep {
        holder: m.holder,
        dev: Dev(m.dev),
        s_flags: m.s_flags,
        ret: int_ret(m.ret),
    };
    let data = unsafe {
        match h.kind {
            kind::NOTIFY_ENTER => {
                let n = p.notify;
                EventData::NotifyEnter {
                    dax_dev: n.dax_dev,
                    holder: n.holder,
                    holder_ops: n.holder_ops,
                    offset: n.offset,
                    len: n.len,
                    s_flags: n.s_flags,
                    mf_flags: n.mf_flags,
                    readiness: match n.readiness {
                        abi::readiness::NO_HOLDER => Readiness::NoHolder,
                        abi::readiness::NOT_BORN => Readiness::NotBorn,
                        abi::readiness::BORN => Readiness::Born,
                        _ => Readiness::Unknown,
                    },
                }
            }
            kind::NOTIFY_EXIT | kind::XFS_NOTIFY_EXIT => {
                let r = p.ret;
                let (dax_dev, offset, len, ret) = (r.object, r.offset, r.len, int_ret(r.ret));
                if h.kind == kind::NOTIFY_EXIT {
                    EventData::NotifyExit {
                        dax_dev,
                        offset,
                        len,
                        ret,
                    }
                } else {
                    EventData::XfsNotifyExit {
                        dax_dev,
                        offset,
                        len,
                        ret,
                    }
                }
            }
            kind::HOLDER_GET => {
                let x = p.holder;
                EventData::HolderGet {
                    dax_dev: x.dax_dev,
                    holder: x.holder,
                    holder_ops: x.holder_ops,
                    start_off: x.start_off,
                    dev: Dev(x.dev),
                }
            }
            kind::HOLDER_PUT => {
                let x = p.holder;
                EventData::HolderPut {
                    dax_dev: x.dax_dev,
                    holder: x.holder,
                }
            }
            kind::FILL_SUPER_ENTER => EventData::FillSuperEnter(step(&p.mount)),
            kind::FILL_SUPER_EXIT => EventData::FillSuperExit(step(&p.mount)),
            kind::MOUNTFS_ENTER => EventData::MountfsEnter(step(&p.mount)),
            kind::MOUNTFS_EXIT => EventData::MountfsExit(step(&p.mount)),
            kind::LOG_RECOVER_ENTER => EventData::LogRecoverEnter(step(&p.mount)),
            kind::LOG_RECOVER_EXIT => EventData::LogRecoverExit(step(&p.mount)),
            kind::LOG_RECOVER_FINISH_ENTER => EventData::LogRecoverFinishEnter(step(&p.mount)),
            kind::LOG_RECOVER_FINISH_EXIT => EventData::LogRecoverFinishExit(step(&p.mount)),
            kind::GET_TREE_EXIT => EventData::GetTreeExit(step(&p.mount)),
            kind::PUT_SUPER => EventData::PutSuper(step(&p.mount)),
            kind::MEMORY_FAILURE_ENTER => EventData::MemoryFailureEnter {
                pfn: p.mf.pfn,
                flags: p.mf.flags,
            },
            kind::MEMORY_FAILURE_EXIT => EventData::MemoryFailureExit {
                pfn: p.mf.pfn,
                flags: p.mf.flags,
                ret: int_ret(p.mf.ret),
            },
            kind::MF_EVENT => EventData::MfEvent {
                pfn: p.mf.pfn,
                mf_type: p.mf.mf_type,
                result: p.mf.result,
                type_name: None,
                result_name: None,
            },
            kind::SYSCALL_EXIT => EventData::SyscallExit {
                syscall: match p.mount.arg {
                    abi::syscall::MOUNT => "mount",
                    abi::syscall::FSCONFIG => "fsconfig",
                    abi::syscall::FSMOUNT => "fsmount",
                    abi::syscall::UMOUNT => "umount",
                    _ => "unknown",
                }
                .to_string(),
                ret: p.mount.ret,
            },
            kind::XFS_TRACEPOINT => EventData::XfsTracepoint {
                tracepoint: match p.mount.arg {
                    abi::xfs_tp::LOG_RECOVER => "xfs_log_recover",
                    abi::xfs_tp::LOG_UMOUNT_WRITE => "xfs_log_umount_write",
                    _ => "unknown",
                }
                .to_string(),
                dev: Dev(p.mount.dev),
            },
            other => EventData::Unknown { raw_kind: other },
        }
    };
    TraceEvent {
        seq: h.seq,
        ktime_ns: h.ktime_ns,
        cpu: h.cpu,
        pid: (h.pid_tgid >> 32) as u32,
        tid: h.pid_tgid as u32,
        comm: comm_str(&h.comm),
        data,
    }
}

/// Short name of a negative errno return, for people reading a table.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    Some(match -ret {
        0 => return None,
        1 => "EPERM",
        5 => "EIO",
        6 => "ENXIO",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        19 => "ENODEV",
        22 => "EINVAL",
        95 => "EOPNOTSUPP",
        117 => "EUCLEAN",
        _ => return None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify_common::{Event, Header, Notify, Payload};

    fn header(seq: u64, kind: u32) -> Header {
        let mut comm = [0u8; 16];
        comm[..5].copy_from_slice(b"mount");
        Header {
            seq,
            ktime_ns: 1000,
            pid_tgid: (42u64 << 32) | 43,
            cpu: 1,
            kind,
            comm,
        }
    }

    fn bytes(ev: &Event) -> Vec<u8> {
        let p = (ev as *const Event).cast::<u8>();
        unsafe { std::slice::from_raw_parts(p, size_of::<Event>()) }.to_vec()
    }

    #[test]
    fn decodes_a_notify_enter_record_from_raw_bytes() {
        let ev = Event {
            header: header(7, kind::NOTIFY_ENTER),
            payload: Payload {
                notify: Notify {
                    dax_dev: 0xffff_8880_0000_1000,
                    holder: 0xffff_8880_0000_2000,
                    holder_ops: 0xffff_ffff_c000_0000,
                    offset: 0x10_0000,
                    len: 4096,
                    s_flags: 0,
                    mf_flags: 0x20,
                    readiness: abi::readiness::NOT_BORN,
                },
            },
        };
        // One byte of misalignment, as a ring buffer could hand over.
        let mut buf = vec![0u8];
        buf.extend(bytes(&ev));
        let t = decode(&buf[1..]).unwrap();
        assert_eq!(t.seq, 7);
        assert_eq!((t.pid, t.tid), (42, 43));
        assert_eq!(t.comm, "mount");
        assert_eq!(
            t.data,
            EventData::NotifyEnter {
                dax_dev: 0xffff_8880_0000_1000,
                holder: 0xffff_8880_0000_2000,
                holder_ops: 0xffff_ffff_c000_0000,
                offset: 0x10_0000,
                len: 4096,
                s_flags: 0,
                mf_flags: 0x20,
                readiness: Readiness::NotBorn,
            }
        );
    }

    #[test]
    fn short_records_are_an_error_not_a_panic() {
        let err = decode(&[0u8; 20]).unwrap_err();
        assert_eq!(err, DecodeError::Short { got: 20, want: 104 });
        assert!(err.to_string().contains("different builds"));
    }

    #[test]
    fn unknown_kinds_decode_as_unknown() {
        let ev = Event {
            header: header(1, 999),
            payload: Payload::default(),
        };
        assert_eq!(decode_event(&ev).data, EventData::Unknown { raw_kind: 999 });
    }

    #[test]
    fn int_returns_are_sign_extended() {
        let ev = Event {
            header: header(3, kind::NOTIFY_EXIT),
            payload: Payload {
                ret: notify_common::Return {
                    object: 1,
                    offset: 2,
                    len: 3,
                    // -5 as an unsigned 32-bit register value.
                    ret: 0xffff_fffb,
                },
            },
        };
        match decode_event(&ev).data {
            EventData::NotifyExit { ret, .. } => assert_eq!(ret, -5),
            other => panic!("{other:?}"),
        }
    }

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
                s_flags: abi::SB_BORN,
                ret: 0,
            }),
            ..t
        };
        let line = serde_json::to_string(&step).unwrap();
        assert!(line.contains(r#""kind":"get_tree_exit""#), "{line}");
        assert_eq!(serde_json::from_str::<TraceEvent>(&line).unwrap(), step);
    }

    #[test]
    fn dev_encodings_round_trip() {
        let d = Dev((7 << 20) | 3);
        assert_eq!(d.to_string(), "7:3");
        assert_eq!(Dev::from_user(d.to_user()), d);
    }

    #[test]
    fn flag_and_errno_names() {
        assert_eq!(mf_flag_names(0x21), ["COUNT_INCREASED", "SW_SIMULATED"]);
        assert_eq!(errno_name(-5), Some("EIO"));
        assert_eq!(errno_name(-95), Some("EOPNOTSUPP"));
        assert_eq!(errno_name(0), None);
    }
}
