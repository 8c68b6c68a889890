//! The opt-in kernel re-drive: writing a damaged page's physical address to
//! `/sys/devices/system/memory/hard_offline_page` runs `memory_failure()` again, now into the
//! ready XFS, which then walks its reverse map and kills the mappers itself (its own kill
//! semantics: the early-kill ones at once, the rest when they touch the page).
//!
//! It is a testing interface with real side effects (drivers/base/memory.c, 6.1/6.12/7.3): every
//! write counts as a new hardware error (HardwareCorrupted, the RAS tracepoint), a dax page is
//! handled again on every write (no "already poisoned" short cut for device pages), a metadata
//! owner shuts the filesystem down, and a pfn that no longer belongs to the namespace would
//! poison ordinary RAM. So it is off by default, and refused unless every check below holds.

use std::{fs::OpenOptions, io::Write as _, path::Path};

use notify_model::record::OwnerReport;

use crate::{
    agent::badblocks::{self, ByteRange},
    kernel::{channels::HARD_OFFLINE_PAGE, pmem::PmemDisk},
};

const PAGE: u64 = 4096;

/// What is known of a record when deciding whether to re-drive it.
pub struct Candidate<'a> {
    pub disk: &'a PmemDisk,
    pub dax_offset: u64,
    pub len: u64,
    /// The record's namespace identity, when journaled with one.
    pub namespace: Option<&'a str>,
    /// The pmem driver's bad ranges of the disk now.
    pub badblocks: &'a [ByteRange],
    /// GETFSMAP owners of the range.
    pub owners: &'a [OwnerReport],
    /// Already re-driven on this mount.
    pub redriven_here: bool,
}

/// The physical addresses to write, one per page, or why not.
pub fn check(c: &Candidate) -> Result<Vec<u64>, String> {
    if c.len == u64::MAX || c.len >= c.disk.size {
        return Err("a whole-device notification: never re-driven".into());
    }
    if c.len == 0 {
        return Err("an empty range".into());
    }
    if c.redriven_here {
        return Err("already re-driven on this mount (each write is a new hardware error)".into());
    }
    let now = c.disk.namespace.as_ref().map(|n| n.identity());
    if let (Some(was), Some(is)) = (c.namespace, now.as_deref())
        && was != is
    {
        return Err(format!("the namespace changed ({was} then, {is} now)"));
    }
    let Some(start) = c.disk.phys_start else {
        return Err(format!(
            "{}'s physical address is unknown (no readable device/resource)",
            c.disk.name
        ));
    };
    let end = c
        .dax_offset
        .checked_add(c.len)
        .ok_or("the range overflows")?;
    if end > c.disk.size {
        return Err(format!(
            "the range ends past {}'s data area ({} bytes): its pfns are not the namespace's now",
            c.disk.name, c.disk.size
        ));
    }
    let range = ByteRange {
        start: c.dax_offset,
        len: c.len,
    };
    if !badblocks::subtract(&[range], c.badblocks).is_empty() {
        return Err(format!(
            "not every sector is in {}'s bad-block list: the platform has not marked it bad",
            c.disk.name
        ));
    }
    if let Some(m) = c.owners.iter().find(|o| o.metadata) {
        return Err(format!(
            "metadata owns part of it ({}): XFS would shut the filesystem down",
            m.kind
        ));
    }
    if !c.owners.iter().any(|o| !o.metadata && o.ino.is_some()) {
        return Err("no file data owns it (GETFSMAP): nothing for XFS to kill".into());
    }
    let first = (start + c.dax_offset) / PAGE * PAGE;
    let last = (start + end - 1) / PAGE * PAGE;
    Ok((first..=last).step_by(PAGE as usize).collect())
}

/// Writes one physical address as 0x-hex (the kernel parses with base 0: a leading 0 alone
/// would mean octal).
pub fn write_hard_offline(sysfs: &Path, phys: u64) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(sysfs)?;
    f.write_all(format!("{phys:#x}\n").as_bytes())
}

/// The real interface.
pub fn hard_offline_page() -> &'static Path {
    Path::new(HARD_OFFLINE_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pmem::Namespace;
    use notify_model::Dev;

    fn disk() -> PmemDisk {
        PmemDisk {
            name: "pmem0".into(),
            dev: Dev::new(259, 0),
            phys_start: Some(1 << 30),
            size: 1 << 30,
            namespace: Some(Namespace {
                name: "namespace0.0".into(),
                region: Some("region0".into()),
                uuid: None,
                provider: Some("e820".into()),
                mode: Some("memory".into()),
                resource: Some(1 << 30),
                size: Some(1 << 30),
                claims: None,
            }),
        }
    }

    fn file() -> OwnerReport {
        OwnerReport {
            kind: "file".into(),
            ino: Some(131),
            paths: vec![],
            ranges: vec![(0, 4096)],
            physical: 0,
            length: 4096,
            shared: false,
            metadata: false,
        }
    }

    #[test]
    fn only_a_listed_file_range_of_this_namespace_is_redriven_once() {
        let d = disk();
        let bad = [ByteRange {
            start: 0x10_0000,
            len: 8192,
        }];
        let owners = [file()];
        let ok = Candidate {
            disk: &d,
            dax_offset: 0x10_0000,
            len: 8192,
            namespace: Some("e820:region0:0x40000000+0x40000000"),
            badblocks: &bad,
            owners: &owners,
            redriven_here: false,
        };
        assert_eq!(check(&ok).unwrap(), [0x4010_0000, 0x4010_1000]);
        let why = |c: Candidate| check(&c).unwrap_err();
        assert!(
            why(Candidate {
                len: u64::MAX,
                ..ok_copy(&ok)
            })
            .contains("whole-device")
        );
        assert!(
            why(Candidate {
                redriven_here: true,
                ..ok_copy(&ok)
            })
            .contains("already")
        );
        assert!(
            why(Candidate {
                namespace: Some("uuid:x"),
                ..ok_copy(&ok)
            })
            .contains("namespace")
        );
        assert!(
            why(Candidate {
                dax_offset: (1 << 30) - 4096,
                ..ok_copy(&ok)
            })
            .contains("past")
        );
        assert!(
            why(Candidate {
                badblocks: &[],
                ..ok_copy(&ok)
            })
            .contains("bad-block")
        );
        let meta = [OwnerReport {
            kind: "ag header".into(),
            ino: None,
            metadata: true,
            ..file()
        }];
        assert!(
            why(Candidate {
                owners: &meta,
                ..ok_copy(&ok)
            })
            .contains("shut")
        );
        assert!(
            why(Candidate {
                owners: &[],
                ..ok_copy(&ok)
            })
            .contains("no file")
        );
    }

    fn ok_copy<'a>(c: &Candidate<'a>) -> Candidate<'a> {
        Candidate {
            disk: c.disk,
            dax_offset: c.dax_offset,
            len: c.len,
            namespace: c.namespace,
            badblocks: c.badblocks,
            owners: c.owners,
            redriven_here: c.redriven_here,
        }
    }

    #[test]
    fn addresses_are_written_in_hex() {
        let p = std::env::temp_dir().join(format!("notify-redrive-{}", std::process::id()));
        std::fs::write(&p, "").unwrap();
        write_hard_offline(&p, 0x4010_0000).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "0x40100000\n");
        std::fs::remove_file(p).unwrap();
    }
}
