//! One process's memory map as /proc/PID/maps gives it, and which of its mappings cover a
//! damaged file range: pure parsing and matching, shared by the text scan and the
//! PROCMAP_QUERY one.

use serde::Serialize;

/// One line of /proc/PID/maps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapsEntry {
    pub start: u64,
    pub end: u64,
    /// "rw-s", "r-xp"...
    pub perms: String,
    /// File offset of `start`, bytes.
    pub offset: u64,
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
    /// Path, pseudo-path ("[heap]") or None for anonymous mappings. May end in " (deleted)".
    pub path: Option<String>,
}

impl MapsEntry {
    pub fn shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }
}

/// Parse one maps line: `start-end perms offset MAJ:MIN inode [path]`, hex except the inode.
/// The path is everything after the inode's trailing padding, so paths with spaces survive.
pub fn parse_maps_line(line: &str) -> Option<MapsEntry> {
    let line = line.trim_end_matches('\n');
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let r = rest.trim_start_matches(' ');
        let end = r.find(' ').unwrap_or(r.len());
        let (f, tail) = r.split_at(end);
        rest = tail;
        if f.is_empty() { None } else { Some(f) }
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let dev = field()?;
    let inode = field()?;
    let (s, e) = range.split_once('-')?;
    let (ma, mi) = dev.split_once(':')?;
    let path = rest.trim_start_matches(' ');
    Some(MapsEntry {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        major: u32::from_str_radix(ma, 16).ok()?,
        minor: u32::from_str_radix(mi, 16).ok()?,
        inode: inode.parse().ok()?,
        path: if path.is_empty() {
            None
        } else {
            Some(path.to_string())
        },
    })
}

/// Parse a whole maps file, skipping lines that do not parse.
pub fn parse_maps(text: &str) -> Vec<MapsEntry> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// A damaged byte range of one file, named as maps names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
    /// File byte range `[offset, offset + length)`.
    pub offset: u64,
    pub length: u64,
}

/// A VMA that covers (part of) a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MappingHit {
    pub target: Target,
    pub vma_start: u64,
    pub vma_end: u64,
    pub perms: String,
    pub path: Option<String>,
    /// Damaged part of the file covered by this VMA, as file offsets `[lo, hi)`.
    pub file_lo: u64,
    pub file_hi: u64,
    /// The same part as virtual addresses in the process: `[addr_lo, addr_hi)`.
    pub addr_lo: u64,
    pub addr_hi: u64,
}

/// Does this VMA map part of the target range? Pure overlap arithmetic.
pub fn match_mapping(e: &MapsEntry, t: &Target) -> Option<MappingHit> {
    if e.inode != t.inode || e.major != t.major || e.minor != t.minor || e.end <= e.start {
        return None;
    }
    let win_lo = e.offset;
    let win_hi = e.offset.checked_add(e.end - e.start)?;
    let t_hi = t.offset.saturating_add(t.length);
    let lo = win_lo.max(t.offset);
    let hi = win_hi.min(t_hi);
    if lo >= hi {
        return None;
    }
    Some(MappingHit {
        target: *t,
        vma_start: e.start,
        vma_end: e.end,
        perms: e.perms.clone(),
        path: e.path.clone(),
        file_lo: lo,
        file_hi: hi,
        addr_lo: e.start + (lo - win_lo),
        addr_hi: e.start + (hi - win_lo),
    })
}

/// All hits of `targets` in a parsed maps file.
pub fn match_maps(entries: &[MapsEntry], targets: &[Target]) -> Vec<MappingHit> {
    entries
        .iter()
        .flat_map(|e| targets.iter().filter_map(move |t| match_mapping(e, t)))
        .collect()
}

/// The raw needle " MAJ:MIN INODE " as it appears in maps (`%02x:%02x %lu `).
pub(crate) fn needle(t: &Target) -> Vec<u8> {
    format!(" {:02x}:{:02x} {} ", t.major, t.minor, t.inode).into_bytes()
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
