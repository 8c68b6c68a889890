//! The VMA iterator (`iter/task_vma`): the kernel walks every task's VMAs under its mmap lock and
//! runs this program once per VMA; it writes only the VMAs of a damaged file whose file window
//! overlaps the damaged range (`VMA_TARGETS`, set by userspace before each read). Userspace reads
//! the hits from the iterator's file, dedupes them by tgid (the kernel skips threads that share
//! their leader's files, not all threads) and checks each candidate in /proc before it is a
//! mapper: this program only narrows the search.
//!
//! aya-ebpf-macros 0.2 has no `#[iter]`: the section is written by hand (aya-obj 0.3 reads
//! `iter/<target>` as an iterator program). Every field is read at an offset the loader took from
//! the running kernel's BTF, with `bpf_probe_read_kernel`, like the probes: the context's `task`
//! and `vma` are read as plain values for the same reason (arithmetic on them as BTF pointers
//! would need constant offsets).

use aya_ebpf::{
    bindings::seq_file,
    cty::c_void,
    helpers::{bpf_probe_read_kernel, bpf_seq_write},
    macros::map,
    maps::Array,
};
use notify_common::{VMA_TARGETS_MAX, VmaHit, VmaTarget};

use crate::{offsets, read_at};

#[map(name = "VMA_TARGETS")]
static VMA_TARGETS: Array<VmaTarget> = Array::with_max_entries(VMA_TARGETS_MAX, 0);

/// `struct bpf_iter_meta` (include/linux/bpf.h): only `seq` is read.
#[repr(C)]
pub struct IterMeta {
    seq: *mut seq_file,
    session_id: u64,
    seq_num: u64,
}

/// `struct bpf_iter__task_vma` (kernel/bpf/task_iter.c): three pointers, each 8-byte aligned.
/// `task` and `vma` are NULL in the last call (the end of the walk).
#[repr(C)]
pub struct TaskVmaCtx {
    meta: *mut IterMeta,
    task: u64,
    vma: u64,
}

#[unsafe(link_section = "iter/task_vma")]
#[unsafe(no_mangle)]
pub extern "C" fn vma_iter(ctx: *mut TaskVmaCtx) -> i32 {
    // SAFETY: `ctx` is the kernel's context for this program, valid for the call.
    unsafe { on_vma(ctx) };
    0
}

#[inline(always)]
unsafe fn on_vma(ctx: *mut TaskVmaCtx) {
    // SAFETY (all reads): kernel memory through bpf_probe_read_kernel, which fails cleanly.
    let vma: u64 = unsafe { bpf_probe_read_kernel(&raw const (*ctx).vma) }.unwrap_or(0);
    let task: u64 = unsafe { bpf_probe_read_kernel(&raw const (*ctx).task) }.unwrap_or(0);
    if vma == 0 || task == 0 {
        return;
    }
    let o = offsets();
    // Anonymous VMAs (no file) are most of them: one read and out.
    let Some(file) = read_at::<u64>(vma, o.vma_vm_file) else {
        return;
    };
    let Some(inode) = read_at::<u64>(file, o.file_f_inode) else {
        return;
    };
    let Some(ino) = read_at::<u64>(inode, o.inode_i_ino) else {
        return;
    };
    let Some(sb) = read_at::<u64>(inode, o.inode_i_sb) else {
        return;
    };
    let Some(dev) = read_at::<u32>(sb, o.sb_s_dev) else {
        return;
    };
    let (Some(start), Some(end), Some(pgoff)) = (
        read_at::<u64>(vma, o.vma_vm_start),
        read_at::<u64>(vma, o.vma_vm_end),
        read_at::<u64>(vma, o.vma_vm_pgoff),
    ) else {
        return;
    };
    if end <= start {
        return;
    }
    for i in 0..VMA_TARGETS_MAX {
        let Some(t) = VMA_TARGETS.get(i) else {
            return;
        };
        if t.ino == 0 {
            return;
        }
        if t.ino != ino || t.dev != dev {
            continue;
        }
        let win_lo = pgoff << (t.page_shift & 63);
        let win_hi = win_lo + (end - start);
        if win_lo >= t.hi || t.lo >= win_hi {
            continue;
        }
        let hit = VmaHit {
            vm_start: start,
            vm_end: end,
            pgoff,
            tgid: read_at::<u32>(task, o.task_tgid).unwrap_or(0),
            target: i,
        };
        // SAFETY: `meta` and `meta->seq` are the kernel's (direct loads the verifier types as
        // BTF pointers, which bpf_seq_write requires); `hit` lives on the stack for the call.
        unsafe {
            let seq = (*(*ctx).meta).seq;
            bpf_seq_write(
                seq,
                &hit as *const VmaHit as *const c_void,
                core::mem::size_of::<VmaHit>() as u32,
            );
        }
    }
}
