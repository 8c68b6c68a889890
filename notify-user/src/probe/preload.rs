//! Loading the programs that will be attached before attaching them, several at a time.
//!
//! A program load is the kernel verifying it: CPU in the kernel, on the loading thread, and
//! independent of every other program's load. Attaching must stay one hook at a time (each
//! hook's outcome decides its fallback), but the loads of the flavour each hook will try
//! first are known in advance, so they run here on one thread per CPU. A load that fails
//! here is simply left unloaded: the attach step loads it again and reports the error as it
//! always did.

use aya::{Ebpf, programs::Program};

use crate::{
    kernel::kallsyms::Kallsyms,
    probe::{
        attach::{AttachMode, Location, locate},
        hooks::{At, HOOKS, TRACEPOINTS},
    },
};

/// The programs the attach step will load first: the kprobe flavour of each hook that will try
/// kprobes first (mode kprobe, or a function in a module, which fentry cannot reach with aya
/// 0.14, or a hook without an fentry flavour) and every tracepoint program whose tracepoint
/// exists. fentry programs are not among them: their load names the target and is the attach
/// step's test of whether this kernel has trampolines at all. Nor is the entry program of an
/// `args_from` hook whose outer hook's function is here: the outer stashes once attached (by
/// kprobe, or by fentry told to), and the attach step then leaves that entry unattached; should
/// the outer not attach after all, the attach step loads the entry itself.
pub fn planned(
    ksyms: &Kallsyms,
    mode: AttachMode,
    kprobes_ok: bool,
    tracepoint_exists: &dyn Fn(&str, &str) -> bool,
) -> Vec<&'static str> {
    let mut names = Vec::new();
    if kprobes_ok {
        for hook in HOOKS {
            let kprobe_first = match locate(ksyms, hook.function) {
                Location::Absent => continue,
                Location::Module(_) => true,
                Location::Vmlinux => mode == AttachMode::Kprobe || hook.fentry.is_empty(),
            };
            if kprobe_first {
                let outer_here = hook.args_from.is_some_and(|outer| {
                    HOOKS.iter().any(|o| {
                        o.name == outer && !matches!(locate(ksyms, o.function), Location::Absent)
                    })
                });
                names.extend(
                    hook.kprobe
                        .iter()
                        .filter(|(_, at)| !(outer_here && *at == At::Entry))
                        .map(|(p, _)| *p),
                );
            }
        }
    }
    for tp in TRACEPOINTS {
        if tp.candidates.iter().any(|(g, n)| tracepoint_exists(g, n)) {
            names.push(tp.program);
        }
    }
    names
}

/// Loads the named kprobe and tracepoint programs, spread over `threads` threads. Returns how
/// many loaded.
pub fn load(ebpf: &mut Ebpf, names: &[&str], threads: usize) -> usize {
    let mut progs: Vec<&mut Program> = ebpf
        .programs_mut()
        .filter(|(n, _)| names.contains(n))
        .map(|(_, p)| p)
        .filter(|p| p.fd().is_err())
        .collect();
    let threads = threads.clamp(1, progs.len().max(1));
    // Round-robin, so each thread gets a similar mix of entry and return programs.
    let mut shares: Vec<Vec<&mut Program>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, p) in progs.drain(..).enumerate() {
        shares[i % threads].push(p);
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = shares
            .into_iter()
            .map(|share| {
                s.spawn(move || {
                    share
                        .into_iter()
                        .map(|p| match p {
                            Program::KProbe(k) => k.load().is_ok(),
                            Program::TracePoint(t) => t.load().is_ok(),
                            _ => false,
                        })
                        .filter(|&ok| ok)
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    })
}

/// One loading thread per CPU this process may run on.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan follows the attach step's order of trial: kprobes first for module functions
    /// and in kprobe mode, fentry first (so nothing preloaded) for vmlinux functions otherwise.
    #[test]
    fn plans_the_flavour_each_hook_tries_first() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T memory_failure\n\
             ffffffff81000100 T dax_holder_notify_failure\n\
             ffffffffc0000000 t xfs_fs_fill_super\t[xfs]\n",
        );
        let only_mount = |g: &str, n: &str| g == "syscalls" && n == "sys_exit_mount";
        let kp = planned(&k, AttachMode::Kprobe, true, &only_mount);
        for p in [
            "memory_failure_kprobe",
            "memory_failure_kretprobe",
            "notify_kprobe",
            "fill_super_kprobe",
            "fill_super_kretprobe",
        ] {
            assert!(kp.contains(&p), "{p} in {kp:?}");
        }
        // Absent functions are not loaded; one tracepoint program, the one that exists.
        assert!(!kp.iter().any(|p| p.starts_with("mountfs")), "{kp:?}");
        assert_eq!(
            kp.iter()
                .filter(|p| !p.contains("kprobe") && !p.contains("kretprobe"))
                .count(),
            1,
            "{kp:?}"
        );
        let auto = planned(&k, AttachMode::Auto, true, &only_mount);
        assert!(auto.contains(&"fill_super_kprobe"), "{auto:?}");
        assert!(!auto.contains(&"memory_failure_kprobe"), "{auto:?}");
        let none = planned(&k, AttachMode::Kprobe, false, &|_: &str, _: &str| false);
        assert!(none.is_empty(), "{none:?}");
    }

    /// xfs_dax_notify_failure's kretprobe reads the stash of dax_holder_notify_failure (its
    /// `args_from`), whose kprobe or fentry stashes once attached: its entry program is loaded
    /// only where that outer function is missing, so that the entry will be attached.
    #[test]
    fn an_args_from_entry_is_planned_only_without_its_outer() {
        let with_outer = Kallsyms::parse(
            "ffffffff81000100 T dax_holder_notify_failure\n\
             ffffffffc0000100 t xfs_dax_notify_failure\t[xfs]\n",
        );
        let without = Kallsyms::parse("ffffffffc0000100 t xfs_dax_notify_failure\t[xfs]\n");
        let no_tp = |_: &str, _: &str| false;
        for mode in [AttachMode::Auto, AttachMode::Fentry, AttachMode::Kprobe] {
            let p = planned(&with_outer, mode, true, &no_tp);
            assert!(p.contains(&"xfs_notify_kretprobe"), "{mode:?}: {p:?}");
            assert!(!p.contains(&"xfs_notify_kprobe"), "{mode:?}: {p:?}");
            let p = planned(&without, mode, true, &no_tp);
            assert!(
                p.contains(&"xfs_notify_kprobe") && p.contains(&"xfs_notify_kretprobe"),
                "{mode:?}: {p:?}"
            );
        }
    }
}
