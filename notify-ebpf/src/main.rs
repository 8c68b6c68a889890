//! The kernel side of notify: probes that record, in order, what happens between a dax device,
//! its XFS holder and a memory failure. Kept minimal on purpose: no policy here, only facts.
//!
//! Every hook has one body and up to four thin entry points: fentry/fexit where the kernel has
//! BPF trampolines and the function is in vmlinux, kprobe/kretprobe otherwise. A kretprobe cannot
//! see the arguments, so the kprobe flavour stashes them at entry (per thread and hook) and the
//! return half takes them back; fexit reads them directly.
#![no_std]
#![no_main]
// The sequence counter needs BPF ISA v3's atomic fetch-add. The BPF target has no
// `AtomicU64::fetch_add`, and the `atomic_xadd` intrinsic was miscompiled here (LLVM 22 through
// bpf-linker emitted the non-fetching `lock +=` and used the operand as the "old value": every
// event got the same number), so the instruction is written out.
#![feature(asm_experimental_arch)]

use core::arch::asm;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
        bpf_probe_read_kernel,
    },
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use notify_common::{
    Event, Header, Holder, MemoryFailure, Mount, Notify, Offsets, Payload, RING_BYTES, Return,
    SB_BORN, kind, readiness, syscall, xfs_tp,
};

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Events the ring buffer had no room for, per CPU. Userspace sums and reports them.
#[map(name = "LOST")]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The global event counter (slot 0).
#[map(name = "SEQ")]
static SEQ: Array<u64> = Array::with_max_entries(1, 0);

/// Arguments stashed by a kprobe for its kretprobe: key (pid_tgid, hook id). LRU, so that
/// entries orphaned by a missed kretprobe (maxactive exhausted) age out instead of filling it.
#[map(name = "STASH")]
static STASH: LruHashMap<[u64; 2], [u64; 4]> = LruHashMap::with_max_entries(8192, 0);

/// Filled in by the loader from the running kernel's BTF and tracefs formats.
#[unsafe(no_mangle)]
static OFFSETS: Offsets = Offsets::unknown();

#[inline(always)]
fn offsets() -> Offsets {
    // SAFETY: a global the loader rewrites before load; volatile so the compiler keeps the load
    // instead of folding the `unknown()` initialiser.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
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
            let ev = Event {
                header: Header {
                    seq,
                    ktime_ns: unsafe { bpf_ktime_get_ns() },
                    pid_tgid: bpf_get_current_pid_tgid(),
                    cpu: unsafe { bpf_get_smp_processor_id() },
                    kind,
                    comm: bpf_get_current_comm().unwrap_or([0; 16]),
                },
                payload,
            };
            entry.write(ev);
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

// Hook ids, only used to key the stash.
const H_NOTIFY: u64 = 1;
const H_HOLDER_GET: u64 = 2;
const H_FILL_SUPER: u64 = 3;
const H_MOUNTFS: u64 = 4;
const H_LOG_RECOVER: u64 = 5;
const H_LOG_RECOVER_FINISH: u64 = 6;
const H_GET_TREE: u64 = 7;
const H_XFS_NOTIFY: u64 = 8;
const H_MEMORY_FAILURE: u64 = 9;

#[inline(always)]
fn stash(hook: u64, args: [u64; 4]) {
    let _ = STASH.insert([bpf_get_current_pid_tgid(), hook], args, 0);
}

#[inline(always)]
fn unstash(hook: u64) -> [u64; 4] {
    let key = [bpf_get_current_pid_tgid(), hook];
    // SAFETY: the value is copied out before the remove.
    let args = unsafe { STASH.get(key) }.copied().unwrap_or([0; 4]);
    let _ = STASH.remove(key);
    args
}

// ---------------------------------------------------------------------------------------------
// The bodies: one per hook, shared by both flavours.

/// Holder of a superblock: XFS keeps its `struct xfs_mount *` in `sb->s_fs_info`.
#[inline(always)]
fn sb_mount(kind: u32, sb: u64, ret: i64) {
    let o = offsets();
    let payload = Mount {
        holder: read_at::<u64>(sb, o.sb_s_fs_info).unwrap_or(0),
        arg: sb,
        s_flags: read_at::<u64>(sb, o.sb_s_flags).unwrap_or(0),
        ret,
        dev: read_at::<u32>(sb, o.sb_s_dev).unwrap_or(0),
        _pad: 0,
    };
    emit(kind, Payload { mount: payload });
}

/// A step whose argument is the `struct xfs_mount *` itself.
#[inline(always)]
fn mp_mount(kind: u32, mp: u64, ret: i64) {
    let o = offsets();
    let sb = read_at::<u64>(mp, o.xfs_m_super).unwrap_or(0);
    let payload = Mount {
        holder: mp,
        arg: mp,
        s_flags: read_at::<u64>(sb, o.sb_s_flags).unwrap_or(0),
        ret,
        dev: read_at::<u32>(sb, o.sb_s_dev).unwrap_or(0),
        _pad: 0,
    };
    emit(kind, Payload { mount: payload });
}

/// A step whose argument is the `struct xlog *`.
#[inline(always)]
fn log_mount(kind: u32, log: u64, ret: i64) {
    let mp = read_at::<u64>(log, offsets().xlog_l_mp).unwrap_or(0);
    let o = offsets();
    let sb = read_at::<u64>(mp, o.xfs_m_super).unwrap_or(0);
    let payload = Mount {
        holder: mp,
        arg: log,
        s_flags: read_at::<u64>(sb, o.sb_s_flags).unwrap_or(0),
        ret,
        dev: read_at::<u32>(sb, o.sb_s_dev).unwrap_or(0),
        _pad: 0,
    };
    emit(kind, Payload { mount: payload });
}

/// `dax_holder_notify_failure(dax_dev, off, len, mf_flags)` entry. Reads what XFS itself will
/// check: `holder->m_super->s_flags & SB_BORN`.
#[inline(always)]
fn on_notify_enter(a: [u64; 4]) {
    let o = offsets();
    let dax_dev = a[0];
    let holder = read_at::<u64>(dax_dev, o.dax_holder_data).unwrap_or(0);
    let holder_ops = read_at::<u64>(dax_dev, o.dax_holder_ops).unwrap_or(0);
    let sb = read_at::<u64>(holder, o.xfs_m_super);
    let s_flags = sb.and_then(|sb| read_at::<u64>(sb, o.sb_s_flags));
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
fn on_holder_get(a: [u64; 4], dax_dev: u64) {
    let o = offsets();
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
        dev: read_at::<u32>(a[0], o.bdev_bd_dev).unwrap_or(0),
        _pad: 0,
    };
    emit(kind::HOLDER_GET, Payload { holder: payload });
}

/// `fs_put_dax(dax_dev, holder)`.
#[inline(always)]
fn on_holder_put(dax_dev: u64, holder: u64) {
    let o = offsets();
    let payload = Holder {
        dax_dev,
        holder,
        holder_ops: read_at::<u64>(dax_dev, o.dax_holder_ops).unwrap_or(0),
        start_off: 0,
        dev: 0,
        _pad: 0,
    };
    emit(kind::HOLDER_PUT, Payload { holder: payload });
}

/// `vfs_get_tree(fc)` returned: the superblock is `fc->root->d_sb`, born now if `ret == 0`.
#[inline(always)]
fn on_get_tree_exit(fc: u64, ret: i64) {
    let o = offsets();
    let root = read_at::<u64>(fc, o.fc_root).unwrap_or(0);
    let sb = read_at::<u64>(root, o.dentry_d_sb).unwrap_or(0);
    let holder = read_at::<u64>(sb, o.sb_s_fs_info).unwrap_or(0);
    let payload = Mount {
        holder,
        arg: fc,
        s_flags: read_at::<u64>(sb, o.sb_s_flags).unwrap_or(0),
        ret,
        dev: read_at::<u32>(sb, o.sb_s_dev).unwrap_or(0),
        _pad: 0,
    };
    emit(kind::GET_TREE_EXIT, Payload { mount: payload });
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

// ---------------------------------------------------------------------------------------------
// Entry points. Naming: <hook>_kprobe / <hook>_kretprobe / <hook>_fentry / <hook>_fexit; the
// loader pairs them by these names (see notify-user/src/probes.rs).

#[inline(always)]
fn kp_args(ctx: &ProbeContext) -> [u64; 4] {
    [
        ctx.arg::<u64>(0).unwrap_or(0),
        ctx.arg::<u64>(1).unwrap_or(0),
        ctx.arg::<u64>(2).unwrap_or(0),
        ctx.arg::<u64>(3).unwrap_or(0),
    ]
}

#[inline(always)]
fn krp_ret(ctx: &RetProbeContext) -> i64 {
    ctx.ret::<u64>() as i64
}

// dax_holder_notify_failure(dax_dev, off, len, mf_flags) -> int
#[kprobe]
pub fn notify_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    stash(H_NOTIFY, a);
    on_notify_enter(a);
    0
}
#[kretprobe]
pub fn notify_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_NOTIFY);
    on_ret(
        kind::NOTIFY_EXIT,
        a[0],
        a[1],
        a[2],
        krp_ret(&ctx) as i32 as i64,
    );
    0
}
#[fentry(function = "dax_holder_notify_failure")]
pub fn notify_fentry(ctx: FEntryContext) -> i32 {
    let a = [ctx.arg::<u64>(0), ctx.arg(1), ctx.arg(2), ctx.arg(3)];
    on_notify_enter(a);
    0
}
#[fexit(function = "dax_holder_notify_failure")]
pub fn notify_fexit(ctx: FExitContext) -> i32 {
    let ret = ctx.arg::<u64>(4) as i32 as i64;
    on_ret(
        kind::NOTIFY_EXIT,
        ctx.arg::<u64>(0),
        ctx.arg(1),
        ctx.arg(2),
        ret,
    );
    0
}

// xfs_dax_notify_failure(dax_dev, off, len, mf_flags) -> int: XFS's own verdict.
#[kprobe]
pub fn xfs_notify_kprobe(ctx: ProbeContext) -> u32 {
    stash(H_XFS_NOTIFY, kp_args(&ctx));
    0
}
#[kretprobe]
pub fn xfs_notify_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_XFS_NOTIFY);
    on_ret(
        kind::XFS_NOTIFY_EXIT,
        a[0],
        a[1],
        a[2],
        krp_ret(&ctx) as i32 as i64,
    );
    0
}
#[fexit(function = "xfs_dax_notify_failure")]
pub fn xfs_notify_fexit(ctx: FExitContext) -> i32 {
    let ret = ctx.arg::<u64>(4) as i32 as i64;
    on_ret(
        kind::XFS_NOTIFY_EXIT,
        ctx.arg::<u64>(0),
        ctx.arg(1),
        ctx.arg(2),
        ret,
    );
    0
}

// fs_dax_get_by_bdev(bdev, &start_off, holder, ops) -> struct dax_device *
#[kprobe]
pub fn holder_get_kprobe(ctx: ProbeContext) -> u32 {
    stash(H_HOLDER_GET, kp_args(&ctx));
    0
}
#[kretprobe]
pub fn holder_get_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_HOLDER_GET);
    on_holder_get(a, ctx.ret::<u64>());
    0
}
#[fexit(function = "fs_dax_get_by_bdev")]
pub fn holder_get_fexit(ctx: FExitContext) -> i32 {
    let a = [ctx.arg::<u64>(0), ctx.arg(1), ctx.arg(2), ctx.arg(3)];
    on_holder_get(a, ctx.arg::<u64>(4));
    0
}

// fs_put_dax(dax_dev, holder)
#[kprobe]
pub fn holder_put_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    on_holder_put(a[0], a[1]);
    0
}
#[fentry(function = "fs_put_dax")]
pub fn holder_put_fentry(ctx: FEntryContext) -> i32 {
    on_holder_put(ctx.arg::<u64>(0), ctx.arg(1));
    0
}

// xfs_fs_fill_super(sb, fc) -> int
#[kprobe]
pub fn fill_super_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    stash(H_FILL_SUPER, a);
    sb_mount(kind::FILL_SUPER_ENTER, a[0], 0);
    0
}
#[kretprobe]
pub fn fill_super_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_FILL_SUPER);
    sb_mount(kind::FILL_SUPER_EXIT, a[0], krp_ret(&ctx) as i32 as i64);
    0
}

#[fentry(function = "xfs_fs_fill_super")]
pub fn fill_super_fentry(ctx: FEntryContext) -> i32 {
    sb_mount(kind::FILL_SUPER_ENTER, ctx.arg(0), 0);
    0
}
#[fexit(function = "xfs_fs_fill_super")]
pub fn fill_super_fexit(ctx: FExitContext) -> i32 {
    sb_mount(
        kind::FILL_SUPER_EXIT,
        ctx.arg(0),
        ctx.arg::<u64>(2) as i32 as i64,
    );
    0
}

// xfs_mountfs(mp) -> int
#[kprobe]
pub fn mountfs_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    stash(H_MOUNTFS, a);
    mp_mount(kind::MOUNTFS_ENTER, a[0], 0);
    0
}
#[kretprobe]
pub fn mountfs_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_MOUNTFS);
    mp_mount(kind::MOUNTFS_EXIT, a[0], krp_ret(&ctx) as i32 as i64);
    0
}

#[fentry(function = "xfs_mountfs")]
pub fn mountfs_fentry(ctx: FEntryContext) -> i32 {
    mp_mount(kind::MOUNTFS_ENTER, ctx.arg(0), 0);
    0
}
#[fexit(function = "xfs_mountfs")]
pub fn mountfs_fexit(ctx: FExitContext) -> i32 {
    mp_mount(
        kind::MOUNTFS_EXIT,
        ctx.arg(0),
        ctx.arg::<u64>(1) as i32 as i64,
    );
    0
}

// xlog_recover(log) -> int
#[kprobe]
pub fn log_recover_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    stash(H_LOG_RECOVER, a);
    log_mount(kind::LOG_RECOVER_ENTER, a[0], 0);
    0
}
#[kretprobe]
pub fn log_recover_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_LOG_RECOVER);
    log_mount(kind::LOG_RECOVER_EXIT, a[0], krp_ret(&ctx) as i32 as i64);
    0
}

#[fentry(function = "xlog_recover")]
pub fn log_recover_fentry(ctx: FEntryContext) -> i32 {
    log_mount(kind::LOG_RECOVER_ENTER, ctx.arg(0), 0);
    0
}
#[fexit(function = "xlog_recover")]
pub fn log_recover_fexit(ctx: FExitContext) -> i32 {
    log_mount(
        kind::LOG_RECOVER_EXIT,
        ctx.arg(0),
        ctx.arg::<u64>(1) as i32 as i64,
    );
    0
}

// xlog_recover_finish(log) -> int
#[kprobe]
pub fn log_recover_finish_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    stash(H_LOG_RECOVER_FINISH, a);
    log_mount(kind::LOG_RECOVER_FINISH_ENTER, a[0], 0);
    0
}
#[kretprobe]
pub fn log_recover_finish_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_LOG_RECOVER_FINISH);
    log_mount(
        kind::LOG_RECOVER_FINISH_EXIT,
        a[0],
        krp_ret(&ctx) as i32 as i64,
    );
    0
}

#[fentry(function = "xlog_recover_finish")]
pub fn log_recover_finish_fentry(ctx: FEntryContext) -> i32 {
    log_mount(kind::LOG_RECOVER_FINISH_ENTER, ctx.arg(0), 0);
    0
}
#[fexit(function = "xlog_recover_finish")]
pub fn log_recover_finish_fexit(ctx: FExitContext) -> i32 {
    log_mount(
        kind::LOG_RECOVER_FINISH_EXIT,
        ctx.arg(0),
        ctx.arg::<u64>(1) as i32 as i64,
    );
    0
}

// vfs_get_tree(fc) -> int: the ready edge.
#[kprobe]
pub fn get_tree_kprobe(ctx: ProbeContext) -> u32 {
    stash(H_GET_TREE, kp_args(&ctx));
    0
}
#[kretprobe]
pub fn get_tree_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_GET_TREE);
    on_get_tree_exit(a[0], krp_ret(&ctx) as i32 as i64);
    0
}
#[fexit(function = "vfs_get_tree")]
pub fn get_tree_fexit(ctx: FExitContext) -> i32 {
    on_get_tree_exit(ctx.arg::<u64>(0), ctx.arg::<u64>(1) as i32 as i64);
    0
}

// xfs_fs_put_super(sb): unmount.
#[kprobe]
pub fn put_super_kprobe(ctx: ProbeContext) -> u32 {
    sb_mount(kind::PUT_SUPER, ctx.arg::<u64>(0).unwrap_or(0), 0);
    0
}

#[fentry(function = "xfs_fs_put_super")]
pub fn put_super_fentry(ctx: FEntryContext) -> i32 {
    sb_mount(kind::PUT_SUPER, ctx.arg(0), 0);
    0
}

// memory_failure(pfn, flags) -> int
#[kprobe]
pub fn memory_failure_kprobe(ctx: ProbeContext) -> u32 {
    let a = kp_args(&ctx);
    stash(H_MEMORY_FAILURE, a);
    on_memory_failure(kind::MEMORY_FAILURE_ENTER, a[0], a[1], 0);
    0
}
#[kretprobe]
pub fn memory_failure_kretprobe(ctx: RetProbeContext) -> u32 {
    let a = unstash(H_MEMORY_FAILURE);
    on_memory_failure(
        kind::MEMORY_FAILURE_EXIT,
        a[0],
        a[1],
        krp_ret(&ctx) as i32 as i64,
    );
    0
}
#[fentry(function = "memory_failure")]
pub fn memory_failure_fentry(ctx: FEntryContext) -> i32 {
    on_memory_failure(kind::MEMORY_FAILURE_ENTER, ctx.arg(0), ctx.arg(1), 0);
    0
}
#[fexit(function = "memory_failure")]
pub fn memory_failure_fexit(ctx: FExitContext) -> i32 {
    let ret = ctx.arg::<u64>(2) as i32 as i64;
    on_memory_failure(kind::MEMORY_FAILURE_EXIT, ctx.arg(0), ctx.arg(1), ret);
    0
}

// ---------------------------------------------------------------------------------------------
// Tracepoints: stable ABI, the only thing some kernels (this project's host among them) allow.

#[inline(always)]
fn tp_read<T>(ctx: &TracePointContext, off: u32) -> Option<T> {
    if off == Offsets::UNKNOWN {
        return None;
    }
    unsafe { ctx.read_at::<T>(off as usize).ok() }
}

/// `ras:memory_failure_event` (or `memory_failure:memory_failure_event`).
#[tracepoint]
pub fn mf_event(ctx: TracePointContext) -> u32 {
    let o = offsets();
    let payload = MemoryFailure {
        pfn: tp_read::<u64>(&ctx, o.tp_mf_pfn).unwrap_or(0),
        ret: 0,
        flags: 0,
        mf_type: tp_read::<i32>(&ctx, o.tp_mf_type).unwrap_or(-1),
        result: tp_read::<i32>(&ctx, o.tp_mf_result).unwrap_or(-1),
        _pad: 0,
    };
    emit(kind::MF_EVENT, Payload { mf: payload });
    0
}

#[inline(always)]
fn on_sys_exit(ctx: &TracePointContext, which: u64) {
    let payload = Mount {
        holder: 0,
        arg: which,
        s_flags: 0,
        ret: tp_read::<i64>(ctx, offsets().tp_sys_ret).unwrap_or(0),
        dev: 0,
        _pad: 0,
    };
    emit(kind::SYSCALL_EXIT, Payload { mount: payload });
}

#[tracepoint]
pub fn sys_exit_mount(ctx: TracePointContext) -> u32 {
    on_sys_exit(&ctx, syscall::MOUNT);
    0
}
#[tracepoint]
pub fn sys_exit_fsconfig(ctx: TracePointContext) -> u32 {
    on_sys_exit(&ctx, syscall::FSCONFIG);
    0
}
#[tracepoint]
pub fn sys_exit_fsmount(ctx: TracePointContext) -> u32 {
    on_sys_exit(&ctx, syscall::FSMOUNT);
    0
}
#[tracepoint]
pub fn sys_exit_umount(ctx: TracePointContext) -> u32 {
    on_sys_exit(&ctx, syscall::UMOUNT);
    0
}

#[inline(always)]
fn on_xfs_tp(ctx: &TracePointContext, which: u64) {
    let payload = Mount {
        holder: 0,
        arg: which,
        s_flags: 0,
        ret: 0,
        dev: tp_read::<u32>(ctx, offsets().tp_xfs_dev).unwrap_or(0),
        _pad: 0,
    };
    emit(kind::XFS_TRACEPOINT, Payload { mount: payload });
}

#[tracepoint]
pub fn xfs_log_recover(ctx: TracePointContext) -> u32 {
    on_xfs_tp(&ctx, xfs_tp::LOG_RECOVER);
    0
}
#[tracepoint]
pub fn xfs_log_umount_write(ctx: TracePointContext) -> u32 {
    on_xfs_tp(&ctx, xfs_tp::LOG_UMOUNT_WRITE);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
