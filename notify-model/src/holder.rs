//! What the stream derives from kernel events: a holder's state changes and the verdict on each
//! memory-failure notification (stream::holders computes them).

use serde::{Deserialize, Serialize};

use crate::{
    dev::{Dev, hex},
    event::Readiness,
};

/// Where a holder is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// `fs_dax_get_by_bdev` returned: the holder receives notifications but cannot act on them.
    Registered,
    /// `xfs_mountfs` runs (superblock read, per-AG setup, quota...).
    Mounting,
    /// Log recovery runs (`xlog_recover` or `xlog_recover_finish`).
    Recovering,
    /// `fill_super` returned 0 but `vfs_get_tree` has not yet: a short window, still not born.
    MountDone,
    /// `vfs_get_tree` returned 0: `SB_BORN`, notifications are handled by XFS.
    Ready,
    /// `xfs_fs_put_super`: the filesystem is going away.
    Unmounting,
    /// The mount failed; the holder is released next.
    Failed,
    /// `fs_put_dax`: no holder any more.
    Released,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Registered => "registered",
            State::Mounting => "mounting",
            State::Recovering => "recovering",
            State::MountDone => "mount_done",
            State::Ready => "ready",
            State::Unmounting => "unmounting",
            State::Failed => "failed",
            State::Released => "released",
        }
    }
}

/// What became of a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The holder handled it (returned 0): XFS killed the mappers itself.
    Delivered,
    /// The holder existed but was not ready: XFS dropped it. Replay after mount.
    Premature,
    /// No holder: nothing mounted on the device. memory-failure falls back to its generic path,
    /// which cannot find the file owners of a DAX page. Replay after mount.
    NoHolder,
    /// The holder cannot handle notifications (XFS without rmapbt returns -EOPNOTSUPP).
    Unsupported,
    /// The dax device is dead (-ENXIO).
    DeviceDead,
    /// Any other error (e.g. -EUCLEAN when metadata was hit and XFS shut down).
    Failed,
    /// The device is going away (`MF_MEM_PRE_REMOVE` on 6.7+, or the whole-device call with
    /// no flags that 6.1's `kill_dax` makes at unbind): not poison, never replayed.
    Removal,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Premature => "premature",
            Verdict::NoHolder => "no_holder",
            Verdict::Unsupported => "unsupported",
            Verdict::DeviceDead => "device_dead",
            Verdict::Failed => "failed",
            Verdict::Removal => "removal",
        }
    }

    /// A notification that says the device goes away rather than that a range is bad.
    pub fn is_removal(mf_flags: u32, offset: u64, len: u64) -> bool {
        mf_flags & crate::event::MF_MEM_PRE_REMOVE != 0 || (offset == 0 && len == u64::MAX)
    }

    /// Whether userspace must replay it once the filesystem is ready.
    pub fn needs_replay(self) -> bool {
        matches!(self, Verdict::Premature | Verdict::NoHolder)
    }
}

/// A holder's state changed. Derived by the agent, not a kernel event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    #[serde(with = "hex")]
    pub dax_dev: u64,
    #[serde(with = "hex")]
    pub holder: u64,
    pub dev: Dev,
    pub from: Option<State>,
    pub to: State,
    /// The kernel event that caused it.
    pub cause: String,
}

/// How a notification's block device is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevFrom {
    /// The holder's registration, seen during this run, names it.
    Registration,
    /// An earlier registration of the same dax device, since released, named it.
    EarlierRegistration,
    /// The probe read it from the holder's superblock when the notification arrived (a
    /// filesystem mounted before the run).
    Superblock,
}

/// A SIGBUS the kernel sent while handling a notification (XFS's `mf_dax_kill_procs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kill {
    /// Thread id of the target.
    pub target: u32,
    pub comm: String,
    /// `si_code`: 4 BUS_MCEERR_AR (the task that consumed the poison), 5 BUS_MCEERR_AO (an
    /// early-kill mapper).
    pub code: i32,
    /// The kernel event's sequence number.
    pub seq: u64,
}

/// A notification with its outcome. Derived by the agent from the notify entry, XFS's return
/// and the notify return, plus the holder's state when it arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    #[serde(with = "hex")]
    pub dax_dev: u64,
    #[serde(with = "hex")]
    pub holder: u64,
    /// The block device of the filesystem on the dax device, when known (`dev_from` says how).
    pub dev: Dev,
    /// How `dev` is known; absent when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_from: Option<DevFrom>,
    /// The pfn `memory_failure` was called with on the same thread, when the notification came
    /// from one (absent for a device removal, or when that probe is not attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfn: Option<u64>,
    /// Partition start offset of that device in the dax device, when known.
    pub start_off: u64,
    /// Byte offset on the dax device.
    pub offset: u64,
    pub len: u64,
    pub mf_flags: u32,
    /// `dax_holder_notify_failure`'s return.
    pub ret: i64,
    /// `xfs_dax_notify_failure`'s return, when that probe is attached and XFS was called.
    pub xfs_ret: Option<i64>,
    /// What the probe read in the kernel: the superblock's SB_BORN.
    pub readiness: Option<Readiness>,
    /// The holder's state as tracked from the mount path when the notification arrived.
    pub state: Option<State>,
    pub verdict: Verdict,
    pub enter_seq: Option<u64>,
    pub exit_seq: u64,
    /// The SIGBUS the kernel sent while handling it (the kill XFS did itself), when the signal
    /// probe is attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kills: Vec<Kill>,
}
