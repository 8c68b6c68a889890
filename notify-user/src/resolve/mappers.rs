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
//! line. A kernel thread's maps is empty (no mm) either way. (The ioctl is `resolve::procmap`,
//! the lines and their matching `resolve::maps`.)
//!
//! Where the kernel has BPF iterators (5.12+), the walk is the kernel's own: the `task_vma` BPF
//! iterator (`probe::vma_iter`) visits every VMA of every task and hands back only those of a
//! damaged file over the damaged range. Those are candidates; each candidate process is then
//! read here in /proc like any other, so both paths give the same `Mapper`s (and a process that
//! exited in between is no mapper). The iterator is used only for the real /proc of the initial
//! pid namespace: the tgids it reports are that namespace's, and by default only once /proc
//! scans have cost what loading it does ([`Method::Auto`]).

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::Serialize;

pub use super::maps::{
    MappingHit, MapsEntry, Target, match_mapping, match_maps, parse_maps, parse_maps_line,
};
use super::{
    maps::{contains, needle},
    procmap,
};
use crate::probe::vma_iter::{self, FileRange};

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
            // Once loaded, the iterator is used without listing /proc first.
            let pids = if vma_iter::loaded() {
                None
            } else {
                Some(list_pids(proc_root)?)
            };
            let visited = PROC_VISITS.load(Ordering::Relaxed);
            if pids
                .as_ref()
                .is_none_or(|p| iterator_pays(visited, p.len()))
            {
                match scan_kernel(proc_root, targets) {
                    Ok(Ok(r)) => return Ok(r),
                    // Loaded, but this read failed: never miss a mapper for it, read /proc.
                    Ok(Err(e)) => log::warn!("mapper scan: the VMA iterator failed ({e}): /proc"),
                    Err(_) => {}
                }
            } else if let Some(p) = &pids {
                log::debug!(
                    "mapper scan: /proc ({} processes; the task_vma iterator is loaded once the \
                     /proc scans have visited {ITER_PAYS_AFTER}, {visited} so far)",
                    p.len()
                );
            }
            let pids = match pids {
                Some(p) => p,
                None => list_pids(proc_root)?,
            };
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
        && !procmap::known_absent()
        && let Some(hits) = procmap::query_hits(&f, targets)
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
