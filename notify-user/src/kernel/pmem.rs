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

use notify_model::{Dev, record::NdctlNames};

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
    /// The namespace (or pfn device) the disk is attached to, and what identifies it.
    pub namespace: Option<Namespace>,
}

/// The libnvdimm device behind a pmem disk: `/sys/block/pmemN/device`, a namespace
/// (`namespaceX.Y`: raw, or `memory` for memmap=) or a pfn device (`pfnX.Y`: fsdax with an info
/// block), as ndctl names them (`ndctl list -N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// "namespace0.0" or "pfn0.1".
    pub name: String,
    /// The region it is in ("region0").
    pub region: Option<String>,
    /// The on-media uuid (labelled namespaces, pfn info blocks); none for a label-less or
    /// memmap= namespace.
    pub uuid: Option<String>,
    /// The bus provider ("e820" for memmap= and legacy, or the ACPI NFIT provider).
    pub provider: Option<String>,
    /// `mode` (safe, memory, dax, raw), when the device has one.
    pub mode: Option<String>,
    /// Physical start and size of the data.
    pub resource: Option<u64>,
    pub size: Option<u64>,
    /// For a pfn, dax or btt device: the namespace it claims (its `namespace` attribute), which
    /// is what ndctl lists.
    pub claims: Option<String>,
}

impl Namespace {
    /// The names ndctl gives: the namespace (for a pfn/dax/btt device, the namespace it
    /// claims) and its region.
    pub fn ndctl(&self) -> NdctlNames {
        NdctlNames {
            namespace: Some(self.claims.clone().unwrap_or_else(|| self.name.clone())),
            region: self.region.clone(),
        }
    }

    /// What stays the same for the same namespace and differs for another: its uuid where the
    /// medium has one, else the bus, region and physical range (a memmap= namespace has nothing
    /// else: a different `memmap=` is a different namespace).
    pub fn identity(&self) -> String {
        match &self.uuid {
            Some(u) => format!("uuid:{u}"),
            None => format!(
                "{}:{}:{}+{}",
                self.provider.as_deref().unwrap_or("?"),
                self.region.as_deref().unwrap_or("?"),
                self.resource.map_or("?".into(), |r| format!("{r:#x}")),
                self.size.map_or("?".into(), |s| format!("{s:#x}")),
            ),
        }
    }
}

/// The namespace behind `disk_dir` (`/sys/block/pmemN`), from its `device` link.
fn namespace_of(disk_dir: &Path) -> Option<Namespace> {
    let dev_dir = fs::canonicalize(disk_dir.join("device")).ok()?;
    let name = dev_dir.file_name()?.to_string_lossy().into_owned();
    let attr = |a: &str| read_trim(&dev_dir.join(a)).filter(|v| !v.is_empty());
    // The region and the bus are ancestors: .../ndbusN/regionM/namespaceM.K.
    let region = dev_dir
        .ancestors()
        .filter_map(|a| a.file_name().map(|n| n.to_string_lossy().into_owned()))
        .find(|n| n.starts_with("region"));
    let provider = dev_dir
        .ancestors()
        .find(|a| {
            a.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ndbus"))
        })
        .and_then(|b| read_trim(&b.join("provider")));
    Some(Namespace {
        name,
        region,
        uuid: attr("uuid"),
        provider,
        mode: attr("mode"),
        resource: attr("resource").and_then(|s| parse_u64(&s)),
        size: attr("size").and_then(|s| parse_u64(&s)),
        claims: attr("namespace"),
    })
}

impl PmemDisk {
    /// Its namespace and region as ndctl names them (both null outside libnvdimm).
    pub fn ndctl(&self) -> NdctlNames {
        self.namespace
            .as_ref()
            .map(Namespace::ndctl)
            .unwrap_or_default()
    }

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
    Dev::parse(s)
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
            namespace: namespace_of(&dir),
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
        fs::create_dir_all(root.join("devices/ndbus0")).unwrap();
        fs::write(root.join("devices/ndbus0/provider"), "e820\n").unwrap();
        fs::create_dir_all(disk.join("pmem0p1")).unwrap();
        fs::write(disk.join("dev"), "259:0\n").unwrap();
        fs::write(disk.join("size"), format!("{}\n", (1u64 << 30) / 512)).unwrap();
        fs::write(disk.join("pmem0p1/dev"), "259:1\n").unwrap();
        fs::write(disk.join("../../resource"), "0x40000000\n").unwrap();
        fs::write(disk.join("../../size"), "1073741824\n").unwrap();
        fs::write(disk.join("../../mode"), "memory\n").unwrap();
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
        // A memmap= namespace: no uuid, identified by bus, region and physical range.
        let ns = d.namespace.as_ref().unwrap();
        assert_eq!(
            (ns.name.as_str(), ns.mode.as_deref(), ns.uuid.as_deref()),
            ("namespace0.0", Some("memory"), None)
        );
        assert_eq!(ns.identity(), "e820:region0:0x40000000+0x40000000");
        let labelled = Namespace {
            uuid: Some("6e0b2c0c-4f5a-4f8e-9d1e-2d6c1b2a3f40".into()),
            ..ns.clone()
        };
        assert_eq!(
            labelled.identity(),
            "uuid:6e0b2c0c-4f5a-4f8e-9d1e-2d6c1b2a3f40"
        );
        assert_eq!(
            d.ndctl(),
            NdctlNames {
                namespace: Some("namespace0.0".into()),
                region: Some("region0".into())
            }
        );
        let part = disk_of(&root.join("dev/block"), &disks, Dev((259 << 20) | 1)).unwrap();
        assert_eq!(part.name, "pmem0");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_fsdax_disk_is_named_by_the_namespace_its_pfn_device_claims() {
        // `ndctl create-namespace -m fsdax`: the disk hangs off pfn1.0, which claims
        // namespace1.0; ndctl lists namespace1.0 (with "blockdev":"pmem1").
        let root = std::env::temp_dir().join(format!("notify-pmem-pfn-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let pfn = root.join("devices/ndbus1/region1/pfn1.0");
        let disk = pfn.join("block/pmem1");
        fs::create_dir_all(&disk).unwrap();
        fs::create_dir_all(root.join("devices/ndbus1/region1/namespace1.0")).unwrap();
        fs::write(root.join("devices/ndbus1/provider"), "ACPI.NFIT\n").unwrap();
        fs::write(pfn.join("namespace"), "namespace1.0\n").unwrap();
        fs::write(pfn.join("uuid"), "0a1b2c3d-0000-4000-8000-000000000001\n").unwrap();
        fs::write(pfn.join("mode"), "pmem\n").unwrap();
        fs::write(disk.join("dev"), "259:2\n").unwrap();
        fs::write(disk.join("size"), "2097152\n").unwrap();
        std::os::unix::fs::symlink(&pfn, disk.join("device")).unwrap();
        let block = root.join("block");
        fs::create_dir_all(&block).unwrap();
        std::os::unix::fs::symlink(&disk, block.join("pmem1")).unwrap();
        let disks = scan_at(&block).unwrap();
        assert_eq!(disks.len(), 1, "{disks:?}");
        let ns = disks[0].namespace.as_ref().unwrap();
        assert_eq!(ns.name, "pfn1.0");
        assert_eq!(
            disks[0].ndctl(),
            NdctlNames {
                namespace: Some("namespace1.0".into()),
                region: Some("region1".into())
            }
        );
        fs::remove_dir_all(root).unwrap();
    }
}
