//! What the agent's journal holds: damaged pmem ranges XFS was not told about, and their state
//! (`notify journal list` prints [`Record`]s; agent::journal stores them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The pmem device a record is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaxDevice {
    /// Kernel name, e.g. "pmem0" or "dax0.0".
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

/// Why a range is in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// XFS was the holder but not ready (`SB_BORN` unset): "not ready for notify_failure()".
    Premature,
    /// No holder registered (dax_holder_notify_failure returned -EOPNOTSUPP).
    NoHolder,
    /// The mount the notification was waiting for failed.
    MountFailed,
    /// Found in the pmem driver's bad-block list with no notification seen for it.
    Badblocks,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Premature => "premature",
            Reason::NoHolder => "no_holder",
            Reason::MountFailed => "mount_failed",
            Reason::Badblocks => "badblocks",
        }
    }
}

/// A damaged range and how the agent learnt of it: what the kernel was told and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    pub dax: DaxDevice,
    /// Offset on the dax device (before the partition offset is subtracted), bytes.
    pub dax_offset: u64,
    pub len: u64,
    pub mf_flags: u32,
    /// The BPF program's event sequence number (0: not from a notification).
    pub kernel_seq: u64,
    /// CLOCK_MONOTONIC (ktime_get_ns) of the notification.
    pub ktime_ns: u64,
    /// Wall clock (Unix ns) when the agent saw it.
    pub wall_ns: u64,
    pub reason: Reason,
    /// The identity of the pmem namespace the range is on (`kernel::pmem::Namespace`), when
    /// known: a record whose namespace no longer exists or changed is stale, never acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Where a record is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Replayed,
    /// Done with for good without acting: the note says why (the namespace changed, the device
    /// never gets an XFS holder).
    Closed,
}

/// A damaged range and its current state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    /// (`notification` in JSON: the first records all came from notifications.)
    #[serde(rename = "notification")]
    pub damage: Damage,
    pub state: Status,
    /// Note of the last state change ("killed 2, reported 1"...).
    pub note: Option<String>,
    pub state_wall_ns: Option<u64>,
    /// The mounts whose XFS was told of the range (XFS_IOC_VERIFY_MEDIA), once each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<Told>,
    /// What the replay found and did, for `notify journal summary` (none before it was
    /// replayed, and in journals written before notify kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// A replay's findings in a form that can be counted: the damaged files, the metadata owners
/// and what was done to the processes mapping them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The damaged files: each file owner's first path, or "ino N" where no name was found.
    #[serde(default)]
    pub files: Vec<String>,
    /// Filesystem metadata owners hit ("ag header", "inode btree", ...).
    #[serde(default)]
    pub metadata: Vec<String>,
    /// Processes by decision ("signalled", "reported", "refused", ...): how many.
    #[serde(default)]
    pub processes: std::collections::BTreeMap<String, u32>,
    /// Why nothing could be done, when that is what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// XFS was told of a record's range on one mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    /// The mount (`boot id`/`unique mount id`): a remount is another one.
    pub mount: String,
    pub wall_ns: u64,
    pub note: String,
    /// How.
    #[serde(default)]
    pub via: Via,
}

/// How XFS was told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `XFS_IOC_VERIFY_MEDIA` with its report flag (7.0+): XFS reports, kills nothing.
    #[default]
    VerifyMedia,
    /// `hard_offline_page` (opt-in): `memory_failure()` again, XFS's own kill.
    HardOfflinePage,
}

/// A byte range of the journal that was dropped on open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub offset: u64,
    pub len: u64,
    pub reason: String,
}

/// What opening the journal found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub path: PathBuf,
    pub created: bool,
    pub records: usize,
    pub cuts: Vec<Cut>,
    /// The file was rewritten without the bad ranges (bad frames in the middle); otherwise a
    /// bad tail is cut with ftruncate.
    pub rewritten: bool,
    /// State records naming ids we do not have (their notification was cut): ignored.
    pub orphan_states: Vec<u64>,
}

impl Recovery {
    pub fn is_clean(&self) -> bool {
        self.cuts.is_empty() && self.orphan_states.is_empty()
    }
}
