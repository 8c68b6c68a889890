//! Where a filesystem lies on its pmem disk: a partition's start and size (sysfs), and the
//! translation of a dax-device range into the filesystem's data-device range.

use std::{fmt, io, path::PathBuf};

use notify_model::record::FsRange;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsidePartition {
    pub dax_offset: u64,
    pub length: u64,
    pub part_start: u64,
    pub part_bytes: u64,
}

impl fmt::Display for OutsidePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dax range {:#x}+{:#x} does not touch the filesystem's partition \
             [{:#x}, {:#x}): not this filesystem's failure",
            self.dax_offset,
            self.length,
            self.part_start,
            self.part_start + self.part_bytes
        )
    }
}

impl std::error::Error for OutsidePartition {}

/// Translate a dax-device range (what `dax_holder_notify_failure()` gets) into the data device
/// range of a filesystem on a partition starting `part_start` bytes into the dax device and
/// `part_bytes` long. Mirrors `xfs_dax_notify_failure()`: subtract `bt_dax_part_off`, cut what
/// sticks out at either end, and refuse a range that does not touch the partition at all (the
/// kernel returns -ENXIO there). `(0, u64::MAX)` is the whole-device pre-remove notification.
pub fn dax_to_fs_range(
    dax_offset: u64,
    length: u64,
    part_start: u64,
    part_bytes: u64,
) -> Result<FsRange, OutsidePartition> {
    let err = OutsidePartition {
        dax_offset,
        length,
        part_start,
        part_bytes,
    };
    if length == 0 || part_bytes == 0 {
        return Err(err);
    }
    let d_end = dax_offset.saturating_add(length); // exclusive
    let p_end = part_start.saturating_add(part_bytes);
    if d_end <= part_start || dax_offset >= p_end {
        return Err(err);
    }
    let lo = dax_offset.max(part_start);
    let hi = d_end.min(p_end);
    Ok(FsRange {
        physical: lo - part_start,
        length: hi - lo,
        clipped: lo != dax_offset || hi != d_end,
    })
}

/// Start offset and size in bytes of block device (major, minor) within its disk, from sysfs
/// (`start` exists only for partitions; a whole disk starts at 0). For a partition of a pmem
/// disk this start is what XFS subtracts (`bt_dax_part_off`).
pub fn partition_geometry(dev: (u32, u32)) -> io::Result<(u64, u64)> {
    let base = PathBuf::from(format!("/sys/dev/block/{}:{}", dev.0, dev.1));
    let read_u64 = |name: &str| -> io::Result<u64> {
        let s = std::fs::read_to_string(base.join(name))?;
        s.trim().parse::<u64>().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}/{name}: {e}", base.display()),
            )
        })
    };
    let start = match read_u64("start") {
        Ok(s) => s * 512,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    Ok((start, read_u64("size")? * 512))
}
