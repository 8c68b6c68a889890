//! Where a damaged range lies now: the ready XFS on (a partition of) a pmem disk, found from the
//! current mounts.

use std::{
    io,
    path::{Path, PathBuf},
};

use notify_model::Dev;
use serde::Serialize;

use crate::{
    kernel::{mountinfo, pmem},
    resolve::geometry,
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
            geometry::partition_geometry((m.dev.major(), m.dev.minor())).unwrap_or((0, d.size));
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
        geometry::partition_geometry((dev.major(), dev.minor())).unwrap_or((0, u64::MAX / 2));
    Ok(Site {
        mount_point: mount.to_path_buf(),
        dev,
        disk,
        part_start,
        part_bytes,
    })
}
