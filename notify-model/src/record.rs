//! The agent's own records: what it journaled, replayed and decided. They carry no kernel header
//! (docs/EVENTS.md, "Agent records").

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{
    decision::{Act, Decision},
    dev::Dev,
    journal::{Reason, Recovery},
};

/// How the agent knew which pmem disk a notification was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdentifiedBy {
    /// The holder's registration named the block device.
    #[serde(rename = "holder registration")]
    HolderRegistration,
    /// An earlier registration of the same dax device, since released, named it.
    #[serde(rename = "earlier registration of this dax device")]
    EarlierRegistration,
    /// The pfn `memory_failure` was called with, on the same thread, lies on the disk.
    #[serde(rename = "pfn of memory_failure")]
    MemoryFailurePfn,
    /// The same range was already pending: the existing record covers it.
    #[serde(rename = "duplicate of a pending record")]
    DuplicateOfPending,
    /// The pmem driver's bad-block list.
    #[serde(rename = "badblocks list")]
    BadblocksList,
}

/// A pmem disk's libnvdimm names as ndctl prints them (`ndctl list -N`: the namespace's `dev`,
/// `ndctl list -R`: the region's `dev`), so records can be joined with ndctl's view of the
/// hardware. Null where the disk has none (a pmem disk outside libnvdimm).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NdctlNames {
    /// "namespace0.0".
    pub namespace: Option<String>,
    /// "region0".
    pub region: Option<String>,
}

/// What the agent did, as output records (JSON: `kind` plus the fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentRecord {
    /// A notification was stored durably for replay.
    Journaled {
        id: u64,
        reason: Reason,
        disk: String,
        /// The disk's namespace and region.
        #[serde(flatten)]
        ndctl: NdctlNames,
        dax_offset: u64,
        len: u64,
        /// How the disk was identified.
        identified_by: IdentifiedBy,
    },
    /// A notification that needs replay but whose pmem disk could not be identified.
    Unidentified {
        dax_offset: u64,
        len: u64,
        why: String,
    },
    /// A journal record was replayed on a ready filesystem.
    Replayed {
        id: u64,
        disk: String,
        /// The disk's namespace and region.
        #[serde(flatten)]
        ndctl: NdctlNames,
        #[serde(flatten)]
        report: ReplayReport,
    },
    /// One decision on one process, from a replay (also inside `replayed`, repeated here so
    /// every kill and every refusal is its own event).
    Enforcement {
        id: u64,
        #[serde(flatten)]
        decision: Decision,
    },
    /// A filesystem became ready but never appeared in this mount namespace.
    MountNotVisible { dev: Dev, waited_ms: u64 },
    /// What opening the journal found (cut tails, corrupt frames).
    JournalRecovered {
        #[serde(flatten)]
        recovery: Recovery,
    },
    /// XFS was told of a record's range (XFS_IOC_VERIFY_MEDIA with its report flag): it read
    /// the range and reported every failed read's owners itself.
    XfsTold {
        id: u64,
        disk: String,
        mount_point: PathBuf,
        /// The unique mount it was told on (once per mount).
        mount: String,
        /// 512-byte sectors of the data device verified: `[start, end)`.
        start: u64,
        end: u64,
        /// The reads that failed: (first sector, sectors).
        bad: Vec<(u64, u64)>,
        /// Why telling failed, when it did.
        error: Option<String>,
    },
    /// What XFS reported after being told: its data-loss reports (FAN_FS_ERROR) for the
    /// record's file owners, compared with the owners GETFSMAP names.
    XfsReported {
        id: u64,
        disk: String,
        /// Inode numbers XFS reported data loss for.
        reported: Vec<u64>,
        /// File owners GETFSMAP names in the range.
        owners: Vec<u64>,
        /// Owners XFS did not report within the wait.
        missing: Vec<u64>,
        /// Reports that were merged by fanotify (error_count above 1): files not named.
        merged: u32,
    },
    /// The opt-in re-drive: the record's pages written to `hard_offline_page`, so that
    /// `memory_failure()` runs again into the ready XFS (XFS's own kill).
    Redriven {
        id: u64,
        disk: String,
        /// The physical addresses written (would be, in a dry run).
        phys: Vec<u64>,
        dry_run: bool,
        /// Why writing failed, when it did.
        error: Option<String>,
    },
    /// The re-drive refused for a record, and why (each unsafe case is refused).
    RedriveRefused { id: u64, disk: String, why: String },
    /// Metadata was damaged and `--metadata-shutdown` asked for what XFS would have done at
    /// the time: the filesystem shut down (XFS_IOC_GOINGDOWN, no log flush).
    MetadataShutdown {
        id: u64,
        disk: String,
        mount_point: PathBuf,
        /// The damaged metadata owners.
        metadata: Vec<String>,
        dry_run: bool,
        error: Option<String>,
    },
    /// A record closed without acting on it (the note says why).
    Closed { id: u64, disk: String, why: String },
    /// A write to the journal failed (full or read-only filesystem, a device failing writes or
    /// flushes): what was not stored and what the agent does about it. For `append` the
    /// notification is not in the journal (not yet acknowledged: no `journaled` record for it).
    JournalWriteFailed {
        /// The journal operation: `append`, `mark_replayed`, `mark_told`, `mark_redriven`,
        /// `close`.
        op: String,
        /// The record's id (none for an `append`: an id is given only once stored).
        id: Option<u64>,
        disk: String,
        dax_offset: u64,
        len: u64,
        /// The error, naming the journal file and the system call that failed.
        error: String,
        /// What the agent does about it, plainly.
        action: String,
    },
    /// A notification that a device is going away (`MF_MEM_PRE_REMOVE`, or 6.1's
    /// whole-device call with no flags at unbind): not poison, never journaled.
    DeviceRemoval {
        dax_offset: u64,
        len: u64,
        mf_flags: u32,
        disk: Option<String>,
    },
}

impl AgentRecord {
    /// Every `kind` an agent record can have.
    pub const KINDS: &'static [&'static str] = &[
        "journaled",
        "unidentified",
        "replayed",
        "enforcement",
        "mount_not_visible",
        "journal_recovered",
        "xfs_told",
        "xfs_reported",
        "closed",
        "device_removal",
        "redriven",
        "redrive_refused",
        "metadata_shutdown",
        "journal_write_failed",
    ];

    pub fn kind_name(&self) -> &'static str {
        match self {
            AgentRecord::Journaled { .. } => "journaled",
            AgentRecord::Unidentified { .. } => "unidentified",
            AgentRecord::Replayed { .. } => "replayed",
            AgentRecord::Enforcement { .. } => "enforcement",
            AgentRecord::MountNotVisible { .. } => "mount_not_visible",
            AgentRecord::JournalRecovered { .. } => "journal_recovered",
            AgentRecord::XfsTold { .. } => "xfs_told",
            AgentRecord::XfsReported { .. } => "xfs_reported",
            AgentRecord::Closed { .. } => "closed",
            AgentRecord::DeviceRemoval { .. } => "device_removal",
            AgentRecord::Redriven { .. } => "redriven",
            AgentRecord::RedriveRefused { .. } => "redrive_refused",
            AgentRecord::MetadataShutdown { .. } => "metadata_shutdown",
            AgentRecord::JournalWriteFailed { .. } => "journal_write_failed",
        }
    }
}

/// A range on the filesystem's data device (GETFSMAP's "physical").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRange {
    pub physical: u64,
    pub length: u64,
    /// The dax range extended past the partition and was cut to it (as the kernel does).
    pub clipped: bool,
}

/// One owner of damaged blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerReport {
    /// "file", "inode_metadata" or the special owner's name ("ag header", "log", ...).
    pub kind: String,
    pub ino: Option<u64>,
    pub paths: Vec<PathBuf>,
    /// Damaged file byte ranges (file owners).
    pub ranges: Vec<(u64, u64)>,
    /// Filesystem physical bytes of this owner in the damaged range.
    pub physical: u64,
    pub length: u64,
    pub shared: bool,
    pub metadata: bool,
}

/// The outcome of one replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub mount_point: PathBuf,
    pub dax_offset: u64,
    pub len: u64,
    pub fs_range: Option<FsRange>,
    pub owners: Vec<OwnerReport>,
    pub decisions: Vec<Decision>,
    /// Why nothing could be done, when that is the case.
    pub error: Option<String>,
    /// Whether XFS itself was told of the range on this mount (7.0+), as the `xfs_told`
    /// record before this one says.
    #[serde(default)]
    pub xfs_told: bool,
    /// What an operator should do next, plainly: XFS could not be told on this kernel (run a
    /// media scan), metadata is damaged (unmount and repair).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
}

impl ReplayReport {
    /// A one-line summary for the journal's state note.
    /// The countable part of this report, kept in the journal beside the note.
    pub fn outcome(&self) -> crate::journal::Outcome {
        let mut o = crate::journal::Outcome {
            error: self.error.clone(),
            ..Default::default()
        };
        for w in &self.owners {
            if w.metadata {
                o.metadata.push(w.kind.clone());
            } else {
                o.files.push(match (w.paths.first(), w.ino) {
                    (Some(p), _) => p.to_string_lossy().into_owned(),
                    (None, Some(i)) => format!("ino {i}"),
                    (None, None) => w.kind.clone(),
                });
            }
        }
        for d in &self.decisions {
            *o.processes.entry(d.action.name().to_string()).or_insert(0) += 1;
        }
        o
    }

    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("error: {e}");
        }
        let files = self.owners.iter().filter(|o| !o.metadata).count();
        let meta = self.owners.len() - files;
        let mut counts = std::collections::BTreeMap::new();
        for d in &self.decisions {
            *counts.entry(act_word(d.action)).or_insert(0) += 1;
        }
        let acts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!(
            "{files} file owner(s), {meta} metadata owner(s); processes: {}",
            if acts.is_empty() {
                "none".to_string()
            } else {
                acts.join(", ")
            }
        )
    }
}

/// The journal note's word for an act (its Rust name in lower case, as notes always said).
fn act_word(a: Act) -> &'static str {
    match a {
        Act::Signalled => "signalled",
        Act::WouldSignal => "wouldsignal",
        Act::Reported => "reported",
        Act::Refused => "refused",
        Act::NotMapping => "notmapping",
        Act::Gone => "gone",
        Act::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_list_every_variant() {
        let r = AgentRecord::MountNotVisible {
            dev: Dev::new(259, 0),
            waited_ms: 10,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["kind"], r.kind_name());
        assert!(AgentRecord::KINDS.contains(&r.kind_name()));
        let j = AgentRecord::Journaled {
            id: 1,
            reason: Reason::Premature,
            disk: "pmem0".into(),
            ndctl: NdctlNames {
                namespace: Some("namespace0.0".into()),
                region: Some("region0".into()),
            },
            dax_offset: 0,
            len: 4096,
            identified_by: IdentifiedBy::MemoryFailurePfn,
        };
        let line = serde_json::to_string(&j).unwrap();
        assert!(
            line.contains(r#""identified_by":"pfn of memory_failure""#)
                && line.contains(r#""namespace":"namespace0.0","region":"region0""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<AgentRecord>(&line).unwrap(), j);
    }
}
