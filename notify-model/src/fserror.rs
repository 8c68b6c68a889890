//! What XFS itself reports (7.0 and later): its fserror reports as fanotify delivers them
//! (FAN_FS_ERROR), one item per event read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dev::Dev;

/// What an fserror report says, from its errno and whether it names a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsErrorKind {
    /// EIO with a file: XFS lost data of this file (a memory failure it handled, a range it was
    /// told to verify; on DAX no page-cache I/O error uses this path).
    DataLost,
    /// EUCLEAN (EFSCORRUPTED) with a file: the inode's metadata was marked sick.
    InodeMetadata,
    /// EUCLEAN without a file: filesystem or allocation-group metadata was marked sick.
    Metadata,
    /// ESHUTDOWN without a file: the filesystem shut down.
    Shutdown,
    /// Anything else (another errno, or a combination fanotify does not explain).
    Other,
}

impl FsErrorKind {
    /// The kind of a report from its positive errno and whether it named a file.
    pub fn of(error: i32, has_file: bool) -> FsErrorKind {
        match (error, has_file) {
            (5, true) => FsErrorKind::DataLost,
            (117, true) => FsErrorKind::InodeMetadata,
            (117, false) => FsErrorKind::Metadata,
            (108, false) => FsErrorKind::Shutdown,
            _ => FsErrorKind::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FsErrorKind::DataLost => "data_lost",
            FsErrorKind::InodeMetadata => "inode_metadata",
            FsErrorKind::Metadata => "metadata",
            FsErrorKind::Shutdown => "shutdown",
            FsErrorKind::Other => "other",
        }
    }
}

/// One FAN_FS_ERROR event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsError {
    /// CLOCK_MONOTONIC when notify read it (the kernel gives no time; comparable with the
    /// kernel events' `ktime_ns`).
    pub ktime_ns: u64,
    /// The filesystem's data device.
    pub dev: Dev,
    /// Where notify watches it.
    pub mount_point: PathBuf,
    pub what: FsErrorKind,
    /// The positive errno XFS reported.
    pub error: i32,
    /// How many reports this event stands for: fanotify merges unread error events of one
    /// filesystem, keeping the first file only. More than 1: some files are not named.
    pub error_count: u32,
    /// The file's inode number and generation, when the report names a file.
    pub ino: Option<u64>,
    pub generation: Option<u32>,
    /// A path of that inode when one could be found.
    pub path: Option<PathBuf>,
    /// The kernel sequence number of the delivered notification this report follows, when
    /// there is one (on the same device, shortly before).
    pub notification_seq: Option<u64>,
}
