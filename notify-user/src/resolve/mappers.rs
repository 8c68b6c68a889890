//! Which processes map a damaged file range: `/proc/PID/maps`.
//!
//! The kernel's own answer (`collect_procs_fsdax()`) walks the file's `i_mmap` tree: every VMA
//! of the file whose page range covers the poisoned page, shared or private. Userspace has no
//! such index, so we read each process's maps and keep the VMAs whose (device, inode) is the
//! damaged file and whose file window `[offset, offset + (end - start))` overlaps the damaged
//! byte range. A process that only has the file open, or maps another part of it, is not a
//! mapper: it cannot touch the poisoned page through a mapping (read()/write() get EIO instead).
//!
//! Cost: one readdir of /proc and one open of each maps file. On Linux 6.11+ the VMAs are asked
//! for with the `PROCMAP_QUERY` ioctl on that file, file-backed ones only, which gives device,
//! inode and file offset without the kernel formatting a line or resolving a path for every
//! VMA (the text is most of the cost: measured 0.45-0.55x of reading it on this host). The path
//! is fetched only for a VMA that hits. Older kernels answer the ioctl with ENOTTY: then the
//! text is read, and before parsing it we search the raw bytes for the " MAJ:MIN INODE " needle
//! of each target; the common case (the process does not map any damaged file) never splits a
//! line. A kernel thread's maps is empty (no mm) either way.
//!
//! Where the kernel has BPF iterators (5.12+), the walk is the kernel's own: the `task_vma` BPF
//! iterator (`probe::vma_iter`) visits every VMA of every task and hands back only those of a
//! damaged file over the damaged range. Those are candidates; each candidate process is then
//! read here in /proc like any other, so both paths give the same `Mapper`s (and a process that
//! exited in between is no mapper). The iterator is used only for the real /proc of the initial
//! pid namespace: the tgids it reports are that namespace's.

use std::{
    fs,
    io::{self, Read},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
};

use serde::Serialize;

use crate::probe::vma_iter::{self, FileRange};

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
fn needle(t: &Target) -> Vec<u8> {
    format!(" {:02x}:{:02x} {} ", t.major, t.minor, t.inode).into_bytes()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The fields of /proc/PID/stat notify needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    /// R, S, D, Z, X, T...
    pub state: char,
    pub ppid: i32,
    /// `task->flags` (PF_KTHREAD = 0x0020_0000).
    pub flags: u64,
    /// Start time in clock ticks after boot: with the pid, the identity of a process (a reused
    /// pid has a later start time).
    pub start_time: u64,
}

pub const PF_KTHREAD: u64 = 0x0020_0000;

impl ProcStat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parse /proc/PID/stat. comm is in parentheses and may itself contain ") ", so split at the
/// last ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    Some(ProcStat {
        pid,
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        flags: rest.get(6)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

pub fn read_stat(proc_root: &Path, pid: i32) -> io::Result<ProcStat> {
    let p = proc_root.join(pid.to_string()).join("stat");
    let s = fs::read_to_string(&p)?;
    parse_stat(&s).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse {}", p.display()),
        )
    })
}

/// A process that maps damaged file ranges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mapper {
    pub pid: i32,
    pub comm: String,
    /// From /proc/PID/stat, read right after the maps: enforcement checks it again after
    /// opening a pidfd so a reused pid is never signalled.
    pub start_time: u64,
    pub hits: Vec<MappingHit>,
}

/// Scan statistics, for logs and for the "fast" claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    pub processes: usize,
    /// Processes whose VMAs were read with PROCMAP_QUERY.
    pub queried: usize,
    pub empty_maps: usize,
    pub parsed: usize,
    pub unreadable: usize,
    /// Whether the kernel's VMA iterator found the candidates (then `processes` counts only
    /// the candidate processes read in /proc), and how many VMAs it reported.
    pub kernel_iterator: bool,
    pub kernel_hits: usize,
}

impl ScanStats {
    fn add(&mut self, o: &ScanStats) {
        self.processes += o.processes;
        self.queried += o.queried;
        self.empty_maps += o.empty_maps;
        self.parsed += o.parsed;
        self.unreadable += o.unreadable;
    }
}

/// Find processes mapping any of `targets` ([`Method::Auto`]).
pub fn scan(targets: &[Target]) -> io::Result<(Vec<Mapper>, ScanStats)> {
    scan_proc(Path::new("/proc"), targets)
}

/// As [`scan`], with another procfs root (tests, containers).
pub fn scan_proc(proc_root: &Path, targets: &[Target]) -> io::Result<(Vec<Mapper>, ScanStats)> {
    scan_with(proc_root, targets, Method::Auto)
}

/// As [`scan_proc`], choosing how VMAs are read (the text path is what kernels before 6.11
/// get; tests and the benchmark run both).
pub fn scan_with(
    proc_root: &Path,
    targets: &[Target],
    method: Method,
) -> io::Result<(Vec<Mapper>, ScanStats)> {
    match method {
        Method::Kernel => {
            return match scan_kernel(proc_root, targets) {
                Ok(r) => r,
                Err(why) => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("no kernel VMA iterator here: {why}"),
                )),
            };
        }
        Method::Auto if proc_root == Path::new("/proc") && initial_pid_ns() => {
            let pids = list_pids(proc_root)?;
            let visited = PROC_VISITS.load(Ordering::Relaxed);
            if vma_iter::loaded() || iterator_pays(visited, pids.len()) {
                match scan_kernel(proc_root, targets) {
                    Ok(Ok(r)) => return Ok(r),
                    // Loaded, but this read failed: never miss a mapper for it, read /proc.
                    Ok(Err(e)) => log::warn!("mapper scan: the VMA iterator failed ({e}): /proc"),
                    Err(_) => {}
                }
            } else {
                log::debug!(
                    "mapper scan: /proc ({} processes; the task_vma iterator is loaded once the \
                     /proc scans have visited {ITER_PAYS_AFTER}, {visited} so far)",
                    pids.len()
                );
            }
            PROC_VISITS.fetch_add(pids.len() as u64, Ordering::Relaxed);
            return scan_listed(proc_root, &pids, targets, method);
        }
        _ => {}
    }
    scan_procfs(proc_root, targets, method)
}

/// The Auto scan loads the kernel's VMA iterator once /proc scans have visited this many
/// processes in all: rent (scan /proc) until the rent paid is the price of buying (loading the
/// iterator), then buy, never paying more than about twice the better of the two in hindsight.
/// Measured side by side in the VM lab (`bench mappers-vm`, 6.12 under TCG): loading took 1,620
/// ms, a /proc scan of 10,065 processes 1,550 ms (154 us a process) and the iterator's scan of
/// them 410 ms. One load costs about what 10,000 process visits in /proc do, so a host with a
/// few hundred processes answers its first notifications from /proc (the agent's start-up
/// replay of one record took 632 ms there, the load included), and a host with many
/// processes, or one scanning again and again (a storm), loads it once and keeps it.
const ITER_PAYS_AFTER: u64 = 10_000;

/// Processes visited by the Auto scan's /proc scans since the process started.
static PROC_VISITS: AtomicU64 = AtomicU64::new(0);

/// Whether a scan of `processes` more, after `visited` in earlier /proc scans, would bring the
/// /proc scans' total to the iterator's price.
fn iterator_pays(visited: u64, processes: usize) -> bool {
    visited.saturating_add(processes as u64) >= ITER_PAYS_AFTER
}

/// The scan by the kernel's VMA iterator: `Err(reason)` when there is none.
fn scan_kernel(
    proc_root: &Path,
    targets: &[Target],
) -> Result<io::Result<(Vec<Mapper>, ScanStats)>, String> {
    let ranges: Vec<FileRange> = targets
        .iter()
        .map(|t| FileRange {
            major: t.major,
            minor: t.minor,
            inode: t.inode,
            lo: t.offset,
            hi: t.offset.saturating_add(t.length),
        })
        .collect();
    let cands = match vma_iter::shared_candidates(&ranges)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let mut pids: Vec<i32> = cands.iter().map(|c| c.tgid).filter(|&p| p > 0).collect();
    pids.sort_unstable();
    pids.dedup();
    let (out, mut stats) = scan_pids(proc_root, &pids, targets, Method::Proc);
    stats.kernel_iterator = true;
    stats.kernel_hits = cands.len();
    Ok(Ok((out, stats)))
}

/// Whether this process is in the initial pid namespace (`PROC_PID_INIT_INO`, 0xEFFFFFFC), where
/// the iterator's tgids are the pids /proc shows.
fn initial_pid_ns() -> bool {
    fs::read_link("/proc/self/ns/pid").is_ok_and(|l| l.as_os_str() == "pid:[4026531836]")
}

/// The scan of every process in `proc_root`.
fn scan_procfs(
    proc_root: &Path,
    targets: &[Target],
    method: Method,
) -> io::Result<(Vec<Mapper>, ScanStats)> {
    scan_listed(proc_root, &list_pids(proc_root)?, targets, method)
}

/// The processes of `proc_root`.
fn list_pids(proc_root: &Path) -> io::Result<Vec<i32>> {
    Ok(fs::read_dir(proc_root)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect())
}

/// The scan of `pids`, processes of `proc_root`.
fn scan_listed(
    proc_root: &Path,
    pids: &[i32],
    targets: &[Target],
    method: Method,
) -> io::Result<(Vec<Mapper>, ScanStats)> {
    // The scan waits on the kernel (each process's VMAs), one process at a time: on a host with
    // many processes, split it over the CPUs. A replay is rare and wants its answer now.
    let threads = if pids.len() >= PARALLEL_FROM {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
    } else {
        1
    };
    let (mut out, stats) = if threads == 1 {
        scan_pids(proc_root, pids, targets, method)
    } else {
        let chunk = pids.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = pids
                .chunks(chunk)
                .map(|c| s.spawn(move || scan_pids(proc_root, c, targets, method)))
                .collect();
            let mut out = Vec::new();
            let mut stats = ScanStats::default();
            for p in parts {
                // A scan thread only panics on a bug; fail the scan rather than miss mappers.
                let (o, st) = p
                    .join()
                    .map_err(|_| io::Error::other("a mapper scan thread panicked"))?;
                out.extend(o);
                stats.add(&st);
            }
            Ok::<_, io::Error>((out, stats))
        })?
    };
    out.sort_by_key(|m| m.pid);
    Ok((out, stats))
}

/// From how many processes the scan is split over threads, and over at most how many.
const PARALLEL_FROM: usize = 512;
const MAX_THREADS: usize = 8;

fn scan_pids(
    proc_root: &Path,
    pids: &[i32],
    targets: &[Target],
    method: Method,
) -> (Vec<Mapper>, ScanStats) {
    let needles: Vec<Vec<u8>> = targets.iter().map(needle).collect();
    let mut stats = ScanStats::default();
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(64 << 10);
    for &pid in pids {
        stats.processes += 1;
        let Some(hits) = pid_hits(
            proc_root, pid, targets, &needles, &mut buf, &mut stats, method,
        ) else {
            continue;
        };
        if hits.is_empty() {
            continue;
        }
        // The process can exit between the maps read and this one: then it is no mapper.
        let Ok(st) = read_stat(proc_root, pid) else {
            continue;
        };
        out.push(Mapper {
            pid,
            comm: st.comm,
            start_time: st.start_time,
            hits,
        });
    }
    (out, stats)
}

/// `struct procmap_query` of include/uapi/linux/fs.h (Linux 6.11).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = (3 << 30)
    | ((std::mem::size_of::<ProcmapQuery>() as libc::c_ulong) << 16)
    | ((b'f' as libc::c_ulong) << 8)
    | 17;
const PROCMAP_QUERY_VMA_READABLE: u64 = 0x01;
const PROCMAP_QUERY_VMA_WRITABLE: u64 = 0x02;
const PROCMAP_QUERY_VMA_EXECUTABLE: u64 = 0x04;
const PROCMAP_QUERY_VMA_SHARED: u64 = 0x08;
const PROCMAP_QUERY_COVERING_OR_NEXT_VMA: u64 = 0x10;
const PROCMAP_QUERY_FILE_BACKED_VMA: u64 = 0x20;

/// Whether this kernel has PROCMAP_QUERY: unknown, yes, no.
static QUERY: AtomicU8 = AtomicU8::new(QUERY_UNKNOWN);
const QUERY_UNKNOWN: u8 = 0;
const QUERY_YES: u8 = 1;
const QUERY_NO: u8 = 2;

/// How the mappers are found: /proc or the kernel's VMA iterator, whichever costs less so far
/// (the default), the iterator only, /proc only (the PROCMAP_QUERY ioctl where the kernel has
/// it, else the text), or the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// /proc until this process's /proc scans have visited [`ITER_PAYS_AFTER`] processes,
    /// then the kernel's task_vma iterator where it loads (else /proc still).
    #[default]
    Auto,
    /// The kernel's task_vma iterator only (an error where there is none).
    Kernel,
    /// /proc/PID/maps of every process: PROCMAP_QUERY (Linux 6.11+), else the text.
    Proc,
    /// /proc/PID/maps text of every process (what kernels before 6.11 get).
    Text,
}

/// The VMAs of an open maps file that map one of `targets`, by PROCMAP_QUERY; None when the
/// kernel does not have the ioctl.
fn query_hits(f: &fs::File, targets: &[Target]) -> Option<Vec<MappingHit>> {
    let mut hits = Vec::new();
    let mut addr = 0u64;
    loop {
        let mut q = ProcmapQuery {
            size: std::mem::size_of::<ProcmapQuery>() as u64,
            query_flags: PROCMAP_QUERY_COVERING_OR_NEXT_VMA | PROCMAP_QUERY_FILE_BACKED_VMA,
            query_addr: addr,
            ..Default::default()
        };
        // SAFETY: PROCMAP_QUERY reads and writes one struct procmap_query of the size given;
        // no name or build-id buffer is passed (sizes 0).
        if unsafe { libc::ioctl(f.as_raw_fd(), PROCMAP_QUERY, &mut q) } != 0 {
            let e = io::Error::last_os_error().raw_os_error();
            if matches!(e, Some(libc::ENOTTY) | Some(libc::EINVAL)) && addr == 0 {
                // No such ioctl (before 6.11; EINVAL: an older struct layout), or not a procfs
                // maps file at all: read the text. Remember a kernel without it.
                if QUERY.load(Ordering::Relaxed) != QUERY_YES {
                    QUERY.store(QUERY_NO, Ordering::Relaxed);
                }
                return None;
            }
            // ENOENT: no VMA at or after addr. ESRCH: no mm (kernel thread, exiting).
            break;
        }
        QUERY.store(QUERY_YES, Ordering::Relaxed);
        if q.vma_end <= addr {
            break;
        }
        addr = q.vma_end;
        if !targets
            .iter()
            .any(|t| t.inode == q.inode && t.major == q.dev_major && t.minor == q.dev_minor)
        {
            continue;
        }
        let flag = |bit: u64, c: char| if q.vma_flags & bit != 0 { c } else { '-' };
        let e = MapsEntry {
            start: q.vma_start,
            end: q.vma_end,
            perms: [
                flag(PROCMAP_QUERY_VMA_READABLE, 'r'),
                flag(PROCMAP_QUERY_VMA_WRITABLE, 'w'),
                flag(PROCMAP_QUERY_VMA_EXECUTABLE, 'x'),
                if q.vma_flags & PROCMAP_QUERY_VMA_SHARED != 0 {
                    's'
                } else {
                    'p'
                },
            ]
            .iter()
            .collect(),
            offset: q.vma_offset,
            major: q.dev_major,
            minor: q.dev_minor,
            inode: q.inode,
            path: vma_name(f, q.vma_start),
        };
        hits.extend(targets.iter().filter_map(|t| match_mapping(&e, t)));
    }
    Some(hits)
}

/// The path of the VMA at `addr` (only asked for hits: resolving it is the costly part).
fn vma_name(f: &fs::File, addr: u64) -> Option<String> {
    let mut name = vec![0u8; 4096];
    let mut q = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_addr: addr,
        vma_name_size: name.len() as u32,
        vma_name_addr: name.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: as in query_hits, with a name buffer of vma_name_size bytes that outlives the call.
    if unsafe { libc::ioctl(f.as_raw_fd(), PROCMAP_QUERY, &mut q) } != 0 || q.vma_name_size == 0 {
        return None;
    }
    // vma_name_size counts the terminating NUL.
    name.truncate(q.vma_name_size as usize - 1);
    String::from_utf8(name).ok()
}

fn pid_hits(
    proc_root: &Path,
    pid: i32,
    targets: &[Target],
    needles: &[Vec<u8>],
    buf: &mut Vec<u8>,
    stats: &mut ScanStats,
    method: Method,
) -> Option<Vec<MappingHit>> {
    buf.clear();
    let path: PathBuf = proc_root.join(pid.to_string()).join("maps");
    let Ok(mut f) = fs::File::open(&path) else {
        // Gone, or not ours to read: a process we cannot read we could not signal either.
        stats.unreadable += 1;
        return None;
    };
    if method != Method::Text
        && QUERY.load(Ordering::Relaxed) != QUERY_NO
        && let Some(hits) = query_hits(&f, targets)
    {
        stats.queried += 1;
        return Some(hits);
    }
    let read = f.read_to_end(buf);
    if read.is_err() {
        // Gone, or not ours to read: a process we cannot read we could not signal either.
        stats.unreadable += 1;
        return None;
    }
    if buf.is_empty() {
        // Kernel threads (and zombies) have no mm.
        stats.empty_maps += 1;
        return None;
    }
    if !needles.iter().any(|n| contains(buf, n)) {
        return Some(Vec::new());
    }
    stats.parsed += 1;
    let text = String::from_utf8_lossy(buf);
    Some(match_maps(&parse_maps(&text), targets))
}

/// Hits of one process now (re-verification before acting).
pub fn hits_of(proc_root: &Path, pid: i32, targets: &[Target]) -> io::Result<Vec<MappingHit>> {
    let text = fs::read_to_string(proc_root.join(pid.to_string()).join("maps"))?;
    Ok(match_maps(&parse_maps(&text), targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iterator_is_loaded_once_proc_scans_have_cost_its_load() {
        // A host of a few hundred processes: /proc for its first notifications.
        assert!(!iterator_pays(0, 300));
        assert!(!iterator_pays(9_000, 999));
        // The scan that brings the total to the price, and a host that big at once.
        assert!(iterator_pays(9_000, 1_000));
        assert!(iterator_pays(0, 10_065));
        assert!(iterator_pays(u64::MAX, 1), "no overflow");
    }

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1835108                    /usr/bin/cat
7f1200000000-7f1200400000 rw-s 00200000 07:00 131                        /mnt/x/data file (deleted)
7f1200400000-7f1200401000 r--p 00000000 07:00 131                        /mnt/x/data file (deleted)
7f1300000000-7f1300021000 rw-p 00000000 00:00 0 
7ffd5a1c2000-7ffd5a1e3000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
7f1400000000-7f1400001000 rw-s 00000000 103:1a 131                       /other
";

    #[test]
    fn parses_fields_paths_with_spaces_and_anonymous() {
        let v = parse_maps(MAPS);
        assert_eq!(v.len(), 7);
        assert_eq!(v[1].start, 0x7f12_0000_0000);
        assert_eq!(v[1].end, 0x7f12_0040_0000);
        assert_eq!(v[1].offset, 0x20_0000);
        assert_eq!((v[1].major, v[1].minor, v[1].inode), (7, 0, 131));
        assert_eq!(v[1].path.as_deref(), Some("/mnt/x/data file (deleted)"));
        assert!(v[1].shared());
        assert!(!v[2].shared());
        assert_eq!(v[3].path, None);
        assert_eq!(v[4].path.as_deref(), Some("[stack]"));
        assert_eq!((v[6].major, v[6].minor), (0x103, 0x1a));
        assert!(parse_maps_line("garbage").is_none());
        assert!(parse_maps_line("").is_none());
    }

    #[test]
    fn matches_only_the_right_file_and_window() {
        let v = parse_maps(MAPS);
        // File 07:00/131, damaged bytes 3 MiB .. 3 MiB + 4 KiB. VMA 1 maps file 2..6 MiB.
        let t = Target {
            major: 7,
            minor: 0,
            inode: 131,
            offset: 3 << 20,
            length: 4096,
        };
        let hits = match_maps(&v, &[t]);
        assert_eq!(hits.len(), 1, "{hits:?}");
        let h = &hits[0];
        assert_eq!(h.vma_start, 0x7f12_0000_0000);
        assert_eq!((h.file_lo, h.file_hi), (3 << 20, (3 << 20) + 4096));
        assert_eq!(h.addr_lo, 0x7f12_0000_0000 + (1 << 20));
        assert_eq!(h.addr_hi - h.addr_lo, 4096);

        // Damaged byte 0 of the file: only VMA 2 (file 0..4 KiB) maps it.
        let t0 = Target { offset: 0, ..t };
        let hits = match_maps(&v, &[t0]);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].vma_start, 0x7f12_0040_0000);

        // Same inode number, other device: no match (inode numbers are per filesystem).
        let other_dev = Target { minor: 1, ..t };
        assert!(match_maps(&v, &[other_dev]).is_empty());
        // 0x103:0x1a inode 131 is matched when asked for.
        let big = Target {
            major: 0x103,
            minor: 0x1a,
            inode: 131,
            offset: 0,
            length: 1,
        };
        assert_eq!(match_maps(&v, &[big]).len(), 1);
    }

    #[test]
    fn window_edges_are_exclusive() {
        let e = parse_maps_line("1000-3000 rw-s 00002000 07:00 5 /f").unwrap();
        // Window: file 0x2000..0x4000.
        let t = |offset, length| Target {
            major: 7,
            minor: 0,
            inode: 5,
            offset,
            length,
        };
        assert!(
            match_mapping(&e, &t(0x1000, 0x1000)).is_none(),
            "ends at window start"
        );
        assert!(
            match_mapping(&e, &t(0x4000, 0x1000)).is_none(),
            "starts at window end"
        );
        let h = match_mapping(&e, &t(0x1000, 0x1001)).unwrap();
        assert_eq!((h.file_lo, h.file_hi), (0x2000, 0x2001));
        assert_eq!(h.addr_lo, 0x1000);
        let h = match_mapping(&e, &t(0x3fff, 0x10)).unwrap();
        assert_eq!((h.file_lo, h.file_hi), (0x3fff, 0x4000));
        assert_eq!(h.addr_hi, 0x3000);
    }

    #[test]
    fn needle_prefilter_matches_the_kernel_format() {
        let t = Target {
            major: 7,
            minor: 0,
            inode: 131,
            offset: 0,
            length: 1,
        };
        assert!(contains(MAPS.as_bytes(), &needle(&t)));
        let t2 = Target { inode: 13, ..t };
        assert!(
            !contains(MAPS.as_bytes(), &needle(&t2)),
            "13 must not match 131"
        );
    }

    #[test]
    fn stat_parsing_handles_odd_comms() {
        let s = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.pid, 4242);
        assert_eq!(st.comm, "a) b (c)");
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.flags, 4194560);
        assert_eq!(st.start_time, 987654);
        assert!(!st.is_kernel_thread());
        let k = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 \
                 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
        assert!(parse_stat(k).unwrap().is_kernel_thread());
    }

    #[test]
    fn real_stat_of_self_parses() {
        let st = read_stat(Path::new("/proc"), std::process::id() as i32).unwrap();
        assert_eq!(st.pid, std::process::id() as i32);
        assert!(st.start_time > 0);
        assert!(!st.is_kernel_thread());
    }

    #[test]
    fn many_processes_are_scanned_in_parallel_and_all_found() {
        // A procfs-shaped tree of 600 processes (past PARALLEL_FROM): maps and stat as text.
        let root = std::env::temp_dir().join(format!("notify-fakeproc-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mappers = [7, 301, 599];
        for pid in 1..=600 {
            let d = root.join(pid.to_string());
            fs::create_dir_all(&d).unwrap();
            let mut maps = String::from(
                "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1835108    /usr/bin/cat\n",
            );
            if mappers.contains(&pid) {
                maps.push_str("7f1200000000-7f1200400000 rw-s 00000000 07:00 131   /mnt/x/data\n");
            }
            fs::write(d.join("maps"), maps).unwrap();
            fs::write(
                d.join("stat"),
                format!("{pid} (p{pid}) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {pid} 0 0"),
            )
            .unwrap();
        }
        fs::write(root.join("uptime"), "1.0 1.0").unwrap();
        let t = Target {
            major: 7,
            minor: 0,
            inode: 131,
            offset: 0x1000,
            length: 0x1000,
        };
        for m in [Method::Text, Method::Auto] {
            let (found, stats) = scan_with(&root, &[t], m).unwrap();
            assert_eq!(stats.processes, 600, "{m:?}");
            assert_eq!(
                stats.queried, 0,
                "{m:?}: regular files have no PROCMAP_QUERY"
            );
            assert_eq!(
                found
                    .iter()
                    .map(|x| (x.pid, x.start_time))
                    .collect::<Vec<_>>(),
                mappers.map(|p| (p, p as u64)),
                "{m:?}"
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
