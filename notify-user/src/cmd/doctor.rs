//! `notify doctor`: for every probe, which attach methods this kernel really supports, found by
//! trying each one (load, attach, detach), and why not where none works.

use std::{fmt::Write as _, process::ExitCode};

use serde::Serialize;

use crate::{
    cmd::exit::HooksMissing,
    export::sink::Format,
    kernel::{
        channels::{Channel, Channels},
        facts::{CollectOptions, KernelInfo},
        kallsyms::Kallsyms,
        tracefs::Tracefs,
    },
    probe::{
        AttachMode, Method,
        attach::{self, Env, LazyBtf, Location},
        hooks::{HOOKS, TRACEPOINTS},
        offsets::{FieldSource, resolve_offsets},
        open::kprobes_supported,
    },
};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = diagnose()?;
    match a.format {
        Format::Table => print!("{}", report.render()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    let missing = report.missing_required();
    if !missing.is_empty() {
        return Err(HooksMissing(missing).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The result of trying one method on one hook.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    pub method: Method,
    pub ok: bool,
    /// Why it failed, or was not tried.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HookReport {
    pub hook: &'static str,
    pub target: String,
    pub location: String,
    pub trials: Vec<Trial>,
    /// What `--attach auto` would use.
    pub auto: Option<Method>,
}

/// One fact about the kernel (from `kernel::KernelInfo::checks`).
#[derive(Clone, Debug, Serialize)]
pub struct KernelCheck {
    pub name: &'static str,
    pub status: String,
    pub value: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub release: String,
    pub kernel: Vec<KernelCheck>,
    pub fields: Vec<FieldSource>,
    pub hooks: Vec<HookReport>,
    /// How XFS can be told of damage and heard from on this kernel.
    pub channels: Channels,
    /// The required hooks no method could attach (doctor then exits non-zero, naming them).
    pub missing_required: Vec<&'static str>,
}

/// Runs every trial. Needs root; returns an error only when nothing can be tried at all.
pub fn diagnose() -> anyhow::Result<Report> {
    // Doctor may mount securityfs briefly to read the lockdown mode: it is a diagnosis tool.
    let kernel = KernelInfo::collect_with(&CollectOptions {
        mount_tracefs: true,
        probe_lockdown: true,
    });
    if !kernel.root.value {
        anyhow::bail!("notify doctor loads BPF programs to test them: run it as root");
    }
    let ksyms = Kallsyms::load()?;
    let tracefs = Tracefs::find_or_mount().ok();
    let (offsets, fields) = resolve_offsets(tracefs.as_ref());
    let aya_btf = LazyBtf::given(
        aya::Btf::from_sys_fs()
            .map_err(|e| format!("no vmlinux BTF ({e}): fentry needs CONFIG_DEBUG_INFO_BTF")),
    );
    let exists = |g: &str, n: &str| tracefs.as_ref().is_some_and(|t| t.has_tracepoint(g, n));

    let mut hooks = Vec::new();
    for hook in HOOKS {
        let location = attach::locate(&ksyms, hook.function);
        let mut trials = Vec::new();
        // Each method is tried on a fresh object so one flavour's programs cannot mask another.
        for (mode, method) in [
            (AttachMode::Fentry, Method::Fentry),
            (AttachMode::Kprobe, Method::Kprobe),
        ] {
            let mut ebpf = attach::load_object(&offsets)?;
            let env = Env {
                ksyms: &ksyms,
                btf: &aya_btf,
                kprobes: kprobes_supported(&kernel),
                tracepoint_exists: &exists,
            };
            let outcome = attach::attach_one(&mut ebpf, hook, mode, &env);
            let ok = outcome.method == Some(method);
            let reason = if ok {
                None
            } else {
                let prefix = match method {
                    Method::Fentry => "fentry: ",
                    _ => "kprobe: ",
                };
                outcome
                    .notes
                    .iter()
                    .find_map(|n| n.strip_prefix(prefix).map(str::to_string))
                    .or_else(|| outcome.notes.first().cloned())
            };
            trials.push(Trial { method, ok, reason });
        }
        let auto = trials.iter().find(|t| t.ok).map(|t| t.method);
        hooks.push(HookReport {
            hook: hook.name,
            target: hook.function.to_string(),
            location: match location {
                Location::Vmlinux => "vmlinux".into(),
                Location::Module(m) => format!("module {m}"),
                Location::Absent => "absent".into(),
            },
            trials,
            auto,
        });
    }
    let no_btf = LazyBtf::given(Err(String::new()));
    for tp in TRACEPOINTS {
        let mut ebpf = attach::load_object(&offsets)?;
        let env = Env {
            ksyms: &ksyms,
            btf: &no_btf,
            kprobes: Err(String::new()),
            tracepoint_exists: &exists,
        };
        let outcome = attach::attach_tracepoint(&mut ebpf, tp, &env);
        let ok = outcome.method.is_some();
        hooks.push(HookReport {
            hook: tp.name,
            target: outcome.target.clone(),
            location: "tracepoint".into(),
            trials: vec![Trial {
                method: Method::Tracepoint,
                ok,
                reason: outcome.notes.first().cloned(),
            }],
            auto: ok.then_some(Method::Tracepoint),
        });
    }
    let channels = Channels::detect(&ksyms);
    let missing_required = missing(&hooks);
    Ok(Report {
        missing_required,
        channels,
        release: kernel.release.clone(),
        kernel: kernel
            .checks()
            .into_iter()
            .map(|c| KernelCheck {
                name: c.name,
                status: format!("{:?}", c.status).to_lowercase(),
                value: c.value,
                reason: c.reason,
            })
            .collect(),
        fields,
        hooks,
    })
}

impl Report {
    /// The required hooks (`notify_common::hooks!`'s `required: true`) with no working method.
    pub fn missing_required(&self) -> Vec<&'static str> {
        self.missing_required.clone()
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "kernel {}", self.release);
        for c in &self.kernel {
            let _ = writeln!(
                s,
                "  {:<26} {:<7} {:<12} {}",
                c.name, c.status, c.value, c.reason
            );
        }
        let _ = writeln!(
            s,
            "\nchannels (how XFS can be told of damage, and heard from):"
        );
        let c = &self.channels;
        for (name, ch) in [
            ("fserror", &c.fserror),
            ("healthmon", &c.healthmon),
            ("verify-media", &c.verify_media),
            ("hard-offline-page", &c.hard_offline_page),
        ] {
            let _ = writeln!(s, "  {name:<18} {:<8} {}", presence(ch), ch.reason);
        }
        if c.healthmon.is_present() {
            if c.monitors.is_empty() {
                let _ = writeln!(s, "  healthmon slots:   no filesystem's monitor is held");
            }
            for m in &c.monitors {
                let _ = writeln!(
                    s,
                    "  healthmon slot:    {} held by {} (pid {}, {}): notify will not take it",
                    m.dev, m.comm, m.pid, m.state
                );
            }
        }
        let _ = writeln!(s, "\nstructure offsets (from BTF and tracefs formats):");
        for f in &self.fields {
            let _ = match f.offset {
                Some(o) => writeln!(s, "  {:<16} {:>5}  {}", f.field, o, f.note),
                None => writeln!(s, "  {:<16} {:>5}  {}", f.field, "?", f.note),
            };
        }
        let _ = writeln!(
            s,
            "\nprobes (each method tried for real: load, attach, detach):"
        );
        let _ = writeln!(
            s,
            "  {:<20} {:<32} {:<12} {:<10} {:<10}",
            "HOOK", "TARGET", "WHERE", "AUTO", "TRIED"
        );
        for h in &self.hooks {
            let tried: Vec<String> = h
                .trials
                .iter()
                .map(|t| format!("{}:{}", t.method, if t.ok { "ok" } else { "no" }))
                .collect();
            let _ = writeln!(
                s,
                "  {:<20} {:<32} {:<12} {:<10} {}",
                h.hook,
                h.target,
                h.location,
                h.auto
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "NONE".into()),
                tried.join(" ")
            );
            for t in h.trials.iter().filter(|t| !t.ok) {
                if let Some(r) = &t.reason {
                    let _ = writeln!(s, "      {}: {r}", t.method);
                }
            }
        }
        s
    }
}

/// The required hooks among `hooks` that no method attached (tracepoints are never required).
fn missing(hooks: &[HookReport]) -> Vec<&'static str> {
    hooks
        .iter()
        .filter(|h| h.auto.is_none() && HOOKS.iter().any(|k| k.name == h.hook && k.required))
        .map(|h| h.hook)
        .collect()
}

fn presence(c: &Channel) -> &'static str {
    match c.present {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}
