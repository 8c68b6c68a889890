//! Opening the probes: look at the kernel once (kallsyms, BTF, tracefs), work out the structure
//! offsets the probes read, load the object and attach every hook it allows.

use std::fmt::Write as _;

use aya::Ebpf;

use crate::{
    kernel::{channels::Channels, facts::KernelInfo, kallsyms::Kallsyms, tracefs::Tracefs},
    probe::{
        attach::{self, AttachMode, Env, LazyBtf, Method, Outcome},
        offsets::{FieldSource, Symbols, resolve_offsets},
        phases, preload,
    },
};

/// The probes of a run: what the kernel is, what we found, what attached. Dropping it detaches
/// everything.
pub struct Probes {
    pub kernel: KernelInfo,
    pub fields: Vec<FieldSource>,
    /// Names of the memory-failure tracepoint's values, from its format.
    pub symbols: Symbols,
    /// How XFS can be told of damage and heard from on this kernel.
    pub channels: Channels,
    pub ebpf: Ebpf,
    pub outcomes: Vec<Outcome>,
    pub mode: AttachMode,
}

impl Probes {
    /// Opens the probes with a ring buffer of `ring_bytes` (checked by
    /// `ring_size_ok` in the ring module; `notify_common::RING_BYTES` by default).
    pub fn open(mode: AttachMode, ring_bytes: u32) -> anyhow::Result<Probes> {
        let kernel = KernelInfo::collect();
        phases::done("kernel facts");
        if !kernel.root.value {
            anyhow::bail!(
                "notify must run as root to load BPF programs (try `sudo notify ...` or `cargo \
                 xtask run -- ...`)"
            );
        }
        // /proc/kallsyms is read (mostly kernel time: the kernel formats every line) on its
        // own thread while this one parses BTF and loads the object: on two CPUs the two
        // overlap.
        let kallsyms = std::thread::Builder::new()
            .name("kallsyms".into())
            .spawn(Kallsyms::load)
            .map_err(|e| anyhow::anyhow!("cannot start a thread to read kallsyms: {e}"))?;
        // aya's loader (its own vmlinux BTF parse, the feature probes) is made on a third
        // thread while this one works out the offsets it needs.
        let loader = std::thread::Builder::new()
            .name("bpf-loader".into())
            .spawn(attach::prepare_loader)
            .map_err(|e| anyhow::anyhow!("cannot start a thread to prepare the BPF loader: {e}"))?;
        let tracefs = Tracefs::find_or_mount().ok();
        let (offsets, fields) = resolve_offsets(tracefs.as_ref());
        phases::done("offsets (BTF, tracefs formats)");
        let symbols = Symbols::read(tracefs.as_ref());
        let loader = loader
            .join()
            .map_err(|_| anyhow::anyhow!("preparing the BPF loader panicked"))?;
        phases::done("BPF loader ready (joined)");
        let ebpf = attach::load_object_with(loader, &offsets, ring_bytes);
        phases::done("object load (maps)");
        let ksyms = kallsyms
            .join()
            .map_err(|_| anyhow::anyhow!("reading kallsyms panicked"))??;
        phases::done("kallsyms (joined)");
        let mut ebpf = ebpf?;
        let btf = LazyBtf::default();
        let exists = |g: &str, n: &str| tracefs.as_ref().is_some_and(|t| t.has_tracepoint(g, n));
        let env = Env {
            ksyms: &ksyms,
            btf: &btf,
            kprobes: kprobes_supported(&kernel),
            tracepoint_exists: &exists,
        };
        let planned = preload::planned(&ksyms, mode, env.kprobes.is_ok(), &exists);
        let threads = preload::threads();
        let loaded = preload::load(&mut ebpf, &planned, threads);
        phases::done(&format!(
            "preload {loaded}/{} programs on {threads} thread(s)",
            planned.len()
        ));
        let outcomes = attach::attach_all(&mut ebpf, mode, &env);
        let channels = Channels::detect(&ksyms);
        phases::done("channels");
        Ok(Probes {
            kernel,
            fields,
            symbols,
            channels,
            ebpf,
            outcomes,
            mode,
        })
    }

    /// The attach report: one line per hook, then a summary line containing "attached".
    pub fn report(&self) -> String {
        let mut s = String::new();
        for o in &self.outcomes {
            let _ = match o.method {
                Some(m) => writeln!(s, "notify: {:<22} {:<36} {m}", o.hook, o.target),
                None => writeln!(s, "notify: {:<22} {:<36} SKIPPED", o.hook, o.target),
            };
            for n in &o.notes {
                let _ = writeln!(s, "notify:   {n}");
            }
        }
        for f in self.fields.iter().filter(|f| f.offset.is_none()) {
            let _ = writeln!(s, "notify: offset {} unknown: {}", f.field, f.note);
        }
        let _ = writeln!(s, "{}", summary_line(&self.outcomes));
        s
    }

    pub fn report_to_stderr(&self) {
        eprint!("{}", self.report());
    }

    pub fn attached(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.method.is_some())
    }

    /// Required hooks that are not attached.
    pub fn missing_required(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.required && o.method.is_none())
            .map(|o| o.hook)
            .collect()
    }
}

/// "notify: attached 12/18 probes (fentry 3, kprobe 7, tracepoint 2); missing required: ..."
pub fn summary_line(outcomes: &[Outcome]) -> String {
    let attached: Vec<&Outcome> = outcomes.iter().filter(|o| o.method.is_some()).collect();
    let count = |m| attached.iter().filter(|o| o.method == Some(m)).count();
    let missing: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.required && o.method.is_none())
        .map(|o| o.hook)
        .collect();
    let mut line = format!(
        "notify: attached {}/{} probes (fentry {}, kprobe {}, tracepoint {})",
        attached.len(),
        outcomes.len(),
        count(Method::Fentry),
        count(Method::Kprobe),
        count(Method::Tracepoint)
    );
    if !missing.is_empty() {
        let _ = write!(line, "; required hooks missing: {}", missing.join(", "));
    }
    line
}

/// Whether kprobes can be attached, with the reason when not.
pub fn kprobes_supported(kernel: &KernelInfo) -> Result<(), String> {
    if kernel.kprobes.value {
        Ok(())
    } else {
        Err(kernel.kprobes.reason.clone())
    }
}
