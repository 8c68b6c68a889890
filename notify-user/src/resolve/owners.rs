//! The owners of a damaged filesystem range (GETFSMAP), with their paths, and the file ranges
//! whose mappers are to be found.

use std::path::PathBuf;

use notify_model::record::{FsRange, OwnerReport};

use crate::resolve::{
    fsmap::{self, Filesystem, HitKind},
    mappers::Target,
    paths::InodePaths,
};

/// Owners of a filesystem range, with paths, and the mapping targets they make.
pub fn owners(
    fs: &Filesystem,
    range: FsRange,
) -> Result<(Vec<OwnerReport>, Vec<Target>), fsmap::FsmapError> {
    owners_with(fs, range, &mut InodePaths::new(fs.path()).ok())
}

/// As [`owners`], with an inode -> path index that outlives the call (its walk of the mount is
/// done once for a whole replay pass, not once per notification).
pub fn owners_with(
    fs: &Filesystem,
    range: FsRange,
    paths: &mut Option<InodePaths>,
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
