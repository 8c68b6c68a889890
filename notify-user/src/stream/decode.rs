//! Decoding the raw ring-buffer records into typed kernel events.

use std::fmt;

use notify_common::{self as abi, kind};
use notify_model::{Dev, EventData, MountStep, Readiness, TraceEvent};

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
                    dev: Dev(n.dev),
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
            kind::SIGBUS => {
                let g = p.signal;
                EventData::Sigbus {
                    target: g.target as u32,
                    target_comm: comm_str(&g.comm),
                    code: g.code,
                    result: g.result,
                }
            }
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
                    dev: (259 << 20) | 1,
                    _pad: 0,
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
                dev: Dev::new(259, 1),
            }
        );
    }

    #[test]
    fn short_records_are_an_error_not_a_panic() {
        let err = decode(&[0u8; 20]).unwrap_err();
        assert_eq!(err, DecodeError::Short { got: 20, want: 112 });
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
}
