//! The hook table: every kernel function and tracepoint notify probes, what each tells, and the
//! BPF programs (notify-ebpf) of each attach flavour.
//!
//! Both tables are expanded from the one declaration of the hooks, `notify_common::hooks!`,
//! which notify-ebpf expands into the programs themselves: a program name here is derived from
//! the hook's name by the same rule as there (`<hook>_kprobe`, `<hook>_kretprobe`,
//! `<hook>_fentry`, `<hook>_fexit`, the hook's own name for a tracepoint).

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
    /// How many arguments it takes (fexit reads the return value after them).
    pub args: usize,
    /// What it tells us.
    pub role: &'static str,
    /// Whether notify's job needs it (for health checks): the notification itself and the
    /// holder's life.
    pub required: bool,
    /// The hook whose stash the kprobe return half reads first (`args_from` in the declaration):
    /// the only caller of this function, passing its own arguments. When that hook is attached by
    /// kprobe, or by fentry (then told to stash), this one's kprobe entry program is not attached.
    pub args_from: Option<&'static str>,
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
    /// Never empty (the declaration's grammar needs one).
    pub candidates: &'static [(&'static str, &'static str)],
    pub role: &'static str,
}

use At::{Entry, Return};

/// Expands `notify_common::hooks!` into [`HOOKS`] and [`TRACEPOINTS`]. The halves each flavour
/// may list are those notify-ebpf's `programs!` accepts; anything else does not compile.
macro_rules! tables {
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
        /// Every function hook, in the order of the story they tell.
        pub const HOOKS: &[Hook] = &[
            $(
                Hook {
                    name: stringify!($name),
                    function: $function,
                    args: $args,
                    role: $role,
                    required: $required,
                    args_from: tables!(@outer $($outer)?),
                    kprobe: tables!(@kprobe $name [$($kprobe)*]),
                    fentry: tables!(@fentry $name [$($fentry)*]),
                },
            )*
        ];

        /// Tracepoints: stable, and all some kernels allow.
        pub const TRACEPOINTS: &[TpHook] = &[
            $(
                TpHook {
                    name: stringify!($tp),
                    program: stringify!($tp),
                    candidates: &[$(($group, $event)),+],
                    role: $tp_role,
                },
            )*
        ];
    };

    (@outer) => {
        None
    };
    (@outer $outer:ident) => {
        Some(stringify!($outer))
    };

    (@kprobe $name:ident [entry, return]) => {
        &[
            (concat!(stringify!($name), "_kprobe"), Entry),
            (concat!(stringify!($name), "_kretprobe"), Return),
        ]
    };
    (@kprobe $name:ident [entry]) => {
        &[(concat!(stringify!($name), "_kprobe"), Entry)]
    };

    (@fentry $name:ident [entry, return]) => {
        &[
            (concat!(stringify!($name), "_fentry"), Entry),
            (concat!(stringify!($name), "_fexit"), Return),
        ]
    };
    (@fentry $name:ident [entry]) => {
        &[(concat!(stringify!($name), "_fentry"), Entry)]
    };
    (@fentry $name:ident [return]) => {
        &[(concat!(stringify!($name), "_fexit"), Return)]
    };
    (@fentry $name:ident []) => {
        &[]
    };
}

notify_common::hooks!(tables);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::attach::EBPF_OBJECT;
    use aya_obj::ProgramSection;
    use std::collections::{BTreeSet, HashSet};

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
                assert_eq!(*p, format!("{}{suffix}", h.name));
            }
            for (p, at) in h.fentry {
                assert!(seen.insert(*p), "{p} twice");
                let suffix = if *at == Entry { "_fentry" } else { "_fexit" };
                assert!(p.ends_with(suffix), "{p}");
                assert_eq!(*p, format!("{}{suffix}", h.name));
            }
            assert!(!h.kprobe.is_empty(), "{} needs a kprobe flavour", h.name);
            assert_eq!(
                h.kprobe[0].1, Entry,
                "{}: a kprobe flavour starts at entry",
                h.name
            );
            assert!(h.args <= 4, "{}: the stash holds 4 arguments", h.name);
            if let Some(outer) = h.args_from {
                // attach_all decides on this hook's entry from the outer's outcome: the outer
                // comes first, stashes at its kprobe entry, and has the same arguments.
                let at = HOOKS.iter().position(|o| o.name == outer);
                let me = HOOKS.iter().position(|o| o.name == h.name);
                assert!(at < me, "{}: args_from {outer} must come before it", h.name);
                let o = &HOOKS[at.unwrap()];
                assert_eq!(
                    o.kprobe.len(),
                    2,
                    "{outer} must stash (kprobe entry and return)"
                );
                assert_eq!(o.args, h.args, "{}: {outer} has other arguments", h.name);
                // An fentry outer stashes in its fentry and marks the slot read in its fexit
                // (notify-ebpf's `programs!`): it needs both.
                assert!(
                    o.fentry.is_empty() || o.fentry.len() == 2,
                    "{outer}: an fentry flavour needs entry and return to stash for {}",
                    h.name
                );
                assert_eq!(
                    h.kprobe.len(),
                    2,
                    "{}: args_from needs a return half",
                    h.name
                );
            }
        }
        for t in TRACEPOINTS {
            assert!(seen.insert(t.program));
            assert_eq!(t.program, t.name);
            assert!(!t.candidates.is_empty(), "{}", t.name);
        }
    }

    /// The names the lab, the docs and `notify doctor` readers know: renaming a hook renames its
    /// programs, which must be on purpose.
    #[test]
    fn program_names_are_the_known_ones() {
        let names: Vec<&str> = HOOKS
            .iter()
            .flat_map(|h| h.kprobe.iter().chain(h.fentry))
            .map(|(p, _)| *p)
            .chain(TRACEPOINTS.iter().map(|t| t.program))
            .collect();
        assert_eq!(
            names,
            [
                "memory_failure_kprobe",
                "memory_failure_kretprobe",
                "memory_failure_fentry",
                "memory_failure_fexit",
                "notify_kprobe",
                "notify_kretprobe",
                "notify_fentry",
                "notify_fexit",
                "xfs_notify_kprobe",
                "xfs_notify_kretprobe",
                "xfs_notify_fexit",
                "holder_get_kprobe",
                "holder_get_kretprobe",
                "holder_get_fexit",
                "holder_put_kprobe",
                "holder_put_fentry",
                "fill_super_kprobe",
                "fill_super_kretprobe",
                "fill_super_fentry",
                "fill_super_fexit",
                "mountfs_kprobe",
                "mountfs_kretprobe",
                "mountfs_fentry",
                "mountfs_fexit",
                "log_recover_kprobe",
                "log_recover_kretprobe",
                "log_recover_fentry",
                "log_recover_fexit",
                "log_recover_finish_kprobe",
                "log_recover_finish_kretprobe",
                "log_recover_finish_fentry",
                "log_recover_finish_fexit",
                "get_tree_kprobe",
                "get_tree_kretprobe",
                "get_tree_fexit",
                "put_super_kprobe",
                "put_super_fentry",
                "mf_event",
                "sys_exit_mount",
                "sys_exit_fsconfig",
                "sys_exit_fsmount",
                "sys_exit_umount",
                "xfs_log_recover",
                "xfs_log_umount_write",
                "signal_generate",
            ]
        );
    }

    /// The object's programs as aya sees them, (name, program type), read by aya's own ELF
    /// parser: nothing is loaded, so no root or BPF is needed.
    fn object_programs() -> BTreeSet<(String, String)> {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the notify-ebpf object parses");
        obj.programs
            .iter()
            .map(|(name, p)| {
                let kind = match &p.section {
                    ProgramSection::KProbe => "kprobe".to_string(),
                    ProgramSection::KRetProbe => "kretprobe".to_string(),
                    ProgramSection::FEntry { sleepable: false } => "fentry".to_string(),
                    ProgramSection::FExit { sleepable: false } => "fexit".to_string(),
                    ProgramSection::TracePoint => "tracepoint".to_string(),
                    ProgramSection::Iter { sleepable: false } => "iter".to_string(),
                    other => format!("{other:?}"),
                };
                (name.clone(), kind)
            })
            .collect()
    }

    #[test]
    fn the_object_has_exactly_the_programs_the_tables_list() {
        let mut listed = BTreeSet::new();
        for h in HOOKS {
            for (p, at) in h.kprobe {
                let kind = if *at == Entry { "kprobe" } else { "kretprobe" };
                assert!(
                    listed.insert((p.to_string(), kind.to_string())),
                    "{p} twice"
                );
            }
            for (p, at) in h.fentry {
                let kind = if *at == Entry { "fentry" } else { "fexit" };
                assert!(
                    listed.insert((p.to_string(), kind.to_string())),
                    "{p} twice"
                );
            }
        }
        for t in TRACEPOINTS {
            assert!(listed.insert((t.program.to_string(), "tracepoint".to_string())));
        }
        // Not a hook: the mapper scan's VMA iterator (probe::vma_iter), which aya-obj must read
        // as an iterator from its hand-written `iter/task_vma` section.
        listed.insert((notify_common::PROG_VMA_ITER.to_string(), "iter".to_string()));
        let found = object_programs();
        let missing: Vec<_> = listed.difference(&found).collect();
        let unlisted: Vec<_> = found.difference(&listed).collect();
        assert!(
            missing.is_empty() && unlisted.is_empty(),
            "listed but not in the object (or of another type): {missing:?}; in the object but \
             not listed: {unlisted:?}"
        );
    }

    /// attach's `set_fentry_stash` writes one u64 at index 0, a bit per hook in HOOKS order (the
    /// BPF side's `StashKey`, numbered from the same declaration): the map must be that shape,
    /// and every hook must have a bit.
    #[test]
    fn the_fentry_stash_map_holds_a_bit_per_hook() {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the notify-ebpf object parses");
        let m = obj
            .maps
            .get(notify_common::MAP_FENTRY_STASH)
            .expect("FENTRY_STASH in the object");
        assert_eq!(
            m.map_type(),
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_ARRAY as u32
        );
        assert_eq!((m.value_size(), m.max_entries()), (8, 1));
        assert!(HOOKS.len() <= 64, "one u64 of bits");
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
