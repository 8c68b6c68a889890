//! The VMA iterator (`iter/task_vma`): the kernel walks every task's VMAs under its mmap lock and
//! runs this program once per VMA; it writes only the VMAs of a damaged file whose file window
//! overlaps the damaged range (`VMA_TARGETS`, set by userspace before each read). Userspace reads
//! the hits from the iterator's file, dedupes them by tgid (the kernel skips threads that share
//! their leader's files, not all threads) and checks each candidate in /proc before it is a
//! mapper: this program only narrows the search.
//!
//! aya-ebpf-macros 0.2 has no `#[iter]`: the section is written by hand (aya-obj 0.3 reads
//! `iter/<target>` as an iterator program). Every field is read at an offset the loader took from
//! the running kernel's BTF, as the probes do, but with plain loads instead of
//! `bpf_probe_read_kernel`: the offsets live in `.rodata`, which aya freezes read-only, so the
//! verifier sees each offset as a constant, checks each load against the kernel's BTF (the
//! context's `task` and `vma` are BTF pointers) and the load costs a move, not a helper call.
//! The program runs for every VMA of every process: anonymous ones cost one load, other files'
//! three (file, inode, inode number); only the damaged inode's VMAs read the rest.

use aya_ebpf::{bindings::seq_file, cty::c_void, helpers::bpf_seq_write, macros::map, maps::Array};
use notify_common::{VMA_TARGETS_MAX, VmaHit, VmaTarget};

use crate::OFFSETS;

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
    task: *const u8,
    vma: *const u8,
}

#[unsafe(link_section = "iter/task_vma")]
#[unsafe(no_mangle)]
pub extern "C" fn vma_iter(ctx: *mut TaskVmaCtx) -> i32 {
    // SAFETY: `ctx` is the kernel's context for this program, valid for the call.
    unsafe { on_vma(ctx) };
    0
}

/// A `T` at `base + off`: a plain load the verifier checks against BTF (see the module docs).
/// `off` must be known (the loader refuses to load this program otherwise).
#[inline(always)]
unsafe fn load<T: Copy>(base: *const u8, off: u32) -> T {
    // SAFETY: the verifier only accepts the load if `base + off` is a field of `T`'s size in
    // the BTF type `base` points to; a fault on a stale pointer reads as zero.
    unsafe { core::ptr::read_volatile(base.add(off as usize) as *const T) }
}

/// `p` unchanged (one register move), opaque to the compiler.
#[inline(always)]
fn after_check(mut p: *const u8) -> *const u8 {
    // SAFETY: a register-to-register move.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) p, options(nomem, nostack)) };
    p
}

/// One offset, loaded on its own from `.rodata` (a 4-byte load the verifier folds to the
/// constant; a copy of the whole struct through the stack would lose that).
macro_rules! off {
    ($field:ident) => {
        rodata_u32(&raw const OFFSETS.$field)
    };
}

#[inline(always)]
fn rodata_u32(p: *const u32) -> u32 {
    // SAFETY: `p` points into OFFSETS, a global the loader rewrites before load; volatile so
    // the load is kept.
    unsafe { core::ptr::read_volatile(p) }
}

#[inline(always)]
unsafe fn on_vma(ctx: *mut TaskVmaCtx) {
    // SAFETY (all loads): see `load`.
    let (vma, task) = unsafe { ((*ctx).vma, (*ctx).task) };
    if vma.is_null() || task.is_null() {
        return;
    }
    // The verifier refuses arithmetic on a maybe-NULL pointer: keep the compiler from moving
    // `vma + off` (or `task + off`) above the NULL checks.
    let (vma, task) = (after_check(vma), after_check(task));
    // Anonymous VMAs (no file) are most of them: one load and out.
    let file: *const u8 = unsafe { load(vma, off!(vma_vm_file)) };
    if file.is_null() {
        return;
    }
    let inode: *const u8 = unsafe { load(file, off!(file_f_inode)) };
    if inode.is_null() {
        return;
    }
    let ino: u64 = unsafe { load(inode, off!(inode_i_ino)) };
    let mut dev: Option<u32> = None;
    for i in 0..VMA_TARGETS_MAX {
        let Some(t) = VMA_TARGETS.get(i) else {
            return;
        };
        if t.ino == 0 {
            return;
        }
        if t.ino != ino {
            continue;
        }
        let d = match dev {
            Some(d) => d,
            None => {
                let sb: *const u8 = unsafe { load(inode, off!(inode_i_sb)) };
                if sb.is_null() {
                    return;
                }
                let d: u32 = unsafe { load(sb, off!(sb_s_dev)) };
                dev = Some(d);
                d
            }
        };
        if t.dev != d {
            continue;
        }
        let start: u64 = unsafe { load(vma, off!(vma_vm_start)) };
        let end: u64 = unsafe { load(vma, off!(vma_vm_end)) };
        let pgoff: u64 = unsafe { load(vma, off!(vma_vm_pgoff)) };
        if end <= start {
            return;
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
            tgid: unsafe { load::<i32>(task, off!(task_tgid)) } as u32,
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
