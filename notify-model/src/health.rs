//! XFS's health monitor (7.0+, `XFS_IOC_HEALTH_MONITOR`, one client per filesystem): what it
//! reports, one item per record, when notify was asked to hold a filesystem's monitor (never by
//! default: xfs_healer takes it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dev::Dev;

/// One health-monitor record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// CLOCK_MONOTONIC when notify read it.
    pub ktime_ns: u64,
    /// The kernel's own time of the event (ns since the epoch, coarse).
    pub time_ns: u64,
    pub dev: Dev,
    pub mount_point: PathBuf,
    /// mount, fs, ag, inode, rtgroup, datadev, rtdev, logdev, filerange (or the number).
    pub domain: String,
    /// running, lost, unmount, sick, corrupt, healthy, shutdown, media_error, bufread,
    /// bufwrite, dioread, diowrite, datalost (or the number).
    pub what: String,
    /// Sick/corrupt/healthy: the structures, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub structures: Vec<String>,
    /// An allocation or realtime group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    /// Media errors: 512-byte sectors of the device, `[daddr, daddr + sectors)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daddr: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sectors: Option<u64>,
    /// File ranges: bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// File ranges: the positive errno.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<u32>,
    /// Lost events (the monitor's queue overflowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Shutdown reasons, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Health {
    /// A record of `domain` and `what` with none of the optional members: the record kinds
    /// each fill in their own.
    pub fn new(
        ktime_ns: u64,
        time_ns: u64,
        dev: Dev,
        mount_point: PathBuf,
        domain: String,
        what: String,
    ) -> Health {
        Health {
            ktime_ns,
            time_ns,
            dev,
            mount_point,
            domain,
            what,
            structures: vec![],
            group: None,
            ino: None,
            generation: None,
            daddr: None,
            sectors: None,
            pos: None,
            len: None,
            error: None,
            lost: None,
            reasons: vec![],
        }
    }
}
