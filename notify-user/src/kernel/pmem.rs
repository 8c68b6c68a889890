//! Which pmem device a notification is about.
//!
//! A notification names the dax device by kernel pointer only. That pointer is tied to a block
//! device when a filesystem registers as its holder (`holder_get` carries `bd_dev`), but a
//! notification with no holder, or one from before the agent started, has nothing but the pfn
//! `memory_failure` was called with. sysfs gives each pmem disk's physical data start
//! (`/sys/block/pmemN/device/resource`: the namespace's, or for a pfn/fsdax namespace the start
//! of data after the struct-page reserve), so the pfn identifies the disk and the dax offset is
//! `pfn * 4096 - start`, exactly what `pmem_pagemap_memory_failure` computes.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use notify_model::Dev;

/// One pmem disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmemDisk {
    /// "pmem0".
    pub name: String,
    pub dev: Dev,
    /// Physical address of the first data byte, when sysfs says.
    pub phys_start: Option<u64>,
    /// Size in bytes (from the disk's sector count).
    pub size: u64,
}

impl PmemDisk {
    /// The dax offset of a physical address on this disk, if it lies on it.
    pub fn dax_offset(&self, phys: u64) -> Option<u64> {
        let start = self.phys_start?;
        (phys >= start && phys - start < self.size).then(|| phys - start)
    }

    /// `/sys/block/<name>/badblocks`.
    pub fn badblocks_path(&self, sys_block: &Path) -> PathBuf {
        sys_block.join(&self.name).join("badblocks")
    }
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn parse_dev(s: &str) -> Option<Dev> {
    let (maj, min) = s.split_once(':')?;
    Some(Dev(
        (maj.parse::<u32>().ok()? << 20) | min.parse::<u32>().ok()?
    ))
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Lists the pmem disks under a sysfs `block` directory (normally `/sys/block`).
pub fn scan_at(sys_block: &Path) -> io::Result<Vec<PmemDisk>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(sys_block)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("pmem") {
            continue;
        }
        let dir = entry.path();
        let Some(dev) = read_trim(&dir.join("dev")).and_then(|s| parse_dev(&s)) else {
            continue;
        };
        let size = read_trim(&dir.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512;
        let phys_start = read_trim(&dir.join("device/resource")).and_then(|s| parse_u64(&s));
        out.push(PmemDisk {
            name,
            dev,
            phys_start,
            size,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn scan() -> io::Result<Vec<PmemDisk>> {
    scan_at(Path::new("/sys/block"))
}

/// The disk a physical page frame belongs to.
pub fn by_pfn(disks: &[PmemDisk], pfn: u64) -> Option<&PmemDisk> {
    let phys = pfn.checked_mul(4096)?;
    disks.iter().find(|d| d.dax_offset(phys).is_some())
}

/// The whole disk of a block device that may be a partition (`pmem0p1` -> `pmem0`), from
/// `/sys/dev/block/MAJ:MIN`.
pub fn disk_of(sys_dev_block: &Path, disks: &[PmemDisk], dev: Dev) -> Option<PmemDisk> {
    if let Some(d) = disks.iter().find(|d| d.dev == dev) {
        return Some(d.clone());
    }
    let link = sys_dev_block.join(dev.to_string());
    let real = fs::canonicalize(&link).ok()?;
    // A partition's sysfs directory sits inside its disk's.
    let parent = real.parent()?.file_name()?.to_string_lossy().into_owned();
    disks.iter().find(|d| d.name == parent).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs() -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("notify-pmem-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let block = root.join("block");
        // pmem0 with a namespace resource at 1 GiB, 1 GiB long; a partition pmem0p1.
        let disk = root.join("devices/ndbus0/region0/namespace0.0/block/pmem0");
        fs::create_dir_all(disk.join("pmem0p1")).unwrap();
        fs::write(disk.join("dev"), "259:0\n").unwrap();
        fs::write(disk.join("size"), format!("{}\n", (1u64 << 30) / 512)).unwrap();
        fs::write(disk.join("pmem0p1/dev"), "259:1\n").unwrap();
        fs::write(disk.join("../../resource"), "0x40000000\n").unwrap();
        std::os::unix::fs::symlink(disk.join("../.."), disk.join("device")).unwrap();
        fs::create_dir_all(&block).unwrap();
        std::os::unix::fs::symlink(&disk, block.join("pmem0")).unwrap();
        fs::create_dir_all(block.join("loop0")).unwrap();
        let dev_block = root.join("dev/block");
        fs::create_dir_all(&dev_block).unwrap();
        std::os::unix::fs::symlink(disk.join("pmem0p1"), dev_block.join("259:1")).unwrap();
        (root, block)
    }

    #[test]
    fn finds_the_disk_of_a_pfn_and_of_a_partition() {
        let (root, block) = fake_sysfs();
        let disks = scan_at(&block).unwrap();
        assert_eq!(disks.len(), 1, "{disks:?}");
        let d = &disks[0];
        assert_eq!(
            (d.name.as_str(), d.dev, d.phys_start),
            ("pmem0", Dev(259 << 20), Some(1 << 30))
        );
        // The lab's pfn 0x40100 is 1 MiB into the disk.
        assert_eq!(
            by_pfn(&disks, 0x40100).unwrap().dax_offset(0x40100 * 4096),
            Some(1 << 20)
        );
        assert!(by_pfn(&disks, 0x3ffff).is_none());
        assert!(by_pfn(&disks, 0x80000).is_none(), "one past the end");
        let part = disk_of(&root.join("dev/block"), &disks, Dev((259 << 20) | 1)).unwrap();
        assert_eq!(part.name, "pmem0");
        fs::remove_dir_all(root).unwrap();
    }
}
