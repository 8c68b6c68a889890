//! Attaching the probe set with the best method each kernel allows.
//!
//! Every hook has a kprobe flavour and, where it makes sense, an fentry/fexit flavour (same body
//! in notify-ebpf). `--attach auto` takes fentry where the kernel has BPF trampolines and the
//! function is in vmlinux (aya 0.14 resolves fentry targets only in vmlinux BTF, so functions in
//! modules such as xfs.ko take kprobes), kprobes otherwise. Tracepoints have one flavour. A hook
//! that cannot attach is reported with the reason and skipped; the rest run.

use std::{fmt, str::FromStr};

use anyhow::Context as _;
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, MapData},
    programs::{FEntry, FExit, KProbe, Program, TracePoint},
};
use notify_common::{GLOBAL_OFFSETS, MAP_EVENTS, MAP_FENTRY_STASH, Offsets, RING_BYTES};
use serde::Serialize;

use crate::{
    kernel::kallsyms::Kallsyms,
    probe::{
        hooks::{
            At::{self, Entry, Return},
            HOOKS, Hook, TRACEPOINTS, TpHook,
        },
        phases,
    },
};

/// The BPF object built by build.rs.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/notify-ebpf.o"));

/// How to attach function hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// fentry/fexit where possible, kprobe/kretprobe otherwise.
    Auto,
    /// fentry/fexit where the function is in vmlinux, kprobes for module functions.
    Fentry,
    /// kprobe/kretprobe for every hook.
    Kprobe,
}

impl FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "fentry" => Ok(AttachMode::Fentry),
            "kprobe" => Ok(AttachMode::Kprobe),
            other => Err(format!(
                "unknown attach mode {other:?}: use auto, fentry or kprobe"
            )),
        }
    }
}

/// The method a hook ended up attached with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Fentry,
    Kprobe,
    Tracepoint,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Fentry => "fentry",
            Method::Kprobe => "kprobe",
            Method::Tracepoint => "tracepoint",
        })
    }
}

/// How one hook fared.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub hook: &'static str,
    pub target: String,
    /// The method in use, or None if the hook is not attached.
    pub method: Option<Method>,
    /// Why a better method was not used, or why nothing attached.
    pub notes: Vec<String>,
    pub required: bool,
}

/// Loads the BPF object with the offsets filled in. Maps are created here; no program is
/// loaded into the kernel yet.
pub fn load_object(offsets: &Offsets) -> anyhow::Result<Ebpf> {
    load_object_with(prepare_loader(), offsets, RING_BYTES)
}

/// The part of loading that needs no offsets, to run while they are worked out: aya's loader
/// parses the whole vmlinux BTF when it is made, and its first load probes the kernel's BPF
/// features (a dozen trial loads).
pub fn prepare_loader() -> EbpfLoader<'static> {
    raise_memlock_rlimit();
    let _ = aya::features();
    EbpfLoader::new()
}

/// [`load_object`] with a loader from [`prepare_loader`] and a ring buffer of `ring_bytes`
/// (a power of two from 64K to 1G, as `ring_size_ok` in the ring module checks).
pub fn load_object_with<'a>(
    mut loader: EbpfLoader<'a>,
    offsets: &'a Offsets,
    ring_bytes: u32,
) -> anyhow::Result<Ebpf> {
    loader
        .map_max_entries(MAP_EVENTS, ring_bytes)
        .override_global(GLOBAL_OFFSETS, offsets, true)
        .load(EBPF_OBJECT)
        .context(
            "loading the BPF object failed: notify needs root (CAP_BPF and CAP_PERFMON) and a \
             kernel with BPF ring buffers (5.8+)",
        )
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
fn raise_memlock_rlimit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if ret != 0 {
        log::debug!(
            "setrlimit(RLIMIT_MEMLOCK) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Where a function lives, from kallsyms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Vmlinux,
    Module(String),
    Absent,
}

pub fn locate(ksyms: &Kallsyms, function: &str) -> Location {
    match ksyms.module_of(function) {
        None => Location::Absent,
        Some(None) => Location::Vmlinux,
        Some(Some(m)) => Location::Module(m.to_string()),
    }
}

/// Shorter error text: aya's errors nest the useful part (the errno, the verifier log head).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    // Verifier logs are long; the first lines say what failed.
    if s.len() > 400 {
        let mut end = 400;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `outer_stashes`: the hook's `args_from` hook stashes its arguments (attached by kprobe, or by
/// fentry told to stash), so this hook's return takes them from that stash and its entry program
/// is left unattached (and unloaded, if preloaded).
fn attach_kprobe_flavour(ebpf: &mut Ebpf, hook: &Hook, outer_stashes: bool) -> Result<(), String> {
    for (prog, at) in hook.kprobe {
        if outer_stashes && *at == Entry {
            unload(ebpf, &[(*prog, *at)]);
            continue;
        }
        let p: &mut KProbe = program(ebpf, prog)?
            .try_into()
            .map_err(|e| format!("{prog}: {e}"))?;
        // Loaded already when probe::preload did it.
        if p.fd().is_err() {
            p.load()
                .map_err(|e| format!("loading {prog}: {}", error_chain(&e)))?;
        }
        p.attach(hook.function, 0).map_err(|e| {
            format!(
                "attaching {} to {}: {}",
                match at {
                    Entry => "kprobe",
                    Return => "kretprobe",
                },
                hook.function,
                error_chain(&e)
            )
        })?;
    }
    Ok(())
}

fn attach_fentry_flavour(ebpf: &mut Ebpf, hook: &Hook, btf: &Btf) -> Result<(), String> {
    for (prog, at) in hook.fentry {
        match at {
            Entry => {
                let p: &mut FEntry = program(ebpf, prog)?
                    .try_into()
                    .map_err(|e| format!("{prog}: {e}"))?;
                p.load(hook.function, btf)
                    .map_err(|e| format!("loading fentry {prog}: {}", error_chain(&e)))?;
                p.attach().map_err(|e| {
                    format!("attaching fentry to {}: {}", hook.function, error_chain(&e))
                })?;
            }
            Return => {
                let p: &mut FExit = program(ebpf, prog)?
                    .try_into()
                    .map_err(|e| format!("{prog}: {e}"))?;
                p.load(hook.function, btf)
                    .map_err(|e| format!("loading fexit {prog}: {}", error_chain(&e)))?;
                p.attach().map_err(|e| {
                    format!("attaching fexit to {}: {}", hook.function, error_chain(&e))
                })?;
            }
        }
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Program, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the BPF object (stale build?)"))
}

/// Unloads a flavour's programs after a partial failure, so the fallback does not double-count.
fn unload(ebpf: &mut Ebpf, progs: &[(&'static str, At)]) {
    for (prog, _) in progs {
        let _ = match ebpf.program_mut(prog) {
            Some(Program::KProbe(p)) => p.unload(),
            Some(Program::FEntry(p)) => p.unload(),
            Some(Program::FExit(p)) => p.unload(),
            _ => Ok(()),
        };
    }
}

/// aya's parse of the vmlinux BTF, which fentry needs to name its target, made on the first
/// fentry attempt: a kprobe-only start (`--attach kprobe`, or every hook in a module) never
/// pays for it (~10 ms of CPU on a host, a large share of the start-up under emulation).
#[derive(Default)]
pub struct LazyBtf(std::cell::OnceCell<Result<Btf, String>>);

impl LazyBtf {
    /// A BTF already at hand (or why there is none).
    pub fn given(btf: Result<Btf, String>) -> LazyBtf {
        LazyBtf(std::cell::OnceCell::from(btf))
    }

    /// vmlinux BTF (needed for fentry), or why there is none.
    pub fn get(&self) -> Result<&Btf, String> {
        self.0
            .get_or_init(|| {
                let btf = Btf::from_sys_fs().map_err(|e| {
                    format!(
                        "no vmlinux BTF ({e}): fentry needs a kernel built with \
                         CONFIG_DEBUG_INFO_BTF"
                    )
                });
                phases::done("aya vmlinux BTF (for fentry)");
                btf
            })
            .as_ref()
            .map_err(|e| e.clone())
    }
}

/// What the environment offers for attaching, gathered once.
pub struct Env<'a> {
    pub ksyms: &'a Kallsyms,
    /// vmlinux BTF (needed for fentry), parsed when first needed.
    pub btf: &'a LazyBtf,
    /// Whether the kernel can do kprobes, with the reason when not.
    pub kprobes: Result<(), String>,
    /// Whether a tracepoint exists: (group, name) -> bool.
    pub tracepoint_exists: &'a dyn Fn(&str, &str) -> bool,
}

/// Attaches every hook by `mode`. Never fails as a whole: each hook's fate is in the outcomes.
pub fn attach_all(ebpf: &mut Ebpf, mode: AttachMode, env: &Env<'_>) -> Vec<Outcome> {
    // Set once an fentry load fails for a reason that is the kernel's, not the function's: no
    // point trying the next hook the same way.
    let mut trampolines_broken = None;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(HOOKS.len() + TRACEPOINTS.len());
    for hook in HOOKS {
        // The outer hook comes first in HOOKS (a unit test in hooks.rs holds it to that).
        let outer = hook.args_from.and_then(|outer| {
            let o = outcomes.iter().find(|o| o.hook == outer)?;
            Some((outer, o.method?))
        });
        // A kprobe outer always stashes. An fentry outer stashes only when told (FENTRY_STASH):
        // told before this hook's kretprobe is attached, so that it never finds a call whose
        // fentry did not stash (but one already inside the outer then: its return reads zeros,
        // as a kretprobe does after a missed entry), and untold below unless this hook did get
        // that kretprobe.
        let fentry_told = match outer {
            Some((outer, Method::Fentry)) => match set_fentry_stash(ebpf, outer, true) {
                Ok(()) => Some(outer),
                Err(e) => {
                    log::debug!(
                        "{outer}'s fentry cannot stash ({e}): {} keeps its entry",
                        hook.name
                    );
                    None
                }
            },
            _ => None,
        };
        let outer_stashes = fentry_told.is_some() || matches!(outer, Some((_, Method::Kprobe)));
        let o = attach_hook(
            ebpf,
            hook,
            mode,
            env,
            &mut trampolines_broken,
            outer_stashes,
        );
        if let Some(outer) = fentry_told
            && o.method != Some(Method::Kprobe)
        {
            // fexit (it reads the arguments itself) or not attached: nothing peeks.
            let _ = set_fentry_stash(ebpf, outer, false);
        }
        phases::done(&format!("attach {}", hook.name));
        outcomes.push(o);
    }
    outcomes.extend(TRACEPOINTS.iter().map(|tp| {
        let o = attach_tracepoint(ebpf, tp, env);
        phases::done(&format!("attach {}", tp.name));
        o
    }));
    outcomes
}

/// Turns the stash in `outer`'s fentry program on or off: its bit (the hook's place in
/// [`HOOKS`], which is notify-ebpf's `StashKey`, numbered from the same declaration) in the
/// FENTRY_STASH map. Its fexit then marks the slot read.
fn set_fentry_stash(ebpf: &mut Ebpf, outer: &str, on: bool) -> Result<(), String> {
    let bit = HOOKS
        .iter()
        .position(|h| h.name == outer)
        .ok_or_else(|| format!("no hook {outer}"))?;
    let map = ebpf
        .map_mut(MAP_FENTRY_STASH)
        .ok_or_else(|| format!("map {MAP_FENTRY_STASH} missing from the BPF object"))?;
    let mut arr: Array<&mut MapData, u64> = Array::try_from(map).map_err(|e| e.to_string())?;
    let mask = arr.get(&0, 0).map_err(|e| e.to_string())?;
    let mask = if on {
        mask | 1 << bit
    } else {
        mask & !(1 << bit)
    };
    arr.set(0, mask, 0).map_err(|e| e.to_string())
}

/// Attaches one hook by `mode` (used by `notify doctor` to try each method on its own).
pub fn attach_one(ebpf: &mut Ebpf, hook: &Hook, mode: AttachMode, env: &Env<'_>) -> Outcome {
    attach_hook(ebpf, hook, mode, env, &mut None, false)
}

fn attach_hook(
    ebpf: &mut Ebpf,
    hook: &Hook,
    mode: AttachMode,
    env: &Env<'_>,
    trampolines_broken: &mut Option<String>,
    outer_stashes: bool,
) -> Outcome {
    let mut notes = Vec::new();
    let location = locate(env.ksyms, hook.function);
    let mut method = None;
    if let Location::Absent = location {
        notes.push(format!(
            "{} is not in /proc/kallsyms: {}",
            hook.function,
            absent_reason(env.ksyms, hook.function)
        ));
    } else {
        if mode != AttachMode::Kprobe {
            let plan: Result<&Btf, String> = if hook.fentry.is_empty() {
                Err("no fentry flavour".to_string())
            } else if let Location::Module(m) = &location {
                Err(format!(
                    "{} is in module {m}: aya 0.14 attaches fentry only to vmlinux functions",
                    hook.function
                ))
            } else if let Some(why) = trampolines_broken.as_ref() {
                Err(why.clone())
            } else {
                env.btf.get()
            };
            match plan {
                Err(why) => notes.push(format!("fentry: {why}")),
                Ok(btf) => match attach_fentry_flavour(ebpf, hook, btf) {
                    Ok(()) => method = Some(Method::Fentry),
                    Err(e) => {
                        unload(ebpf, hook.fentry);
                        let e = if e.starts_with("loading") {
                            // The program is fine (it loads elsewhere): the kernel refuses
                            // tracing programs, e.g. no BPF trampolines on this architecture or
                            // build. Say so once and skip fentry for the other hooks.
                            let why = format!(
                                "this kernel refuses BPF tracing programs (no BPF trampolines?): {e}"
                            );
                            *trampolines_broken = Some(why.clone());
                            why
                        } else {
                            e
                        };
                        notes.push(format!("fentry: {e}"));
                    }
                },
            }
        }
        if method.is_none() {
            match &env.kprobes {
                Err(why) => notes.push(format!("kprobe: {why}")),
                Ok(()) => match attach_kprobe_flavour(ebpf, hook, outer_stashes) {
                    Ok(()) => method = Some(Method::Kprobe),
                    Err(e) => {
                        unload(ebpf, hook.kprobe);
                        notes.push(format!("kprobe: {e}"));
                    }
                },
            }
        }
    }
    Outcome {
        hook: hook.name,
        target: hook.function.to_string(),
        method,
        notes,
        required: hook.required,
    }
}

pub fn attach_tracepoint(ebpf: &mut Ebpf, tp: &TpHook, env: &Env<'_>) -> Outcome {
    let mut notes = Vec::new();
    let mut method = None;
    let mut target = String::new();
    match tp
        .candidates
        .iter()
        .find(|(g, n)| (env.tracepoint_exists)(g, n))
    {
        None => {
            let names: Vec<String> = tp
                .candidates
                .iter()
                .map(|(g, n)| format!("{g}:{n}"))
                .collect();
            notes.push(format!(
                "no tracepoint {} on this kernel",
                names.join(" or ")
            ));
        }
        Some((group, name)) => {
            target = format!("{group}:{name}");
            let res = program(ebpf, tp.program).and_then(|p| {
                let p: &mut TracePoint = p.try_into().map_err(|e| format!("{e}"))?;
                if p.fd().is_err() {
                    p.load()
                        .map_err(|e| format!("loading {}: {}", tp.program, error_chain(&e)))?;
                }
                p.attach(group, name)
                    .map_err(|e| format!("attaching to {target}: {}", error_chain(&e)))?;
                Ok(())
            });
            match res {
                Ok(()) => method = Some(Method::Tracepoint),
                Err(e) => notes.push(e),
            }
        }
    }
    if target.is_empty() {
        target = tp.candidates[0].0.to_string() + ":" + tp.candidates[0].1;
    }
    Outcome {
        hook: tp.name,
        target,
        method,
        notes,
        required: false,
    }
}

/// Why a function might be missing, for the report.
fn absent_reason(ksyms: &Kallsyms, function: &str) -> &'static str {
    match function {
        "xfs_dax_notify_failure" if ksyms.contains("xfs_mountfs") => {
            "XFS is present but without its notify_failure handler (needs CONFIG_FS_DAX and \
             CONFIG_MEMORY_FAILURE)"
        }
        f if f.starts_with("xfs_") || f.starts_with("xlog_") => {
            "XFS is not loaded (modprobe xfs, or mount an XFS filesystem, then restart notify)"
        }
        "memory_failure" => "the kernel has no CONFIG_MEMORY_FAILURE",
        "dax_holder_notify_failure" | "fs_dax_get_by_bdev" | "fs_put_dax" => {
            "the kernel has no CONFIG_FS_DAX / dax holder support (5.17+)"
        }
        _ => "inlined, renamed, or not built into this kernel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_mode_parses_with_a_clear_error() {
        assert_eq!("kprobe".parse::<AttachMode>(), Ok(AttachMode::Kprobe));
        let err = "kprobes".parse::<AttachMode>().unwrap_err();
        assert!(err.contains("auto, fentry or kprobe"), "{err}");
    }
}
