//! Replaying a dropped notification on a ready filesystem: what XFS's notify_failure would have
//! done, done from userspace.
//!
//! dax range -> filesystem range (partition offset) -> GETFSMAP owners -> the processes whose
//! mappings cover the owners' damaged file ranges -> the policy's action on each. Metadata owners
//! are reported, never acted on: XFS would shut the filesystem down, which is not ours to do.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
};

use serde::Serialize;

use crate::{
    enforce::{self, Decision},
    event::Dev,
    fsmap::{self, Filesystem, FsRange, HitKind},
    mappers::{self, Mapper, Target},
    mountinfo, pmem,
};

/// A ready filesystem on (a partition of) a pmem disk.
#[derive(Clone, Debug, Serialize)]
pub struct Site {
    pub mount_point: PathBuf,
    /// The block device the filesystem is on (the disk or a partition).
    pub dev: Dev,
    /// The pmem disk (what notifications name).
    pub disk: String,
    /// Where the block device starts on the disk, and its size.
    pub part_start: u64,
    pub part_bytes: u64,
}

/// One owner of damaged blocks.
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub mount_point: PathBuf,
    pub dax_offset: u64,
    pub len: u64,
    pub fs_range: Option<FsRange>,
    pub owners: Vec<OwnerReport>,
    pub decisions: Vec<Decision>,
    /// Why nothing could be done, when that is the case.
    pub error: Option<String>,
}

impl ReplayReport {
    /// A one-line summary for the journal's state note.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("error: {e}");
        }
        let files = self.owners.iter().filter(|o| !o.metadata).count();
        let meta = self.owners.len() - files;
        let mut counts = std::collections::BTreeMap::new();
        for d in &self.decisions {
            *counts
                .entry(format!("{:?}", d.action).to_lowercase())
                .or_insert(0) += 1;
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

/// Finds the ready filesystem of a pmem disk (or one of its partitions) whose partition covers
/// `dax_offset`, from the current mounts.
pub fn find_site(disk: &str, dax_offset: u64) -> io::Result<Option<Site>> {
    let disks = pmem::scan()?;
    let Some(d) = disks.iter().find(|d| d.name == disk) else {
        return Ok(None);
    };
    let mounts = mountinfo::read()?;
    let sys_dev_block = Path::new("/sys/dev/block");
    for m in mounts.iter().filter(|m| m.fstype == "xfs" && m.root == "/") {
        let Some(owner) = pmem::disk_of(sys_dev_block, &disks, m.dev) else {
            continue;
        };
        if owner.name != d.name {
            continue;
        }
        let (part_start, part_bytes) =
            fsmap::partition_geometry((m.dev.major(), m.dev.minor())).unwrap_or((0, d.size));
        if dax_offset >= part_start && dax_offset - part_start < part_bytes {
            return Ok(Some(Site {
                mount_point: m.mount_point.clone(),
                dev: m.dev,
                disk: d.name.clone(),
                part_start,
                part_bytes,
            }));
        }
    }
    Ok(None)
}

/// The site of a mounted filesystem given by its mount point (for `notify resolve --mount`).
pub fn site_of_mount(mount: &Path) -> io::Result<Site> {
    let md = std::fs::metadata(mount)?;
    let dev = Dev::from_user(std::os::unix::fs::MetadataExt::dev(&md));
    let disks = pmem::scan().unwrap_or_default();
    let disk = pmem::disk_of(Path::new("/sys/dev/block"), &disks, dev)
        .map(|d| d.name)
        .unwrap_or_default();
    let (part_start, part_bytes) =
        fsmap::partition_geometry((dev.major(), dev.minor())).unwrap_or((0, u64::MAX / 2));
    Ok(Site {
        mount_point: mount.to_path_buf(),
        dev,
        disk,
        part_start,
        part_bytes,
    })
}

/// Owners of a filesystem range, with paths, and the mapping targets they make.
pub fn owners(
    fs: &Filesystem,
    range: FsRange,
) -> Result<(Vec<OwnerReport>, Vec<Target>), fsmap::FsmapError> {
    owners_with(fs, range, &mut fsmap::InodePaths::new(fs.path()).ok())
}

/// As [`owners`], with an inode -> path index that outlives the call (its walk of the mount is
/// done once for a whole replay pass, not once per notification).
fn owners_with(
    fs: &Filesystem,
    range: FsRange,
    paths: &mut Option<fsmap::InodePaths>,
) -> Result<(Vec<OwnerReport>, Vec<Target>), fsmap::FsmapError> {
    let res = fs.resolve(range.physical, range.length)?;
    let mut lookup = |ino: u64| -> Vec<PathBuf> {
        paths
            .as_mut()
            .and_then(|p| p.lookup(ino).ok().map(|s| s.to_vec()))
            .unwrap_or_default()
    };
    let (major, minor) = fs.dev;
    let mut out = Vec::new();
    let mut targets = Vec::new();
    for (ino, ranges) in res.files() {
        let hits: Vec<_> = res
            .hits
            .iter()
            .filter(|h| matches!(h.kind, HitKind::FileData { ino: i, .. } if i == ino))
            .collect();
        out.push(OwnerReport {
            kind: "file".into(),
            ino: Some(ino),
            paths: lookup(ino),
            ranges: ranges.iter().map(|r| (r.offset, r.length)).collect(),
            physical: hits.iter().map(|h| h.physical).min().unwrap_or(0),
            length: hits.iter().map(|h| h.length).sum(),
            shared: hits.iter().any(|h| h.flags.shared()),
            metadata: false,
        });
        targets.extend(ranges.iter().map(|r| Target {
            major,
            minor,
            inode: ino,
            offset: r.offset,
            length: r.length,
        }));
    }
    for h in res.hits.iter() {
        match &h.kind {
            HitKind::FileData { .. } => {}
            HitKind::InodeMetadata { ino, .. } => out.push(OwnerReport {
                kind: "inode_metadata".into(),
                ino: Some(*ino),
                paths: lookup(*ino),
                ranges: vec![],
                physical: h.physical,
                length: h.length,
                shared: false,
                metadata: true,
            }),
            HitKind::Special { owner } => out.push(OwnerReport {
                kind: owner.name(),
                ino: None,
                paths: vec![],
                ranges: vec![],
                physical: h.physical,
                length: h.length,
                shared: false,
                metadata: owner.is_metadata(),
            }),
        }
    }
    Ok((out, targets))
}

/// Replays one notification on `site` with `cfg`'s policy.
pub fn replay(cfg: &enforce::Config, site: &Site, dax_offset: u64, len: u64) -> ReplayReport {
    replay_batch(cfg, &[(site.clone(), dax_offset, len)])
        .pop()
        .expect("one report per notification")
}

/// Replays several notifications with one walk of /proc: the owners of each range are
/// resolved (GETFSMAP) one by one, then every damaged file range of the batch is matched in a
/// single scan of the processes, and each notification acts on the mappers of its own ranges.
/// A scan costs the same for one range as for a hundred; a replay pass after a mount can have
/// many records (measured in docs/BENCHMARKS.md, containment).
pub fn replay_batch(cfg: &enforce::Config, items: &[(Site, u64, u64)]) -> Vec<ReplayReport> {
    let mut reports = Vec::with_capacity(items.len());
    let mut targets: Vec<Vec<Target>> = Vec::with_capacity(items.len());
    // One open filesystem and one path index per mount point for the whole pass.
    let mut open: HashMap<PathBuf, Opened> = HashMap::new();
    for (site, dax_offset, len) in items {
        let (r, t) = resolve(site, *dax_offset, *len, &mut open);
        reports.push(r);
        targets.push(t);
    }
    let all: Vec<Target> = targets.iter().flatten().copied().collect();
    if all.is_empty() {
        return reports;
    }
    match mappers::scan_proc(&cfg.proc_root, &all) {
        Ok((found, _)) => {
            for (report, mine) in reports.iter_mut().zip(&targets) {
                let theirs = mappers_of(&found, mine);
                if !theirs.is_empty() {
                    report.decisions = enforce::enforce_all(cfg, &theirs);
                }
            }
        }
        Err(e) => {
            for (report, mine) in reports.iter_mut().zip(&targets) {
                if !mine.is_empty() {
                    report.error = Some(format!("scanning /proc: {e}"));
                }
            }
        }
    }
    reports
}

/// The mappers of some targets: each process with only its hits on those targets.
fn mappers_of(found: &[Mapper], targets: &[Target]) -> Vec<Mapper> {
    found
        .iter()
        .filter_map(|m| {
            let hits: Vec<_> = m
                .hits
                .iter()
                .filter(|h| targets.contains(&h.target))
                .cloned()
                .collect();
            (!hits.is_empty()).then(|| Mapper { hits, ..m.clone() })
        })
        .collect()
}

/// A notification's filesystem range and owners (no decisions yet), and the file ranges whose
/// mappers it is to act on.
/// A filesystem opened for a replay pass, with its inode -> path index.
type Opened = Result<(Filesystem, Option<fsmap::InodePaths>), String>;

fn resolve(
    site: &Site,
    dax_offset: u64,
    len: u64,
    open: &mut HashMap<PathBuf, Opened>,
) -> (ReplayReport, Vec<Target>) {
    let mut report = ReplayReport {
        mount_point: site.mount_point.clone(),
        dax_offset,
        len,
        fs_range: None,
        owners: vec![],
        decisions: vec![],
        error: None,
    };
    let range = match fsmap::dax_to_fs_range(dax_offset, len, site.part_start, site.part_bytes) {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(e.to_string());
            return (report, vec![]);
        }
    };
    report.fs_range = Some(range);
    let opened = open.entry(site.mount_point.clone()).or_insert_with(|| {
        Filesystem::open(&site.mount_point)
            .map(|fs| {
                let paths = fsmap::InodePaths::new(fs.path()).ok();
                (fs, paths)
            })
            .map_err(|e| e.to_string())
    });
    let (fs, paths) = match opened {
        Ok((fs, paths)) => (&*fs, paths),
        Err(e) => {
            report.error = Some(e.clone());
            return (report, vec![]);
        }
    };
    match owners_with(fs, range, paths) {
        Ok((o, t)) => {
            report.owners = o;
            (report, t)
        }
        Err(e) => {
            report.error = Some(e.to_string());
            (report, vec![])
        }
    }
}

/// The report as text, for `notify resolve`.
pub fn render(r: &ReplayReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: dax range {:#x}+{} -> {}",
        r.mount_point.display(),
        r.dax_offset,
        r.len,
        match r.fs_range {
            Some(f) => format!("filesystem bytes {:#x}+{}", f.physical, f.length),
            None => "outside the filesystem".into(),
        }
    );
    if let Some(e) = &r.error {
        let _ = writeln!(s, "error: {e}");
    }
    for o in &r.owners {
        let paths: Vec<String> = o.paths.iter().map(|p| p.display().to_string()).collect();
        match o.ino {
            Some(ino) => {
                let ranges: Vec<String> = o
                    .ranges
                    .iter()
                    .map(|(off, len)| format!("{off:#x}+{len}"))
                    .collect();
                let _ = writeln!(
                    s,
                    "  owner {:<15} ino {ino:<10} {} file range {}{}",
                    o.kind,
                    if paths.is_empty() {
                        "(no path)".to_string()
                    } else {
                        paths.join(", ")
                    },
                    if ranges.is_empty() {
                        "-".to_string()
                    } else {
                        ranges.join(" ")
                    },
                    if o.shared { " (shared extent)" } else { "" }
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  owner {:<15} bytes {:#x}+{}{}",
                    o.kind,
                    o.physical,
                    o.length,
                    if o.metadata {
                        " (metadata: XFS would shut down)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    if r.owners.is_empty() && r.error.is_none() {
        let _ = writeln!(s, "  no owner");
    }
    for d in &r.decisions {
        let _ = writeln!(
            s,
            "  process {} ({}) {:?}: {}",
            d.pid, d.comm, d.action, d.reason
        );
    }
    s
}
