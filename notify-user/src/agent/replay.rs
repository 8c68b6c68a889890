//! Replaying a dropped notification on a ready filesystem: what XFS's notify_failure would have
//! done, done from userspace.
//!
//! dax range -> filesystem range (partition offset) -> GETFSMAP owners -> the processes whose
//! mappings cover the owners' damaged file ranges -> the policy's action on each. Metadata owners
//! are reported, never acted on: XFS would shut the filesystem down, which is not ours to do.

use std::{collections::HashMap, path::PathBuf};

use notify_model::record::{OwnerReport, ReplayReport};

use crate::{
    enforce,
    resolve::{
        fsmap::Filesystem,
        geometry,
        mappers::{self, Mapper, Target},
        owners::owners_with,
        paths::InodePaths,
        site::Site,
    },
};

/// The owners of a range on `site` (GETFSMAP), without looking for mappers.
pub fn owners_only(site: &Site, dax_offset: u64, len: u64) -> Vec<OwnerReport> {
    let mut open = HashMap::new();
    resolve(site, dax_offset, len, &mut open).0.owners
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
    match mappers::scan_with(&cfg.proc_root, &all, cfg.scan) {
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
type Opened = Result<(Filesystem, Option<InodePaths>), String>;

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
        xfs_told: false,
        advice: vec![],
    };
    let range = match geometry::dax_to_fs_range(dax_offset, len, site.part_start, site.part_bytes) {
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
                let paths = InodePaths::new(fs.path()).ok();
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
