//! The kernel side of notify: probes that record, in order, what happens between a dax device,
//! its XFS holder and a memory failure. Kept minimal on purpose: no policy here, only facts.
//!
//! Every hook has one body and up to four thin entry points: fentry/fexit where the kernel has
//! BPF trampolines and the function is in vmlinux, kprobe/kretprobe otherwise. A kretprobe cannot
//! see the arguments, so the kprobe flavour stashes them at entry (per thread and hook) and the
//! return half takes them back; fexit reads them directly. The one exception is an `args_from`
//! outer attached by fentry: its fentry also stashes, when the loader says an inner kretprobe
//! will read its arguments from there (see `FENTRY_STASH`).
//!
//! The hooks are declared once, in `notify_common::hooks!` (function, argument count, halves per
//! flavour); the entry points are written by `programs!` at the bottom of this file from that
//! declaration, and call the hook's `<hook>_enter(args)` / `<hook>_exit(args, ret)` (tracepoint:
//! `on_<hook>(ctx)`), which call the bodies.
#![no_std]
#![no_main]
// The sequence counter needs BPF ISA v3's atomic fetch-add. The BPF target has no
// `AtomicU64::fetch_add`, and the `atomic_xadd` intrinsic was miscompiled here (LLVM 22 through
// bpf-linker emitted the non-fetching `lock +=` and used the operand as the "old value": every
// event got the same number), so the instruction is written out.
#![feature(asm_experimental_arch)]
// `${concat(hook, _kprobe)}`: program names derived from the hook names in `programs!`.
#![feature(macro_metavar_expr_concat)]

use core::arch::asm;

mod vma_iter;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel, generated as bpfh,
    },
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use notify_common::{
    COMM_LEN, Event, Holder, MemoryFailure, Mount, Notify, Offsets, Payload, RING_BYTES, Return,
    SB_BORN, Signal, kind, readiness, syscall, xfs_tp,
};

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Events the ring buffer had no room for, per CPU. Userspace sums and reports them.
#[map(name = "LOST")]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The global event counter (slot 0).
#[map(name = "SEQ")]
static SEQ: Array<u64> = Array::with_max_entries(1, 0);

/// Arguments stashed by a kprobe for its kretprobe: key (pid_tgid, [`StashKey`]). LRU, so that
/// the slots of threads that are gone (and entries orphaned by a missed kretprobe, maxactive
/// exhausted) age out instead of filling it.
///
/// A thread keeps its slot per hook: the entry writes the arguments into it in place and the
/// return reads them and clears `live`, both through a lookup (inlined by the verifier, no lock).
/// Only a thread's first call of a hook (or one after its slot aged out) pays for an insert,
/// which in an LRU hash takes the map's LRU lock; an insert and a remove per call was most of
/// what the kprobe flavour's entry cost beyond the fentry flavour's.
#[map(name = "STASH")]
static STASH: LruHashMap<[u64; 2], Stashed> = LruHashMap::with_max_entries(8192, 0);

/// Which hooks' fentry programs stash their arguments (slot 0, a bit per [`StashKey`]): set by
/// the loader (notify-user's attach) for an `args_from` outer attached by fentry, just before it
/// attaches the inner hook's kretprobe alone; then the inner needs no kprobe entry (~300
/// instructions of program a call, and the kprobe's trap), which the flag and the stash in the
/// fentry replace. Not a load-time global: the object (and its frozen `.rodata`) is loaded before
/// kallsyms says where the inner function lives (the two overlap at start-up), and only the
/// attach step knows whether the inner got a kprobe at all (a vmlinux XFS takes fexit, which
/// reads the arguments itself). An array lookup is a few instructions, inlined by the verifier.
#[map(name = "FENTRY_STASH")]
static FENTRY_STASH: Array<u64> = Array::with_max_entries(1, 0);

/// A stash slot: the arguments, and whether an entry wrote them since the last return read them.
#[derive(Clone, Copy)]
#[repr(C)]
struct Stashed {
    args: Args,
    live: u64,
}

/// Filled in by the loader from the running kernel's BTF and tracefs formats.
#[unsafe(no_mangle)]
static OFFSETS: Offsets = Offsets::unknown();

/// One field of [`OFFSETS`]. Volatile, so the compiler keeps the load instead of folding the
/// `unknown()` initialiser; one field at a time, since a volatile copy of the whole struct is a
/// load of every field (20) in every program, whichever it reads.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: a global the loader rewrites before load, never written after.
        unsafe { core::ptr::read_volatile(&raw const OFFSETS.$field) }
    };
}

/// Reads a `T` at `base + off` in kernel memory; `None` for a NULL base, an unknown offset or a
/// fault.
#[inline(always)]
fn read_at<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 || off == Offsets::UNKNOWN {
        return None;
    }
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).ok() }
}

#[inline(always)]
fn next_seq() -> u64 {
    match SEQ.get_ptr_mut(0) {
        Some(p) => {
            let mut v: u64 = 1;
            // SAFETY: `p` points at the map value, valid for the map's lifetime; BPF_ATOMIC |
            // BPF_FETCH adds `v` to it and leaves the previous value in `v`.
            unsafe {
                asm!(
                    "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
                    v = inout(reg) v,
                    p = in(reg) p,
                    options(nostack),
                );
            }
            v + 1
        }
        None => 0,
    }
}

#[inline(always)]
fn emit(kind: u32, payload: Payload) {
    // The sequence number is taken before the reservation so that a lost event leaves a gap
    // userspace can see, on top of the LOST counter.
    let seq = next_seq();
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            // Written in place, field by field: an `Event` built on the stack and copied in was
            // ~100 of the ~185 instructions of a small program (the `comm` array moved byte by
            // byte through three stack copies, and memset/memcpy as BPF subprogram calls).
            let ev = entry.as_mut_ptr();
            // SAFETY: `ev` is the reserved record, `size_of::<Event>()` bytes, ours until the
            // submit; every header field is written, and the payload as the caller built it
            // (the bytes of a union past its variant were never written, nor read).
            unsafe {
                let h = &raw mut (*ev).header;
                (*h).seq = seq;
                (*h).ktime_ns = bpf_ktime_get_ns();
                (*h).pid_tgid = bpf_get_current_pid_tgid();
                (*h).cpu = bpf_get_smp_processor_id();
                (*h).kind = kind;
                let comm = &raw mut (*h).comm;
                if bpfh::bpf_get_current_comm(comm.cast(), COMM_LEN as u32) != 0 {
                    *comm = [0; COMM_LEN];
                }
                (&raw mut (*ev).payload).write(payload);
            }
            entry.submit(0);
        }
        None => {
            if let Some(n) = LOST.get_ptr_mut(0) {
                // Per-CPU slot: no other CPU writes it, a plain add is enough.
                unsafe { *n += 1 };
            }
        }
    }
}

/// A function's arguments (`args` in the hook declaration, at most 4). Past the count: zero in
/// the fentry flavour, whatever the argument registers hold in the kprobe flavour; no body reads
/// them.
type Args = [u64; 4];

#[inline(always)]
fn stash(hook: StashKey, args: Args) {
    let key = [bpf_get_current_pid_tgid(), hook as u64];
    let slot = Stashed { args, live: 1 };
    match STASH.get_ptr_mut(key) {
        // SAFETY: the map value, valid for the map's lifetime; only this thread writes its key.
        Some(p) => unsafe { *p = slot },
        None => {
            let _ = STASH.insert(key, slot, 0);
        }
    }
}

/// The arguments the entry of `hook` stashed for this thread, and marks them read; zeros when
/// there are none (entry not seen).
#[inline(always)]
fn unstash(hook: StashKey) -> Args {
    match STASH.get_ptr_mut([bpf_get_current_pid_tgid(), hook as u64]) {
        // SAFETY: as in `stash`.
        Some(p) => unsafe {
            if (*p).live == 0 {
                return [0; 4];
            }
            (*p).live = 0;
            (*p).args
        },
        None => [0; 4],
    }
}

/// Marks this thread's slot of `hook` read, as [`unstash`] does, without reading it: the fexit
/// of a hook whose fentry stashed, so that a slot left live cannot be peeked by a later call.
#[inline(always)]
fn mark_read(hook: StashKey) {
    if let Some(p) = STASH.get_ptr_mut([bpf_get_current_pid_tgid(), hook as u64]) {
        // SAFETY: as in `stash`.
        unsafe { (*p).live = 0 };
    }
}

/// Whether the loader asked `hook`'s fentry to stash (see [`FENTRY_STASH`]).
#[inline(always)]
fn fentry_stashes(hook: StashKey) -> bool {
    FENTRY_STASH
        .get(0)
        .is_some_and(|m| m & (1u64 << hook as u64) != 0)
}

/// The arguments `outer`'s entry stashed for this thread, left for `outer`'s own return: for
/// a function called only from `outer` with `outer`'s own arguments (`xfs_dax_notify_failure`
/// from `dax_holder_notify_failure`), whose return then needs no entry program.
#[inline(always)]
fn peek(outer: StashKey) -> Option<Args> {
    // SAFETY: as in `stash`.
    let p = STASH.get_ptr_mut([bpf_get_current_pid_tgid(), outer as u64])?;
    unsafe { ((*p).live != 0).then(|| (*p).args) }
}

/// The kprobe flavour's arguments: the four argument registers, whatever the function's count
/// (registers are always readable, and copying all four keeps the stash a plain copy).
#[inline(always)]
fn kp_args(ctx: &ProbeContext) -> Args {
    [
        ctx.arg::<u64>(0).unwrap_or(0),
        ctx.arg::<u64>(1).unwrap_or(0),
        ctx.arg::<u64>(2).unwrap_or(0),
        ctx.arg::<u64>(3).unwrap_or(0),
    ]
}

/// The fentry flavour's arguments: the first `N`, zero past them. Every read is at a constant
/// index: an fentry/fexit context holds exactly the function's arguments (then fexit's return
/// value), and the verifier refuses a read past them or at a variable offset.
#[inline(always)]
fn btf_args<const N: usize>(ctx: &impl BtfArgs) -> Args {
    const { assert!(N <= 4, "at most 4 arguments: the stash width") };
    let at = |i: usize| if i < N { ctx.btf_arg(i) } else { 0 };
    [at(0), at(1), at(2), at(3)]
}

/// The contexts whose arguments are an array of u64: fentry and fexit.
trait BtfArgs {
    fn btf_arg(&self, n: usize) -> u64;
}
impl BtfArgs for FEntryContext {
    #[inline(always)]
    fn btf_arg(&self, n: usize) -> u64 {
        self.arg(n)
    }
}
impl BtfArgs for FExitContext {
    #[inline(always)]
    fn btf_arg(&self, n: usize) -> u64 {
        self.arg(n)
    }
}

/// An `int` return value, sign-extended.
#[inline(always)]
fn int(ret: u64) -> i64 {
    ret as i32 as i64
}

// ---------------------------------------------------------------------------------------------
// The bodies: one per hook, shared by both flavours.

/// A step of the mount path: `holder` (the `struct xfs_mount *`, 0 if unknown), the function's
/// own first argument, and what the superblock `sb` (0 if unknown) says of flags and device.
#[inline(always)]
fn emit_mount(kind: u32, holder: u64, arg: u64, sb: u64, ret: i64) {
    let payload = Mount {
        holder,
        arg,
        s_flags: read_at::<u64>(sb, off!(sb_s_flags)).unwrap_or(0),
        ret,
        dev: read_at::<u32>(sb, off!(sb_s_dev)).unwrap_or(0),
        _pad: 0,
    };
    emit(kind, Payload { mount: payload });
}

/// Holder of a superblock: XFS keeps its `struct xfs_mount *` in `sb->s_fs_info`.
#[inline(always)]
fn sb_mount(kind: u32, sb: u64, ret: i64) {
    let holder = read_at::<u64>(sb, off!(sb_s_fs_info)).unwrap_or(0);
    emit_mount(kind, holder, sb, sb, ret);
}

/// A step whose argument is the `struct xfs_mount *` itself.
#[inline(always)]
fn mp_mount(kind: u32, mp: u64, ret: i64) {
    let sb = read_at::<u64>(mp, off!(xfs_m_super)).unwrap_or(0);
    emit_mount(kind, mp, mp, sb, ret);
}

/// A step whose argument is the `struct xlog *`.
#[inline(always)]
fn log_mount(kind: u32, log: u64, ret: i64) {
    let mp = read_at::<u64>(log, off!(xlog_l_mp)).unwrap_or(0);
    let sb = read_at::<u64>(mp, off!(xfs_m_super)).unwrap_or(0);
    emit_mount(kind, mp, log, sb, ret);
}

/// `dax_holder_notify_failure(dax_dev, off, len, mf_flags)` entry. Reads what XFS itself will
/// check: `holder->m_super->s_flags & SB_BORN`.
#[inline(always)]
fn on_notify_enter(a: Args) {
    let dax_dev = a[0];
    let holder = read_at::<u64>(dax_dev, off!(dax_holder_data)).unwrap_or(0);
    let holder_ops = read_at::<u64>(dax_dev, off!(dax_holder_ops)).unwrap_or(0);
    let sb = read_at::<u64>(holder, off!(xfs_m_super));
    let s_flags = sb.and_then(|sb| read_at::<u64>(sb, off!(sb_s_flags)));
    let dev = sb
        .and_then(|sb| read_at::<u32>(sb, off!(sb_s_dev)))
        .unwrap_or(0);
    let readiness = match (holder, s_flags) {
        (0, _) => readiness::NO_HOLDER,
        (_, None) => readiness::UNKNOWN,
        (_, Some(f)) if f & SB_BORN != 0 => readiness::BORN,
        _ => readiness::NOT_BORN,
    };
    let payload = Notify {
        dax_dev,
        holder,
        holder_ops,
        offset: a[1],
        len: a[2],
        s_flags: s_flags.unwrap_or(0),
        mf_flags: a[3] as u32,
        readiness,
        dev,
        _pad: 0,
    };
    emit(kind::NOTIFY_ENTER, Payload { notify: payload });
}

#[inline(always)]
fn on_ret(kind: u32, object: u64, offset: u64, len: u64, ret: i64) {
    emit(
        kind,
        Payload {
            ret: Return {
                object,
                offset,
                len,
                ret,
            },
        },
    );
}

/// `fs_dax_get_by_bdev(bdev, &start_off, holder, ops)` returned `dax_dev`.
#[inline(always)]
fn on_holder_get(a: Args, dax_dev: u64) {
    let start_off = if a[1] != 0 {
        unsafe { bpf_probe_read_kernel(a[1] as *const u64) }.unwrap_or(0)
    } else {
        0
    };
    let payload = Holder {
        dax_dev,
        holder: a[2],
        holder_ops: a[3],
        start_off,
        dev: read_at::<u32>(a[0], off!(bdev_bd_dev)).unwrap_or(0),
        _pad: 0,
    };
    emit(kind::HOLDER_GET, Payload { holder: payload });
}

/// `fs_put_dax(dax_dev, holder)`.
#[inline(always)]
fn on_holder_put(dax_dev: u64, holder: u64) {
    let payload = Holder {
        dax_dev,
        holder,
        holder_ops: read_at::<u64>(dax_dev, off!(dax_holder_ops)).unwrap_or(0),
        start_off: 0,
        dev: 0,
        _pad: 0,
    };
    emit(kind::HOLDER_PUT, Payload { holder: payload });
}

/// `vfs_get_tree(fc)` returned: the superblock is `fc->root->d_sb`, born now if `ret == 0`.
#[inline(always)]
fn on_get_tree_exit(fc: u64, ret: i64) {
    let root = read_at::<u64>(fc, off!(fc_root)).unwrap_or(0);
    let sb = read_at::<u64>(root, off!(dentry_d_sb)).unwrap_or(0);
    let holder = read_at::<u64>(sb, off!(sb_s_fs_info)).unwrap_or(0);
    emit_mount(kind::GET_TREE_EXIT, holder, fc, sb, ret);
}

#[inline(always)]
fn on_memory_failure(kind: u32, pfn: u64, flags: u64, ret: i64) {
    let payload = MemoryFailure {
        pfn,
        ret,
        flags: flags as u32,
        mf_type: 0,
        result: 0,
        _pad: 0,
    };
    emit(kind, Payload { mf: payload });
}

#[inline(always)]
fn tp_read<T>(ctx: &TracePointContext, off: u32) -> Option<T> {
    if off == Offsets::UNKNOWN {
        return None;
    }
    unsafe { ctx.read_at::<T>(off as usize).ok() }
}

/// `ras:memory_failure_event` (or `memory_failure:memory_failure_event`).
#[inline(always)]
fn on_mf_event(ctx: &TracePointContext) {
    let payload = MemoryFailure {
        pfn: tp_read::<u64>(ctx, off!(tp_mf_pfn)).unwrap_or(0),
        ret: 0,
        flags: 0,
        mf_type: tp_read::<i32>(ctx, off!(tp_mf_type)).unwrap_or(-1),
        result: tp_read::<i32>(ctx, off!(tp_mf_result)).unwrap_or(-1),
        _pad: 0,
    };
    emit(kind::MF_EVENT, Payload { mf: payload });
}

#[inline(always)]
fn on_sys_exit(ctx: &TracePointContext, which: u64) {
    let payload = Mount {
        holder: 0,
        arg: which,
        s_flags: 0,
        ret: tp_read::<i64>(ctx, off!(tp_sys_ret)).unwrap_or(0),
        dev: 0,
        _pad: 0,
    };
    emit(kind::SYSCALL_EXIT, Payload { mount: payload });
}

#[inline(always)]
fn on_xfs_tp(ctx: &TracePointContext, which: u64) {
    let payload = Mount {
        holder: 0,
        arg: which,
        s_flags: 0,
        ret: 0,
        dev: tp_read::<u32>(ctx, off!(tp_xfs_dev)).unwrap_or(0),
        _pad: 0,
    };
    emit(kind::XFS_TRACEPOINT, Payload { mount: payload });
}

// ---------------------------------------------------------------------------------------------
// What each hook tells, in the shape the entry points call: `<hook>_enter(args)` for its entry
// half, `<hook>_exit(args, ret)` for its return half (the halves its declaration lists),
// `on_<hook>(ctx)` for a tracepoint. `ret` is the raw return register.

#[inline(always)]
fn memory_failure_enter(a: &Args) {
    on_memory_failure(kind::MEMORY_FAILURE_ENTER, a[0], a[1], 0);
}
#[inline(always)]
fn memory_failure_exit(a: &Args, ret: u64) {
    on_memory_failure(kind::MEMORY_FAILURE_EXIT, a[0], a[1], int(ret));
}

#[inline(always)]
fn notify_enter(a: &Args) {
    on_notify_enter(*a);
}
#[inline(always)]
fn notify_exit(a: &Args, ret: u64) {
    on_ret(kind::NOTIFY_EXIT, a[0], a[1], a[2], int(ret));
}

/// Nothing to tell at entry (the kprobe entry only stashes the arguments for its return).
#[inline(always)]
fn xfs_notify_enter(_: &Args) {}
#[inline(always)]
fn xfs_notify_exit(a: &Args, ret: u64) {
    on_ret(kind::XFS_NOTIFY_EXIT, a[0], a[1], a[2], int(ret));
}

/// Nothing to tell at entry (the kprobe entry only stashes the arguments for its return).
#[inline(always)]
fn holder_get_enter(_: &Args) {}
#[inline(always)]
fn holder_get_exit(a: &Args, dax_dev: u64) {
    on_holder_get(*a, dax_dev);
}

#[inline(always)]
fn holder_put_enter(a: &Args) {
    on_holder_put(a[0], a[1]);
}

#[inline(always)]
fn fill_super_enter(a: &Args) {
    sb_mount(kind::FILL_SUPER_ENTER, a[0], 0);
}
#[inline(always)]
fn fill_super_exit(a: &Args, ret: u64) {
    sb_mount(kind::FILL_SUPER_EXIT, a[0], int(ret));
}

#[inline(always)]
fn mountfs_enter(a: &Args) {
    mp_mount(kind::MOUNTFS_ENTER, a[0], 0);
}
#[inline(always)]
fn mountfs_exit(a: &Args, ret: u64) {
    mp_mount(kind::MOUNTFS_EXIT, a[0], int(ret));
}

#[inline(always)]
fn log_recover_enter(a: &Args) {
    log_mount(kind::LOG_RECOVER_ENTER, a[0], 0);
}
#[inline(always)]
fn log_recover_exit(a: &Args, ret: u64) {
    log_mount(kind::LOG_RECOVER_EXIT, a[0], int(ret));
}

#[inline(always)]
fn log_recover_finish_enter(a: &Args) {
    log_mount(kind::LOG_RECOVER_FINISH_ENTER, a[0], 0);
}
#[inline(always)]
fn log_recover_finish_exit(a: &Args, ret: u64) {
    log_mount(kind::LOG_RECOVER_FINISH_EXIT, a[0], int(ret));
}

/// Nothing to tell at entry (the kprobe entry only stashes the arguments for its return).
#[inline(always)]
fn get_tree_enter(_: &Args) {}
#[inline(always)]
fn get_tree_exit(a: &Args, ret: u64) {
    on_get_tree_exit(a[0], int(ret));
}

#[inline(always)]
fn put_super_enter(a: &Args) {
    sb_mount(kind::PUT_SUPER, a[0], 0);
}

#[inline(always)]
fn on_sys_exit_mount(ctx: &TracePointContext) {
    on_sys_exit(ctx, syscall::MOUNT);
}
#[inline(always)]
fn on_sys_exit_fsconfig(ctx: &TracePointContext) {
    on_sys_exit(ctx, syscall::FSCONFIG);
}
#[inline(always)]
fn on_sys_exit_fsmount(ctx: &TracePointContext) {
    on_sys_exit(ctx, syscall::FSMOUNT);
}
#[inline(always)]
fn on_sys_exit_umount(ctx: &TracePointContext) {
    on_sys_exit(ctx, syscall::UMOUNT);
}

#[inline(always)]
fn on_xfs_log_recover(ctx: &TracePointContext) {
    on_xfs_tp(ctx, xfs_tp::LOG_RECOVER);
}
#[inline(always)]
fn on_xfs_log_umount_write(ctx: &TracePointContext) {
    on_xfs_tp(ctx, xfs_tp::LOG_UMOUNT_WRITE);
}

/// Every signal passes here; only SIGBUS is kept (the memory-failure kills and DAX faults).
#[inline(always)]
fn on_signal_generate(ctx: &TracePointContext) {
    let sig = tp_read::<i32>(ctx, off!(tp_sig_sig)).unwrap_or(0);
    if sig != SIGBUS {
        return;
    }
    let payload = Signal {
        sig,
        code: tp_read::<i32>(ctx, off!(tp_sig_code)).unwrap_or(0),
        target: tp_read::<i32>(ctx, off!(tp_sig_pid)).unwrap_or(0),
        result: tp_read::<i32>(ctx, off!(tp_sig_result)).unwrap_or(-1),
        comm: tp_read::<[u8; 16]>(ctx, off!(tp_sig_comm)).unwrap_or([0; 16]),
    };
    emit(kind::SIGBUS, Payload { signal: payload });
}

const SIGBUS: i32 = 7;

// ---------------------------------------------------------------------------------------------
// Entry points, written from `notify_common::hooks!`. Naming: <hook>_kprobe / <hook>_kretprobe /
// <hook>_fentry / <hook>_fexit, and the hook's own name for a tracepoint; the loader
// (notify-user/src/probe/hooks.rs) derives the same names from the same declaration.

macro_rules! programs {
    (
        functions {
            $(
                $name:ident {
                    function: $function:literal,
                    args: $args:literal,
                    kprobe: [$($kprobe:tt)*],
                    fentry: [$($fentry:tt)*],
                    $(args_from: $outer:ident,)?
                    required: $required:literal,
                    role: $role:literal $(,)?
                }
            )*
        }
        tracepoints {
            $(
                $tp:ident {
                    candidates: [$(($group:literal, $event:literal)),+ $(,)?],
                    role: $tp_role:literal $(,)?
                }
            )*
        }
    ) => {
        /// The stash's key per function hook, numbered by the compiler. (Hooks without a
        /// return half never stash.)
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Clone, Copy)]
        #[repr(u64)]
        enum StashKey {
            $($name,)*
        }

        /// The hooks some other hook takes its arguments from (`args_from`), a bit per
        /// [`StashKey`]: only their fentry programs carry the (flag-gated) stash. A constant, so
        /// every other fentry program has no trace of it.
        const OUTERS: u64 = 0 $($(| (1u64 << StashKey::$outer as u64))?)*;

        $(
            programs!(@kprobe $name [$($kprobe)*] [$($outer)?]);
            programs!(@fentry $name $function $args [$($fentry)*]);
        )*

        $(
            #[tracepoint]
            pub fn $tp(ctx: TracePointContext) -> u32 {
                ${concat(on_, $tp)}(&ctx);
                0
            }
        )*
    };

    // The kprobe flavour: the entry always, stashing the arguments when a kretprobe follows.
    (@kprobe $name:ident [entry, return] []) => {
        #[kprobe]
        pub fn ${concat($name, _kprobe)}(ctx: ProbeContext) -> u32 {
            let a = kp_args(&ctx);
            stash(StashKey::$name, a);
            ${concat($name, _enter)}(&a);
            0
        }
        #[kretprobe]
        pub fn ${concat($name, _kretprobe)}(ctx: RetProbeContext) -> u32 {
            let a = unstash(StashKey::$name);
            ${concat($name, _exit)}(&a, ctx.ret::<u64>());
            0
        }
    };
    // Arguments from the outer hook's stash when its kprobe entry ran (the loader then leaves
    // this entry unattached), else from this hook's own.
    (@kprobe $name:ident [entry, return] [$outer:ident]) => {
        #[kprobe]
        pub fn ${concat($name, _kprobe)}(ctx: ProbeContext) -> u32 {
            let a = kp_args(&ctx);
            stash(StashKey::$name, a);
            ${concat($name, _enter)}(&a);
            0
        }
        #[kretprobe]
        pub fn ${concat($name, _kretprobe)}(ctx: RetProbeContext) -> u32 {
            let a = match peek(StashKey::$outer) {
                Some(a) => a,
                None => unstash(StashKey::$name),
            };
            ${concat($name, _exit)}(&a, ctx.ret::<u64>());
            0
        }
    };
    (@kprobe $name:ident [entry] []) => {
        #[kprobe]
        pub fn ${concat($name, _kprobe)}(ctx: ProbeContext) -> u32 {
            ${concat($name, _enter)}(&kp_args(&ctx));
            0
        }
    };

    // The fentry flavour: each half on its own; fexit's return value follows the arguments.
    (@fentry $name:ident $function:literal $args:literal [entry, return]) => {
        programs!(@fentry $name $function $args [entry]);
        programs!(@fentry $name $function $args [return]);
    };
    // An `args_from` outer (a bit in OUTERS) stashes at fentry when the loader says an inner
    // kretprobe will peek (FENTRY_STASH), and its fexit then marks the slot read, as a kretprobe
    // does: the inner runs between the two, so it never sees a slot of an earlier call.
    (@fentry $name:ident $function:literal $args:literal [entry]) => {
        #[fentry(function = $function)]
        pub fn ${concat($name, _fentry)}(ctx: FEntryContext) -> i32 {
            let a = btf_args::<$args>(&ctx);
            if OUTERS & (1u64 << StashKey::$name as u64) != 0 && fentry_stashes(StashKey::$name) {
                stash(StashKey::$name, a);
            }
            ${concat($name, _enter)}(&a);
            0
        }
    };
    (@fentry $name:ident $function:literal $args:literal [return]) => {
        #[fexit(function = $function)]
        pub fn ${concat($name, _fexit)}(ctx: FExitContext) -> i32 {
            if OUTERS & (1u64 << StashKey::$name as u64) != 0 && fentry_stashes(StashKey::$name) {
                mark_read(StashKey::$name);
            }
            ${concat($name, _exit)}(&btf_args::<$args>(&ctx), ctx.arg::<u64>($args));
            0
        }
    };
    (@fentry $name:ident $function:literal $args:literal []) => {};
}

notify_common::hooks!(programs);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
