//! The ABI shared by the BPF programs (notify-ebpf) and the agent (notify-user): the events and
//! the hooks.
//!
//! Events: everything here is `#[repr(C)]` plain data: the kernel side writes [`Event`]s into a
//! ring buffer and userspace reads the same bytes back. Layout is pinned by the tests at the
//! bottom of this file, so a field added on one side without the other fails the build's tests
//! instead of silently shifting every field after it.
//!
//! Hooks: [`hooks!`] declares every kernel function and tracepoint notify probes, once. The BPF
//! side expands it into its programs, the user side into its attach table, so a program name,
//! an argument count or a flavour cannot differ between the two.
#![no_std]

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;

/// `SB_BORN` in `super_block::s_flags` (include/linux/fs.h): set by the VFS once `fill_super`
/// returned. XFS drops notifications while it is clear.
pub const SB_BORN: u64 = 1 << 29;

/// What happened. A plain `u32` rather than a Rust enum so that a kind written by a newer BPF
/// object decodes as "unknown" instead of being undefined behaviour.
pub mod kind {
    /// `dax_holder_notify_failure` entry: a memory failure reached the dax layer.
    pub const NOTIFY_ENTER: u32 = 1;
    /// `dax_holder_notify_failure` return.
    pub const NOTIFY_EXIT: u32 = 2;
    /// `fs_dax_get_by_bdev` return: a filesystem registered as holder of a dax device.
    pub const HOLDER_GET: u32 = 3;
    /// `fs_put_dax`: the holder let go of the dax device.
    pub const HOLDER_PUT: u32 = 4;
    /// `xfs_fs_fill_super` entry.
    pub const FILL_SUPER_ENTER: u32 = 5;
    /// `xfs_fs_fill_super` return.
    pub const FILL_SUPER_EXIT: u32 = 6;
    /// `xfs_mountfs` entry.
    pub const MOUNTFS_ENTER: u32 = 7;
    /// `xfs_mountfs` return.
    pub const MOUNTFS_EXIT: u32 = 8;
    /// `xlog_recover` entry (log recovery starts, if the log is dirty).
    pub const LOG_RECOVER_ENTER: u32 = 9;
    /// `xlog_recover` return.
    pub const LOG_RECOVER_EXIT: u32 = 10;
    /// `xlog_recover_finish` entry (second half of recovery: intents, unlinked inodes).
    pub const LOG_RECOVER_FINISH_ENTER: u32 = 11;
    /// `xlog_recover_finish` return.
    pub const LOG_RECOVER_FINISH_EXIT: u32 = 12;
    /// `vfs_get_tree` return: where the VFS sets `SB_BORN`, the ready edge.
    pub const GET_TREE_EXIT: u32 = 13;
    /// `xfs_fs_put_super` entry: unmount.
    pub const PUT_SUPER: u32 = 14;
    /// `xfs_dax_notify_failure` return: XFS's own verdict (-EIO when it dropped one).
    pub const XFS_NOTIFY_EXIT: u32 = 15;
    /// `memory_failure` entry.
    pub const MEMORY_FAILURE_ENTER: u32 = 16;
    /// `memory_failure` return.
    pub const MEMORY_FAILURE_EXIT: u32 = 17;
    /// `memory_failure_event` tracepoint (group `ras` or `memory_failure`).
    pub const MF_EVENT: u32 = 18;
    /// A mount-family syscall returned (`syscalls:sys_exit_{mount,fsconfig,fsmount,umount}`):
    /// the coarse mount edge on kernels where the function probes cannot attach.
    /// `Mount::arg` is one of [`super::syscall`], `Mount::ret` the return value.
    pub const SYSCALL_EXIT: u32 = 19;
    /// An XFS tracepoint: `Mount::arg` is one of [`super::xfs_tp`], `Mount::dev` its `dev`.
    pub const XFS_TRACEPOINT: u32 = 20;
    /// `signal:signal_generate` for SIGBUS: the kernel (or a process) sends one. The header is
    /// the sender's; [`super::Signal`] names the target.
    pub const SIGBUS: u32 = 21;

    /// Highest kind this ABI knows.
    pub const MAX: u32 = SIGBUS;
}

/// Which syscall a [`kind::SYSCALL_EXIT`] event reports.
pub mod syscall {
    pub const MOUNT: u64 = 1;
    pub const FSCONFIG: u64 = 2;
    pub const FSMOUNT: u64 = 3;
    pub const UMOUNT: u64 = 4;
}

/// Which XFS tracepoint a [`kind::XFS_TRACEPOINT`] event reports.
pub mod xfs_tp {
    /// `xfs:xfs_log_recover`: log recovery found a dirty log and replays it.
    pub const LOG_RECOVER: u64 = 1;
    /// `xfs:xfs_log_umount_write`: the unmount record is written (clean unmount).
    pub const LOG_UMOUNT_WRITE: u64 = 2;
}

/// Readiness of the holder as read in the kernel when the notification arrived.
pub mod readiness {
    /// The dax device has no holder (`holder_data` is NULL).
    pub const NO_HOLDER: u32 = 0;
    /// A holder exists but its superblock could not be read (offsets unknown, not XFS, fault).
    pub const UNKNOWN: u32 = 1;
    /// The holder's superblock does not have `SB_BORN`: XFS will drop the notification.
    pub const NOT_BORN: u32 = 2;
    /// The holder's superblock has `SB_BORN`.
    pub const BORN: u32 = 3;
}

/// Common header of every event.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Global sequence number, taken with an atomic fetch-add in BPF: the true order of events
    /// across CPUs (ktime alone can tie or invert across CPUs).
    pub seq: u64,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ktime_ns: u64,
    /// `bpf_get_current_pid_tgid()`: tgid in the high half, thread id in the low half.
    pub pid_tgid: u64,
    /// CPU the event was recorded on.
    pub cpu: u32,
    /// One of [`kind`].
    pub kind: u32,
    /// `comm` of the current task, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// `dax_holder_notify_failure(dax_dev, off, len, mf_flags)` entry, with the holder as the kernel
/// saw it at that instant.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub dax_dev: u64,
    /// `dax_dev->holder_data` (for XFS the `struct xfs_mount *`), 0 if none or unreadable.
    pub holder: u64,
    /// `dax_dev->holder_ops`, 0 if none or unreadable.
    pub holder_ops: u64,
    /// Byte offset on the dax device.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// `holder->m_super->s_flags` when readable, else 0.
    pub s_flags: u64,
    /// `mf_flags` (MF_ACTION_REQUIRED, MF_SW_SIMULATED, MF_MEM_PRE_REMOVE...).
    pub mf_flags: u32,
    /// One of [`readiness`].
    pub readiness: u32,
    /// `holder->m_super->s_dev` (kernel-encoded dev_t) when readable, else 0: the block device
    /// of the filesystem, known without having watched its mount.
    pub dev: u32,
    pub _pad: u32,
}

/// A function's return, with the arguments needed to tie it to its entry.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Return {
    /// The object the function worked on: dax_dev for notify, the holder for mount phases.
    pub object: u64,
    /// Offset (notify) or pfn (memory_failure), 0 otherwise.
    pub offset: u64,
    /// Length (notify), 0 otherwise.
    pub len: u64,
    /// Return value, sign-extended.
    pub ret: i64,
}

/// `fs_dax_get_by_bdev(bdev, &start_off, holder, ops)` return or `fs_put_dax(dax_dev, holder)`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    /// The dax device (0 when `fs_dax_get_by_bdev` found none: not a dax-capable device).
    pub dax_dev: u64,
    /// The holder pointer (XFS: `struct xfs_mount *`).
    pub holder: u64,
    /// The holder's operations table.
    pub holder_ops: u64,
    /// Partition start offset in bytes (`*start_off` after the call), 0 for put.
    pub start_off: u64,
    /// `bdev->bd_dev` (kernel-encoded dev_t: major << 20 | minor), 0 when unknown.
    pub dev: u32,
    pub _pad: u32,
}

/// A step of the XFS mount path.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// The holder (`struct xfs_mount *`) when it could be read, else 0.
    pub holder: u64,
    /// The function's own first argument (sb, mp, log or fs_context).
    pub arg: u64,
    /// `sb->s_flags` when known.
    pub s_flags: u64,
    /// Return value for exits, 0 for entries.
    pub ret: i64,
    /// `sb->s_dev` (kernel-encoded dev_t), 0 when unknown.
    pub dev: u32,
    pub _pad: u32,
}

/// `memory_failure(pfn, flags)` entry/exit and the `memory_failure_event` tracepoint.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryFailure {
    pub pfn: u64,
    /// Return value of `memory_failure` (exit only).
    pub ret: i64,
    /// `flags` argument (entry, exit).
    pub flags: u32,
    /// Tracepoint: `type` (an `enum mf_action_page_type`, version dependent: decode from the
    /// kernel's format file, never a fixed table).
    pub mf_type: i32,
    /// Tracepoint: `result` (`enum mf_result`).
    pub result: i32,
    pub _pad: u32,
}

/// `signal:signal_generate` of a SIGBUS: who gets it and why (the sender is the header's task).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Signal {
    /// The signal (SIGBUS, 7).
    pub sig: i32,
    /// `si_code`: BUS_MCEERR_AR 4 / BUS_MCEERR_AO 5 (memory-failure kills, DAX faults on a
    /// listed sector from 6.12), BUS_ADRERR 2 (a DAX fault on 6.1), SI_USER 0 / SI_QUEUE -1
    /// (sent by a process, notify's own included).
    pub code: i32,
    /// The target thread's id.
    pub target: i32,
    /// 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 info lost.
    pub result: i32,
    /// The target's comm.
    pub comm: [u8; COMM_LEN],
}

/// Raw bytes of any payload; also the size every payload is padded to.
pub const PAYLOAD_WORDS: usize = 8;

/// The typed payload. Which member is valid is given by [`Header::kind`].
#[repr(C)]
#[derive(Copy, Clone)]
pub union Payload {
    pub notify: Notify,
    pub ret: Return,
    pub holder: Holder,
    pub mount: Mount,
    pub mf: MemoryFailure,
    pub signal: Signal,
    pub raw: [u64; PAYLOAD_WORDS],
}

impl Default for Payload {
    fn default() -> Self {
        Payload {
            raw: [0; PAYLOAD_WORDS],
        }
    }
}

/// One record in the ring buffer.
#[repr(C)]
#[derive(Copy, Clone, Default)]
pub struct Event {
    pub header: Header,
    pub payload: Payload,
}

/// Byte offsets of the kernel structure fields the probes read. They come from the running
/// kernel's BTF (vmlinux and module BTF) at load time and are handed to the BPF side as a
/// global; nothing is hard-coded for one kernel. `UNKNOWN` marks a field the loader could not
/// find: the probe then skips that read and says so through the event (e.g.
/// [`readiness::UNKNOWN`]).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Offsets {
    /// `struct dax_device::holder_data` (drivers/dax/super.c, in vmlinux BTF).
    pub dax_holder_data: u32,
    /// `struct dax_device::holder_ops`.
    pub dax_holder_ops: u32,
    /// `struct xfs_mount::m_super` (xfs module BTF).
    pub xfs_m_super: u32,
    /// `struct xlog::l_mp` (xfs module BTF).
    pub xlog_l_mp: u32,
    /// `struct super_block::s_flags`.
    pub sb_s_flags: u32,
    /// `struct super_block::s_fs_info`.
    pub sb_s_fs_info: u32,
    /// `struct super_block::s_dev`.
    pub sb_s_dev: u32,
    /// `struct fs_context::root`.
    pub fc_root: u32,
    /// `struct dentry::d_sb`.
    pub dentry_d_sb: u32,
    /// `struct block_device::bd_dev`.
    pub bdev_bd_dev: u32,
    /// `memory_failure_event` tracepoint: offsets of `pfn`, `type`, `result` in the raw record.
    pub tp_mf_pfn: u32,
    pub tp_mf_type: u32,
    pub tp_mf_result: u32,
    /// `xfs:*` tracepoints: offset of `dev`.
    pub tp_xfs_dev: u32,
    /// `syscalls:sys_exit_*` tracepoints: offset of `ret`.
    pub tp_sys_ret: u32,
    /// `signal:signal_generate`: offsets of `sig`, `code`, `pid`, `comm`, `result`.
    pub tp_sig_sig: u32,
    pub tp_sig_code: u32,
    pub tp_sig_pid: u32,
    pub tp_sig_comm: u32,
    pub tp_sig_result: u32,
    /// The VMA iterator (`iter/task_vma`): `task_struct::tgid`, `vm_area_struct::{vm_start,
    /// vm_end, vm_pgoff, vm_file}`, `file::f_inode`, `inode::{i_ino, i_sb}` (with
    /// `sb_s_dev` above: the (device, inode) /proc/PID/maps prints).
    pub task_tgid: u32,
    pub vma_vm_start: u32,
    pub vma_vm_end: u32,
    pub vma_vm_pgoff: u32,
    pub vma_vm_file: u32,
    pub file_f_inode: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
}

impl Offsets {
    pub const UNKNOWN: u32 = u32::MAX;

    /// All fields unknown: what the BPF object carries until the loader fills it in.
    pub const fn unknown() -> Self {
        Offsets {
            dax_holder_data: Self::UNKNOWN,
            dax_holder_ops: Self::UNKNOWN,
            xfs_m_super: Self::UNKNOWN,
            xlog_l_mp: Self::UNKNOWN,
            sb_s_flags: Self::UNKNOWN,
            sb_s_fs_info: Self::UNKNOWN,
            sb_s_dev: Self::UNKNOWN,
            fc_root: Self::UNKNOWN,
            dentry_d_sb: Self::UNKNOWN,
            bdev_bd_dev: Self::UNKNOWN,
            tp_mf_pfn: Self::UNKNOWN,
            tp_mf_type: Self::UNKNOWN,
            tp_mf_result: Self::UNKNOWN,
            tp_xfs_dev: Self::UNKNOWN,
            tp_sys_ret: Self::UNKNOWN,
            tp_sig_sig: Self::UNKNOWN,
            tp_sig_code: Self::UNKNOWN,
            tp_sig_pid: Self::UNKNOWN,
            tp_sig_comm: Self::UNKNOWN,
            tp_sig_result: Self::UNKNOWN,
            task_tgid: Self::UNKNOWN,
            vma_vm_start: Self::UNKNOWN,
            vma_vm_end: Self::UNKNOWN,
            vma_vm_pgoff: Self::UNKNOWN,
            vma_vm_file: Self::UNKNOWN,
            file_f_inode: Self::UNKNOWN,
            inode_i_ino: Self::UNKNOWN,
            inode_i_sb: Self::UNKNOWN,
        }
    }
}

impl Default for Offsets {
    fn default() -> Self {
        Self::unknown()
    }
}

/// Every hook, declared once: hands the whole list to the macro `$then`, which each side
/// defines to expand it (`notify_common::hooks!(programs);` in notify-ebpf makes the BPF
/// programs, `notify_common::hooks!(tables);` in notify-user its `HOOKS` and `TRACEPOINTS`).
///
/// A function hook is `name { function, args, kprobe: [halves], fentry: [halves], required,
/// role }`:
/// - `name`: the short name used in reports and metrics, and the stem of the program names:
///   `<name>_kprobe` and `<name>_kretprobe` (kprobe flavour), `<name>_fentry` and `<name>_fexit`
///   (fentry flavour).
/// - `function`: the kernel function.
/// - `args`: how many arguments it takes (at most 4, the width of the kprobe flavour's stash).
///   fexit reads the return value right after them.
/// - `kprobe`: `[entry]` or `[entry, return]`: the kprobe flavour always has an entry program;
///   a kretprobe cannot see the arguments, so with a `return` half the entry stashes them for it.
/// - `fentry`: the fentry flavour's halves, any of `entry` and `return` (`[]`: no fentry
///   flavour). fexit sees the arguments, so a hook that tells nothing at entry has no fentry.
/// - `args_from` (optional): a hook whose function is the only caller of this one and passes it
///   its own arguments. The kprobe return half then takes them from that hook's stash (left in
///   place for its own return), and when that hook is attached by kprobe, or by fentry (whose
///   entry then stashes too, on the loader's word, and whose fexit marks the slot read), the
///   loader does not attach this one's entry program: a kprobe entry less per call. The outer
///   needs kprobe `[entry, return]` and, if it has an fentry flavour, `[entry, return]` there.
/// - `required`: whether notify's job needs it (health checks): the notification itself and the
///   holder's life.
/// - `role`: what it tells, for reports.
///
/// A tracepoint hook is `name { candidates: [(group, event), ...], role }`: the program is
/// `name`, attached to the first candidate the kernel has.
///
/// The order is the order of the story they tell.
#[macro_export]
macro_rules! hooks {
    ($then:ident) => {
        $then! {
            functions {
                // memory_failure(pfn, flags) -> int
                memory_failure {
                    function: "memory_failure",
                    args: 2,
                    kprobe: [entry, return],
                    fentry: [entry, return],
                    required: false,
                    role: "a pfn is declared poisoned",
                }
                // dax_holder_notify_failure(dax_dev, off, len, mf_flags) -> int
                notify {
                    function: "dax_holder_notify_failure",
                    args: 4,
                    kprobe: [entry, return],
                    fentry: [entry, return],
                    required: true,
                    role: "the failure reaches the dax layer (entry: holder readiness; return: result)",
                }
                // xfs_dax_notify_failure(dax_dev, off, len, mf_flags) -> int
                xfs_notify {
                    function: "xfs_dax_notify_failure",
                    args: 4,
                    kprobe: [entry, return],
                    fentry: [return],
                    // Called only as `holder_ops->notify_failure` from
                    // dax_holder_notify_failure, with its arguments (drivers/dax/super.c).
                    args_from: notify,
                    required: false,
                    role: "XFS's own verdict (-EIO: not ready, dropped)",
                }
                // fs_dax_get_by_bdev(bdev, &start_off, holder, ops) -> struct dax_device *
                holder_get {
                    function: "fs_dax_get_by_bdev",
                    args: 4,
                    kprobe: [entry, return],
                    fentry: [return],
                    required: true,
                    role: "a filesystem registers as holder of a dax device",
                }
                // fs_put_dax(dax_dev, holder)
                holder_put {
                    function: "fs_put_dax",
                    args: 2,
                    kprobe: [entry],
                    fentry: [entry],
                    required: true,
                    role: "the holder releases the dax device",
                }
                // xfs_fs_fill_super(sb, fc) -> int
                fill_super {
                    function: "xfs_fs_fill_super",
                    args: 2,
                    kprobe: [entry, return],
                    fentry: [entry, return],
                    required: false,
                    role: "XFS mount starts / fill_super result",
                }
                // xfs_mountfs(mp) -> int
                mountfs {
                    function: "xfs_mountfs",
                    args: 1,
                    kprobe: [entry, return],
                    fentry: [entry, return],
                    required: false,
                    role: "XFS mounts the filesystem proper",
                }
                // xlog_recover(log) -> int
                log_recover {
                    function: "xlog_recover",
                    args: 1,
                    kprobe: [entry, return],
                    fentry: [entry, return],
                    required: false,
                    role: "log recovery (first pass)",
                }
                // xlog_recover_finish(log) -> int
                log_recover_finish {
                    function: "xlog_recover_finish",
                    args: 1,
                    kprobe: [entry, return],
                    fentry: [entry, return],
                    required: false,
                    role: "log recovery (intents, unlinked inodes)",
                }
                // vfs_get_tree(fc) -> int: the ready edge.
                get_tree {
                    function: "vfs_get_tree",
                    args: 1,
                    kprobe: [entry, return],
                    fentry: [return],
                    required: true,
                    role: "the VFS sets SB_BORN: the filesystem is ready",
                }
                // xfs_fs_put_super(sb): unmount.
                put_super {
                    function: "xfs_fs_put_super",
                    args: 1,
                    kprobe: [entry],
                    fentry: [entry],
                    required: false,
                    role: "unmount",
                }
            }
            tracepoints {
                mf_event {
                    // Released kernels have it in `ras`; a 2025 series moved it to
                    // `memory_failure` and a 2026 fix moved it back.
                    candidates: [
                        ("ras", "memory_failure_event"),
                        ("memory_failure", "memory_failure_event"),
                    ],
                    role: "memory-failure outcome per pfn (type, result)",
                }
                sys_exit_mount {
                    candidates: [("syscalls", "sys_exit_mount")],
                    role: "mount(2) returned",
                }
                sys_exit_fsconfig {
                    candidates: [("syscalls", "sys_exit_fsconfig")],
                    role: "fsconfig(2) returned (FSCONFIG_CMD_CREATE runs fill_super)",
                }
                sys_exit_fsmount {
                    candidates: [("syscalls", "sys_exit_fsmount")],
                    role: "fsmount(2) returned",
                }
                sys_exit_umount {
                    candidates: [("syscalls", "sys_exit_umount")],
                    role: "umount(2) returned",
                }
                xfs_log_recover {
                    candidates: [("xfs", "xfs_log_recover")],
                    role: "XFS replays a dirty log",
                }
                xfs_log_umount_write {
                    candidates: [("xfs", "xfs_log_umount_write")],
                    role: "XFS writes its unmount record",
                }
                signal_generate {
                    candidates: [("signal", "signal_generate")],
                    role: "a SIGBUS is sent: the kernel's memory-failure kills and DAX faults",
                }
            }
        }
    };
}

/// Name of the ring buffer map.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the per-CPU counter of events the ring buffer had no room for.
pub const MAP_LOST: &str = "LOST";
/// Name of the array map (one u64, a bit per function hook in [`hooks!`] order) saying which
/// hooks' fentry programs stash their arguments: `args_from` outers, set by the loader when an
/// inner kretprobe will take them from there.
pub const MAP_FENTRY_STASH: &str = "FENTRY_STASH";
/// Name of the global holding the [`Offsets`].
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Default ring buffer size in bytes (power of two, multiple of the page size). The BPF object
/// is built with it; userspace sets the size it is given (`--ring-size`) before the maps are
/// created. The consumer maps the data pages twice, so the ring costs twice this in RSS.
/// Sized from the storm bench (docs/BENCHMARKS.md, storm): it holds ~9,300 records of ~112
/// bytes, about 1,500 poisoned pages with the consumer stopped.
pub const RING_BYTES: u32 = 1 << 20;
/// Smallest ring buffer userspace accepts: ~580 records.
pub const RING_BYTES_MIN: u32 = 64 << 10;
/// Largest ring buffer userspace accepts.
pub const RING_BYTES_MAX: u32 = 1 << 30;

/// The VMA iterator program (`iter/task_vma`) and the array map of what it looks for.
pub const PROG_VMA_ITER: &str = "vma_iter";
pub const MAP_VMA_TARGETS: &str = "VMA_TARGETS";
/// Slots of [`MAP_VMA_TARGETS`]; a scan for more targets reads the iterator once per chunk.
pub const VMA_TARGETS_MAX: u32 = 16;

/// One damaged file range the VMA iterator looks for: a VMA of the file (`dev`, `ino`: the
/// kernel's `s_dev` encoding, as /proc/PID/maps prints it) whose file window
/// `[vm_pgoff << page_shift, + (vm_end - vm_start))` overlaps `[lo, hi)` (bytes). `ino == 0`
/// ends the list (no inode 0 is ever mapped).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct VmaTarget {
    pub ino: u64,
    pub lo: u64,
    pub hi: u64,
    pub dev: u32,
    /// log2 of the page size (`vm_pgoff` counts pages).
    pub page_shift: u32,
}

/// What the VMA iterator writes (`bpf_seq_write`) for each VMA that hits a target: a candidate,
/// which userspace checks in /proc before it becomes a mapper.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct VmaHit {
    pub vm_start: u64,
    pub vm_end: u64,
    /// `vm_pgoff`: file offset of `vm_start` in pages.
    pub pgoff: u64,
    pub tgid: u32,
    /// Index of the target in [`MAP_VMA_TARGETS`].
    pub target: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are repr(C) plain old data with no padding the kernel could leave
    // uninitialised (explicit `_pad` fields), valid for any bit pattern.
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::VmaTarget {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<Header>(), 48);
        assert_eq!(align_of::<Header>(), 8);
        assert_eq!(offset_of!(Header, seq), 0);
        assert_eq!(offset_of!(Header, ktime_ns), 8);
        assert_eq!(offset_of!(Header, pid_tgid), 16);
        assert_eq!(offset_of!(Header, cpu), 24);
        assert_eq!(offset_of!(Header, kind), 28);
        assert_eq!(offset_of!(Header, comm), 32);
    }

    #[test]
    fn payload_layouts() {
        assert_eq!(size_of::<Notify>(), 64);
        assert_eq!(offset_of!(Notify, offset), 24);
        assert_eq!(offset_of!(Notify, mf_flags), 48);
        assert_eq!(offset_of!(Notify, readiness), 52);
        assert_eq!(offset_of!(Notify, dev), 56);
        assert_eq!(size_of::<Signal>(), 32);
        assert_eq!(offset_of!(Signal, comm), 16);
        assert_eq!(size_of::<Return>(), 32);
        assert_eq!(offset_of!(Return, ret), 24);
        assert_eq!(size_of::<Holder>(), 40);
        assert_eq!(offset_of!(Holder, start_off), 24);
        assert_eq!(offset_of!(Holder, dev), 32);
        assert_eq!(size_of::<Mount>(), 40);
        assert_eq!(offset_of!(Mount, ret), 24);
        assert_eq!(offset_of!(Mount, dev), 32);
        assert_eq!(size_of::<MemoryFailure>(), 32);
        assert_eq!(offset_of!(MemoryFailure, flags), 16);
        assert_eq!(offset_of!(MemoryFailure, result), 24);
    }

    #[test]
    fn payload_union_is_the_largest_member_and_raw_covers_it() {
        let largest = [
            size_of::<Notify>(),
            size_of::<Return>(),
            size_of::<Holder>(),
            size_of::<Mount>(),
            size_of::<MemoryFailure>(),
            size_of::<Signal>(),
        ]
        .into_iter()
        .max()
        .unwrap();
        assert!(PAYLOAD_WORDS * 8 >= largest);
        assert_eq!(size_of::<Payload>(), 64);
        assert_eq!(size_of::<Event>(), 48 + 64);
        assert_eq!(offset_of!(Event, payload), 48);
        assert_eq!(align_of::<Event>(), 8);
    }

    #[test]
    fn offsets_layout() {
        assert_eq!(size_of::<Offsets>(), 28 * 4);
        assert_eq!(size_of::<VmaTarget>(), 32);
        assert_eq!(size_of::<VmaHit>(), 32);
        assert_eq!(offset_of!(Offsets, xfs_m_super), 8);
        assert_eq!(offset_of!(Offsets, tp_mf_result), 48);
        assert_eq!(Offsets::default().sb_s_flags, Offsets::UNKNOWN);
    }
}
