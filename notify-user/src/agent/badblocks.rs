//! The pmem driver's own list of known-bad ranges: `/sys/block/pmemN/badblocks`.
//!
//! Each line is "first_sector sector_count" in 512-byte sectors, relative to the start of the
//! pmem block device. That is the same origin as the dax offset `dax_holder_notify_failure()`
//! receives (`pmem_pagemap_memory_failure()` computes `PFN_PHYS(pfn) - phys_addr - data_offset`,
//! and the driver populates badblocks from `phys_addr + data_offset`; read in
//! drivers/nvdimm/pmem.c, not exercised here: no pmem on this host). So a badblocks range and a
//! journal record can be compared directly.
//!
//! Use at replay: a notification lost before the agent ran leaves no journal record, but the
//! range may still be in badblocks (ARS/poison found it). `uncovered_by_journal` gives the bad
//! ranges no journal record of that device covers: candidates for a synthetic replay.

use std::{fmt, io, path::Path};

use serde::Serialize;

use notify_model::journal::{DaxDevice, Record};

pub const SECTOR: u64 = 512;

/// A byte range `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ByteRange {
    pub start: u64,
    pub len: u64,
}

impl ByteRange {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
    pub fn overlaps(&self, o: &ByteRange) -> bool {
        self.start < o.end() && o.start < self.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line_no: usize,
    pub line: String,
    pub why: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "badblocks line {}: {} ({:?})",
            self.line_no, self.why, self.line
        )
    }
}

impl std::error::Error for ParseError {}

/// Parse badblocks text into byte ranges (in file order, not merged). Blank lines are skipped;
/// anything else that is not two decimal numbers is an error naming the line: a format we do
/// not understand must not be read as "no bad blocks".
pub fn parse(text: &str) -> Result<Vec<ByteRange>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let err = |why| ParseError {
            line_no: i + 1,
            line: line.to_string(),
            why,
        };
        let mut it = t.split_whitespace();
        let (Some(s), Some(c), None) = (it.next(), it.next(), it.next()) else {
            return Err(err("expected \"sector count\""));
        };
        let s: u64 = s.parse().map_err(|_| err("sector is not a number"))?;
        let c: u64 = c.parse().map_err(|_| err("count is not a number"))?;
        if c == 0 {
            return Err(err("zero-length range"));
        }
        let start = s
            .checked_mul(SECTOR)
            .ok_or_else(|| err("sector overflows"))?;
        let len = c
            .checked_mul(SECTOR)
            .ok_or_else(|| err("count overflows"))?;
        out.push(ByteRange { start, len });
    }
    Ok(out)
}

/// Read `/sys/block/<dev>/badblocks` (e.g. dev = "pmem0").
pub fn read(dev: &str) -> io::Result<Vec<ByteRange>> {
    read_path(&Path::new("/sys/block").join(dev).join("badblocks"))
}

pub fn read_path(path: &Path) -> io::Result<Vec<ByteRange>> {
    let t = std::fs::read_to_string(path)?;
    parse(&t).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Sort, dedupe, and merge overlapping or adjacent ranges.
pub fn merge(mut v: Vec<ByteRange>) -> Vec<ByteRange> {
    v.retain(|r| r.len > 0);
    v.sort();
    let mut out: Vec<ByteRange> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(m) if r.start <= m.end() => {
                let end = m.end().max(r.end());
                m.len = end - m.start;
            }
            _ => out.push(r),
        }
    }
    out
}

/// The parts of `ranges` not covered by `covered`.
pub fn subtract(ranges: &[ByteRange], covered: &[ByteRange]) -> Vec<ByteRange> {
    let covered = merge(covered.to_vec());
    let mut out = Vec::new();
    for r in merge(ranges.to_vec()) {
        let mut cur = r.start;
        let end = r.end();
        for c in covered.iter().filter(|c| c.overlaps(&r)) {
            if c.start > cur {
                out.push(ByteRange {
                    start: cur,
                    len: c.start - cur,
                });
            }
            cur = cur.max(c.end());
            if cur >= end {
                break;
            }
        }
        if cur < end {
            out.push(ByteRange {
                start: cur,
                len: end - cur,
            });
        }
    }
    out
}

/// Journal records of `dax` as byte ranges (any state: a replayed record was handled).
pub fn journal_ranges<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    dax: &DaxDevice,
) -> Vec<ByteRange> {
    records
        .into_iter()
        .filter(|r| r.damage.dax.name == dax.name)
        .map(|r| ByteRange {
            start: r.damage.dax_offset,
            len: r.damage.len,
        })
        .collect()
}

/// Bad ranges of `dax` that no journal record covers.
pub fn uncovered_by_journal<'a>(
    bad: &[ByteRange],
    records: impl IntoIterator<Item = &'a Record>,
    dax: &DaxDevice,
) -> Vec<ByteRange> {
    subtract(bad, &journal_ranges(records, dax))
}

/// Journal records of `dax` whose range overlaps a bad range (the driver confirms the damage).
pub fn confirmed<'a>(
    bad: &[ByteRange],
    records: impl IntoIterator<Item = &'a Record>,
    dax: &DaxDevice,
) -> Vec<u64> {
    records
        .into_iter()
        .filter(|r| r.damage.dax.name == dax.name)
        .filter(|r| {
            let jr = ByteRange {
                start: r.damage.dax_offset,
                len: r.damage.len,
            };
            bad.iter().any(|b| b.overlaps(&jr))
        })
        .map(|r| r.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_model::journal::{Damage, Reason, Status};

    fn br(start: u64, len: u64) -> ByteRange {
        ByteRange { start, len }
    }

    #[test]
    fn parses_sectors_into_bytes() {
        let v = parse("8 8\n\n1024 1\n").unwrap();
        assert_eq!(v, vec![br(4096, 4096), br(524288, 512)]);
        assert!(parse("").unwrap().is_empty());
        let e = parse("8 8\n12 x\n").unwrap_err();
        assert_eq!(e.line_no, 2);
        assert!(parse("8\n").is_err());
        assert!(parse("8 8 8\n").is_err());
        assert!(parse("8 0\n").is_err());
    }

    #[test]
    fn merge_dedupes_and_joins_adjacent() {
        let v = merge(vec![
            br(8192, 4096),
            br(0, 4096),
            br(4096, 4096),
            br(0, 4096),
            br(20000, 10),
        ]);
        assert_eq!(v, vec![br(0, 12288), br(20000, 10)]);
        assert_eq!(merge(vec![br(0, 100), br(50, 10)]), vec![br(0, 100)]);
    }

    #[test]
    fn subtract_leaves_uncovered_parts() {
        let bad = vec![br(0, 4096 * 4), br(1 << 20, 512)];
        let cov = vec![br(4096, 4096), br(3 * 4096, 100_000)];
        assert_eq!(
            subtract(&bad, &cov),
            vec![br(0, 4096), br(8192, 4096), br(1 << 20, 512)]
        );
        assert!(subtract(&bad, &[br(0, 2 << 20)]).is_empty());
        assert_eq!(subtract(&bad, &[]), bad);
    }

    #[test]
    fn against_journal_records() {
        let dax = DaxDevice {
            name: "pmem0".into(),
            major: 259,
            minor: 0,
        };
        let rec = |id, off, name: &str| Record {
            id,
            damage: Damage {
                dax: DaxDevice {
                    name: name.into(),
                    ..dax.clone()
                },
                dax_offset: off,
                len: 4096,
                mf_flags: 0,
                kernel_seq: id,
                ktime_ns: 0,
                wall_ns: 0,
                namespace: None,
                reason: Reason::Premature,
            },
            state: Status::Pending,
            told: vec![],
            outcome: None,
            note: None,
            state_wall_ns: None,
        };
        let recs = [rec(1, 8192, "pmem0"), rec(2, 0, "pmem1")];
        let bad = parse("0 8\n16 8\n").unwrap(); // bytes 0..4096 and 8192..12288
        // pmem1's record at 0 does not cover pmem0's bad block at 0.
        assert_eq!(uncovered_by_journal(&bad, &recs, &dax), vec![br(0, 4096)]);
        assert_eq!(confirmed(&bad, &recs, &dax), vec![1]);
    }
}
