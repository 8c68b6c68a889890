//! The kernel's own VMA walk for the mapper scan: the BPF iterator `iter/task_vma` (Linux 5.12+,
//! a BPF tracing program of attach type BPF_TRACE_ITER: unlike fentry it needs no trampoline,
//! and it loads on the host kernel here, which has no fentry, as in the VM lab's kernels). The
//! kernel visits every task's VMAs under its mmap lock and runs `vma_iter` (notify-ebpf) on each;
//! the program writes only the VMAs of a damaged file whose file window overlaps the damaged
//! range. Reading the iterator's file is one syscall loop instead of an open and a read (or a
//! PROCMAP_QUERY per VMA) of every process's maps.
//!
//! What it gives are candidates: (tgid, VMA) pairs. The mapper scan turns each candidate into a
//! `Mapper` by reading that one process in /proc the usual way, so both paths build the same
//! model and enforcement's rules (pidfds, start times, re-checks) see no difference.

use std::{
    fs::File,
    io::{self, Read as _},
    sync::Mutex,
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::Iter,
};
use notify_common::{MAP_VMA_TARGETS, PROG_VMA_ITER, VMA_TARGETS_MAX, VmaHit, VmaTarget};

use crate::{
    kernel::{btf::Btf, facts::page_size},
    probe::{attach, offsets::vma_iter_offsets},
};

/// The loaded iterator program: made once per process, read once per scan.
pub struct VmaIter {
    ebpf: Ebpf,
    page_shift: u32,
}

/// A VMA the kernel found for target `target` (an index into the slice given to
/// [`VmaIter::candidates`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub tgid: i32,
    pub target: usize,
    pub vm_start: u64,
    pub vm_end: u64,
    /// File offset of `vm_start`, bytes.
    pub offset: u64,
}

/// A damaged file range as the iterator compares it: `dev` in the kernel's `s_dev` encoding
/// (major << 20 | minor), the numbers /proc/PID/maps prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRange {
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
    pub lo: u64,
    pub hi: u64,
}

impl VmaIter {
    /// Loads the object (its maps at their smallest: this load runs no probe) and the iterator
    /// program. Fails where the kernel has no BPF iterators (before 5.12) or no BTF.
    pub fn open() -> anyhow::Result<VmaIter> {
        let vmlinux = Btf::vmlinux().context("reading vmlinux BTF")?;
        let offsets = vma_iter_offsets(&vmlinux).map_err(|e| anyhow::anyhow!(e))?;
        let page = page_size();
        let loader = attach::prepare_loader();
        // The ring buffer is the probes'; one page keeps this second load cheap.
        let mut ebpf = attach::load_object_with(loader, &offsets, page as u32)?;
        let btf = aya::Btf::from_sys_fs().context("reading vmlinux BTF for the iterator")?;
        let prog: &mut Iter = ebpf
            .program_mut(PROG_VMA_ITER)
            .context("the BPF object has no vma_iter program")?
            .try_into()
            .context("vma_iter is not an iterator program")?;
        prog.load("task_vma", &btf)
            .context("loading the task_vma iterator (needs BPF iterators and BTF, Linux 5.12+)")?;
        Ok(VmaIter {
            ebpf,
            page_shift: page.trailing_zeros(),
        })
    }

    /// The VMAs of every process that map part of `ranges`, in one walk of the kernel's tasks
    /// per [`VMA_TARGETS_MAX`] ranges. Threads of one process may repeat its VMAs (the kernel
    /// skips only threads sharing their leader's file table): callers dedupe by tgid.
    pub fn candidates(&mut self, ranges: &[FileRange]) -> io::Result<Vec<Candidate>> {
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(4096);
        for (chunk_no, chunk) in ranges.chunks(VMA_TARGETS_MAX as usize).enumerate() {
            self.set_targets(chunk)?;
            buf.clear();
            self.open_read()?.read_to_end(&mut buf)?;
            let size = std::mem::size_of::<VmaHit>();
            if buf.len() % size != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the VMA iterator wrote {} bytes, not a whole number of {size}-byte hits",
                        buf.len()
                    ),
                ));
            }
            for rec in buf.chunks_exact(size) {
                let hit = parse_hit(rec);
                let target = chunk_no * VMA_TARGETS_MAX as usize + hit.target as usize;
                if hit.target as usize >= chunk.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the VMA iterator named target {} of {}",
                            hit.target,
                            chunk.len()
                        ),
                    ));
                }
                out.push(Candidate {
                    tgid: hit.tgid as i32,
                    target,
                    vm_start: hit.vm_start,
                    vm_end: hit.vm_end,
                    offset: hit.pgoff << self.page_shift,
                });
            }
        }
        Ok(out)
    }

    fn set_targets(&mut self, chunk: &[FileRange]) -> io::Result<()> {
        let map = self
            .ebpf
            .map_mut(MAP_VMA_TARGETS)
            .ok_or_else(|| io::Error::other("the BPF object has no VMA_TARGETS map"))?;
        let mut arr: Array<&mut MapData, VmaTarget> =
            Array::try_from(map).map_err(io::Error::other)?;
        for i in 0..VMA_TARGETS_MAX {
            let t = chunk
                .get(i as usize)
                .map_or_else(VmaTarget::default, |r| VmaTarget {
                    ino: r.inode,
                    lo: r.lo,
                    hi: r.hi,
                    dev: (r.major << 20) | (r.minor & 0xf_ffff),
                    page_shift: self.page_shift,
                });
            arr.set(i, t, 0).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// A fresh read of the iterator: a link, then an iterator file from it.
    fn open_read(&mut self) -> io::Result<File> {
        let prog: &mut Iter = self
            .ebpf
            .program_mut(PROG_VMA_ITER)
            .ok_or_else(|| io::Error::other("vma_iter went missing"))?
            .try_into()
            .map_err(io::Error::other)?;
        let id = prog.attach().map_err(io::Error::other)?;
        let link = prog.take_link(id).map_err(io::Error::other)?;
        link.into_file().map_err(io::Error::other)
    }
}

/// The process's iterator: loaded at the first scan that wants it, or the reason it cannot be.
static SHARED: Mutex<Option<Result<VmaIter, String>>> = Mutex::new(None);

/// Whether the process's iterator is loaded (a scan by it costs no load any more).
pub fn loaded() -> bool {
    matches!(
        *SHARED.lock().unwrap_or_else(|p| p.into_inner()),
        Some(Ok(_))
    )
}

/// [`VmaIter::candidates`] on the process's iterator, loading it the first time (and logging
/// which path the mapper scan takes). `Err(reason)`: no iterator on this kernel (the caller
/// scans /proc instead); a failed load is not retried.
pub fn shared_candidates(ranges: &[FileRange]) -> Result<io::Result<Vec<Candidate>>, String> {
    let mut g = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    let state = g.get_or_insert_with(|| {
        let t = std::time::Instant::now();
        match VmaIter::open() {
            Ok(it) => {
                log::info!(
                    "mapper scan: the kernel's task_vma iterator (loaded in {:.0} ms)",
                    t.elapsed().as_secs_f64() * 1e3
                );
                Ok(it)
            }
            Err(e) => {
                let why = format!("{e:#}");
                log::info!("mapper scan: /proc (no task_vma iterator: {why})");
                Err(why)
            }
        }
    });
    match state {
        Ok(it) => Ok(it.candidates(ranges)),
        Err(why) => Err(why.clone()),
    }
}

fn parse_hit(rec: &[u8]) -> VmaHit {
    let u64_at = |i: usize| u64::from_ne_bytes(rec[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |i: usize| u32::from_ne_bytes(rec[i..i + 4].try_into().unwrap_or([0; 4]));
    VmaHit {
        vm_start: u64_at(0),
        vm_end: u64_at(8),
        pgoff: u64_at(16),
        tgid: u32_at(24),
        target: u32_at(28),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_records_parse_in_the_kernel_layout() {
        let h = VmaHit {
            vm_start: 0x7f00_0000_0000,
            vm_end: 0x7f00_0040_0000,
            pgoff: 3,
            tgid: 4242,
            target: 1,
        };
        // SAFETY: VmaHit is repr(C) plain data of 32 bytes without padding.
        let bytes: [u8; 32] = unsafe { std::mem::transmute(h) };
        assert_eq!(parse_hit(&bytes), h);
    }
}
