//! A process's file-backed mappings asked of the kernel with the PROCMAP_QUERY ioctl on its
//! /proc/PID/maps (Linux 6.11+): device, inode and file offset of each VMA without the kernel
//! formatting a line or resolving a path for it; the path only for a VMA that hits.

use std::{
    fs, io,
    os::fd::AsRawFd,
    sync::atomic::{AtomicU8, Ordering},
};

use super::maps::{MappingHit, MapsEntry, Target, match_mapping};

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

/// Whether this kernel has PROCMAP_QUERY: unknown, yes, no (learned at the first query).
static QUERY: AtomicU8 = AtomicU8::new(QUERY_UNKNOWN);
const QUERY_UNKNOWN: u8 = 0;
const QUERY_YES: u8 = 1;
const QUERY_NO: u8 = 2;

/// Whether a query has shown that this kernel has no PROCMAP_QUERY (then the text is read).
pub fn known_absent() -> bool {
    QUERY.load(Ordering::Relaxed) == QUERY_NO
}

/// The VMAs of an open maps file that map one of `targets`, by PROCMAP_QUERY; None when the
/// kernel does not have the ioctl.
pub fn query_hits(f: &fs::File, targets: &[Target]) -> Option<Vec<MappingHit>> {
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
