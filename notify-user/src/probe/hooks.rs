//! The hook table: every kernel function and tracepoint notify probes, what each tells, and the
//! BPF programs (notify-ebpf) of each attach flavour.

/// Which half of a function a program runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    Entry,
    Return,
}

/// A kernel function hook.
#[derive(Debug)]
pub struct Hook {
    /// Short name, used in reports and metrics.
    pub name: &'static str,
    /// The kernel function.
    pub function: &'static str,
    /// What it tells us.
    pub role: &'static str,
    /// Whether notify's job needs it (for health checks): the notification itself and the
    /// holder's life.
    pub required: bool,
    /// kprobe flavour programs.
    pub kprobe: &'static [(&'static str, At)],
    /// fentry flavour programs (empty: no fentry flavour).
    pub fentry: &'static [(&'static str, At)],
}

/// A tracepoint hook: the first (group, name) that exists is used.
#[derive(Debug)]
pub struct TpHook {
    pub name: &'static str,
    pub program: &'static str,
    pub candidates: &'static [(&'static str, &'static str)],
    pub role: &'static str,
}

use At::{Entry, Return};

/// Every function hook, in the order of the story they tell.
pub const HOOKS: &[Hook] = &[
    Hook {
        name: "memory_failure",
        function: "memory_failure",
        role: "a pfn is declared poisoned",
        required: false,
        kprobe: &[
            ("memory_failure_kprobe", Entry),
            ("memory_failure_kretprobe", Return),
        ],
        fentry: &[
            ("memory_failure_fentry", Entry),
            ("memory_failure_fexit", Return),
        ],
    },
    Hook {
        name: "notify",
        function: "dax_holder_notify_failure",
        role: "the failure reaches the dax layer (entry: holder readiness; return: result)",
        required: true,
        kprobe: &[("notify_kprobe", Entry), ("notify_kretprobe", Return)],
        fentry: &[("notify_fentry", Entry), ("notify_fexit", Return)],
    },
    Hook {
        name: "xfs_notify",
        function: "xfs_dax_notify_failure",
        role: "XFS's own verdict (-EIO: not ready, dropped)",
        required: false,
        kprobe: &[
            ("xfs_notify_kprobe", Entry),
            ("xfs_notify_kretprobe", Return),
        ],
        fentry: &[("xfs_notify_fexit", Return)],
    },
    Hook {
        name: "holder_get",
        function: "fs_dax_get_by_bdev",
        role: "a filesystem registers as holder of a dax device",
        required: true,
        kprobe: &[
            ("holder_get_kprobe", Entry),
            ("holder_get_kretprobe", Return),
        ],
        fentry: &[("holder_get_fexit", Return)],
    },
    Hook {
        name: "holder_put",
        function: "fs_put_dax",
        role: "the holder releases the dax device",
        required: true,
        kprobe: &[("holder_put_kprobe", Entry)],
        fentry: &[("holder_put_fentry", Entry)],
    },
    Hook {
        name: "fill_super",
        function: "xfs_fs_fill_super",
        role: "XFS mount starts / fill_super result",
        required: false,
        kprobe: &[
            ("fill_super_kprobe", Entry),
            ("fill_super_kretprobe", Return),
        ],
        fentry: &[("fill_super_fentry", Entry), ("fill_super_fexit", Return)],
    },
    Hook {
        name: "mountfs",
        function: "xfs_mountfs",
        role: "XFS mounts the filesystem proper",
        required: false,
        kprobe: &[("mountfs_kprobe", Entry), ("mountfs_kretprobe", Return)],
        fentry: &[("mountfs_fentry", Entry), ("mountfs_fexit", Return)],
    },
    Hook {
        name: "log_recover",
        function: "xlog_recover",
        role: "log recovery (first pass)",
        required: false,
        kprobe: &[
            ("log_recover_kprobe", Entry),
            ("log_recover_kretprobe", Return),
        ],
        fentry: &[("log_recover_fentry", Entry), ("log_recover_fexit", Return)],
    },
    Hook {
        name: "log_recover_finish",
        function: "xlog_recover_finish",
        role: "log recovery (intents, unlinked inodes)",
        required: false,
        kprobe: &[
            ("log_recover_finish_kprobe", Entry),
            ("log_recover_finish_kretprobe", Return),
        ],
        fentry: &[
            ("log_recover_finish_fentry", Entry),
            ("log_recover_finish_fexit", Return),
        ],
    },
    Hook {
        name: "get_tree",
        function: "vfs_get_tree",
        role: "the VFS sets SB_BORN: the filesystem is ready",
        required: true,
        kprobe: &[("get_tree_kprobe", Entry), ("get_tree_kretprobe", Return)],
        fentry: &[("get_tree_fexit", Return)],
    },
    Hook {
        name: "put_super",
        function: "xfs_fs_put_super",
        role: "unmount",
        required: false,
        kprobe: &[("put_super_kprobe", Entry)],
        fentry: &[("put_super_fentry", Entry)],
    },
];

/// Tracepoints: stable, and all some kernels allow.
pub const TRACEPOINTS: &[TpHook] = &[
    TpHook {
        name: "mf_event",
        program: "mf_event",
        // Released kernels have it in `ras`; a 2025 series moved it to `memory_failure` and a
        // 2026 fix moved it back.
        candidates: &[
            ("ras", "memory_failure_event"),
            ("memory_failure", "memory_failure_event"),
        ],
        role: "memory-failure outcome per pfn (type, result)",
    },
    TpHook {
        name: "sys_exit_mount",
        program: "sys_exit_mount",
        candidates: &[("syscalls", "sys_exit_mount")],
        role: "mount(2) returned",
    },
    TpHook {
        name: "sys_exit_fsconfig",
        program: "sys_exit_fsconfig",
        candidates: &[("syscalls", "sys_exit_fsconfig")],
        role: "fsconfig(2) returned (FSCONFIG_CMD_CREATE runs fill_super)",
    },
    TpHook {
        name: "sys_exit_fsmount",
        program: "sys_exit_fsmount",
        candidates: &[("syscalls", "sys_exit_fsmount")],
        role: "fsmount(2) returned",
    },
    TpHook {
        name: "sys_exit_umount",
        program: "sys_exit_umount",
        candidates: &[("syscalls", "sys_exit_umount")],
        role: "umount(2) returned",
    },
    TpHook {
        name: "xfs_log_recover",
        program: "xfs_log_recover",
        candidates: &[("xfs", "xfs_log_recover")],
        role: "XFS replays a dirty log",
    },
    TpHook {
        name: "xfs_log_umount_write",
        program: "xfs_log_umount_write",
        candidates: &[("xfs", "xfs_log_umount_write")],
        role: "XFS writes its unmount record",
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::attach::EBPF_OBJECT;
    use std::collections::HashSet;

    #[test]
    fn program_names_are_unique_and_follow_the_flavour_convention() {
        let mut seen = HashSet::new();
        for h in HOOKS {
            for (p, at) in h.kprobe {
                assert!(seen.insert(*p), "{p} twice");
                let suffix = if *at == Entry {
                    "_kprobe"
                } else {
                    "_kretprobe"
                };
                assert!(p.ends_with(suffix), "{p}");
            }
            for (p, at) in h.fentry {
                assert!(seen.insert(*p), "{p} twice");
                let suffix = if *at == Entry { "_fentry" } else { "_fexit" };
                assert!(p.ends_with(suffix), "{p}");
            }
            assert!(!h.kprobe.is_empty(), "{} needs a kprobe flavour", h.name);
        }
        for t in TRACEPOINTS {
            assert!(seen.insert(t.program));
        }
    }

    #[test]
    fn every_program_named_in_the_tables_is_in_the_object() {
        let obj = object_strings();
        for h in HOOKS {
            for (p, _) in h.kprobe.iter().chain(h.fentry) {
                assert!(obj.contains(*p), "{p} missing from notify-ebpf");
            }
        }
        for t in TRACEPOINTS {
            assert!(obj.contains(t.program), "{} missing", t.program);
        }
    }

    /// The object's bytes as text: program names appear verbatim in its string table.
    fn object_strings() -> String {
        // Function symbols' names appear verbatim in .strtab; a substring check is enough to
        // catch a renamed or deleted program.
        String::from_utf8_lossy(EBPF_OBJECT).into_owned()
    }
}
