//! Opening a tracing session: look at the kernel once (kallsyms, BTF, tracefs), work out the
//! structure offsets the probes read, load the object and attach every hook it allows.

use std::fmt::Write as _;

use notify_common::Offsets;
use serde::Serialize;

use crate::{
    btf::Btf,
    kallsyms::Kallsyms,
    kernel::KernelInfo,
    probes::{self, AttachMode, Env, Outcome, Probes},
    tracefs::Tracefs,
};

/// One structure field the probes read, and where its offset came from.
#[derive(Clone, Debug, Serialize)]
pub struct FieldSource {
    pub field: &'static str,
    /// Byte offset, or None when it could not be found.
    pub offset: Option<u32>,
    /// Where it was found, or why not.
    pub note: String,
}

/// The fields the probes read: (Offsets member, BTF struct, BTF member, module holding it).
const FIELDS: &[(&str, &str, &str, Option<&str>)] = &[
    ("dax_holder_data", "dax_device", "holder_data", None),
    ("dax_holder_ops", "dax_device", "holder_ops", None),
    ("xfs_m_super", "xfs_mount", "m_super", Some("xfs")),
    ("xlog_l_mp", "xlog", "l_mp", Some("xfs")),
    ("sb_s_flags", "super_block", "s_flags", None),
    ("sb_s_fs_info", "super_block", "s_fs_info", None),
    ("sb_s_dev", "super_block", "s_dev", None),
    ("fc_root", "fs_context", "root", None),
    ("dentry_d_sb", "dentry", "d_sb", None),
    ("bdev_bd_dev", "block_device", "bd_dev", None),
];

fn set(offsets: &mut Offsets, field: &str, v: u32) {
    let slot = match field {
        "dax_holder_data" => &mut offsets.dax_holder_data,
        "dax_holder_ops" => &mut offsets.dax_holder_ops,
        "xfs_m_super" => &mut offsets.xfs_m_super,
        "xlog_l_mp" => &mut offsets.xlog_l_mp,
        "sb_s_flags" => &mut offsets.sb_s_flags,
        "sb_s_fs_info" => &mut offsets.sb_s_fs_info,
        "sb_s_dev" => &mut offsets.sb_s_dev,
        "fc_root" => &mut offsets.fc_root,
        "dentry_d_sb" => &mut offsets.dentry_d_sb,
        "bdev_bd_dev" => &mut offsets.bdev_bd_dev,
        "tp_mf_pfn" => &mut offsets.tp_mf_pfn,
        "tp_mf_type" => &mut offsets.tp_mf_type,
        "tp_mf_result" => &mut offsets.tp_mf_result,
        "tp_xfs_dev" => &mut offsets.tp_xfs_dev,
        "tp_sys_ret" => &mut offsets.tp_sys_ret,
        other => unreachable!("unknown offset field {other}"),
    };
    *slot = v;
}

/// (Offsets member, candidate tracepoints, field name).
type TracepointField = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Works out every offset from BTF and tracefs formats. Missing ones stay UNKNOWN and are
/// reported; the probes then skip those reads.
pub fn resolve_offsets(tracefs: Option<&Tracefs>) -> (Offsets, Vec<FieldSource>) {
    let mut offsets = Offsets::unknown();
    let mut sources = Vec::new();
    let vmlinux = Btf::vmlinux();
    for &(field, strukt, member, module) in FIELDS {
        let (offset, note) = match &vmlinux {
            Err(e) => (None, e.to_string()),
            Ok(base) => {
                // A module's types live in its split BTF when it is a module, in vmlinux when it
                // is built in.
                let module_btf = module.and_then(|m| Btf::module(m, base).ok());
                let (btf, from) = match (&module_btf, module) {
                    (Some(b), Some(m)) => (b, format!("/sys/kernel/btf/{m}")),
                    _ => (base, "/sys/kernel/btf/vmlinux".to_string()),
                };
                match btf.member_offset(strukt, member) {
                    Ok(off) => (Some(off), format!("{strukt}.{member} from {from}")),
                    Err(e) => {
                        let hint = match module {
                            Some(m) if module_btf.is_none() => format!(
                                " (module {m} is not loaded: load it before starting notify)"
                            ),
                            _ => String::new(),
                        };
                        (None, format!("{e}{hint}"))
                    }
                }
            }
        };
        if let Some(off) = offset {
            set(&mut offsets, field, off);
        }
        sources.push(FieldSource {
            field,
            offset,
            note,
        });
    }
    // Tracepoint record layouts, from their format files.
    let tp_fields: &[TracepointField] = &[
        (
            "tp_mf_pfn",
            &[
                ("ras", "memory_failure_event"),
                ("memory_failure", "memory_failure_event"),
            ],
            "pfn",
        ),
        (
            "tp_mf_type",
            &[
                ("ras", "memory_failure_event"),
                ("memory_failure", "memory_failure_event"),
            ],
            "type",
        ),
        (
            "tp_mf_result",
            &[
                ("ras", "memory_failure_event"),
                ("memory_failure", "memory_failure_event"),
            ],
            "result",
        ),
        ("tp_xfs_dev", &[("xfs", "xfs_log_umount_write")], "dev"),
        ("tp_sys_ret", &[("syscalls", "sys_exit_mount")], "ret"),
    ];
    for &(field, candidates, name) in tp_fields {
        let found = tracefs.and_then(|t| {
            candidates.iter().find_map(|(g, e)| {
                let fmt = t.tracepoint_format(g, e).ok()?;
                fmt.field(name)
                    .map(|f| (f.offset, format!("{g}:{e} field {name}")))
            })
        });
        let (offset, note) = match (found, tracefs) {
            (Some((off, note)), _) => (Some(off), note),
            (None, None) => (None, "tracefs not available".to_string()),
            (None, Some(_)) => (None, "tracepoint not on this kernel".to_string()),
        };
        if let Some(off) = offset {
            set(&mut offsets, field, off);
        }
        sources.push(FieldSource {
            field,
            offset,
            note,
        });
    }
    (offsets, sources)
}

/// An open session: what the kernel is, what we found, what attached.
pub struct Session {
    pub kernel: KernelInfo,
    pub fields: Vec<FieldSource>,
    pub probes: Probes,
    pub mode: AttachMode,
}

impl Session {
    pub fn open(mode: AttachMode) -> anyhow::Result<Session> {
        let kernel = KernelInfo::collect();
        if !kernel.root.value {
            anyhow::bail!(
                "notify must run as root to load BPF programs (try `sudo notify ...` or `cargo \
                 xtask run -- ...`)"
            );
        }
        let ksyms = Kallsyms::load()?;
        let tracefs = Tracefs::find_or_mount().ok();
        let (offsets, fields) = resolve_offsets(tracefs.as_ref());
        let mut ebpf = probes::load_object(&offsets)?;
        let aya_btf = aya::Btf::from_sys_fs().map_err(|e| {
            format!("no vmlinux BTF ({e}): fentry needs a kernel built with CONFIG_DEBUG_INFO_BTF")
        });
        let exists = |g: &str, n: &str| tracefs.as_ref().is_some_and(|t| t.has_tracepoint(g, n));
        let env = Env {
            ksyms: &ksyms,
            btf: aya_btf.as_ref().map_err(|e| e.clone()),
            kprobes: kprobes_supported(&kernel),
            tracepoint_exists: &exists,
        };
        let outcomes = probes::attach_all(&mut ebpf, mode, &env);
        Ok(Session {
            kernel,
            fields,
            probes: Probes { ebpf, outcomes },
            mode,
        })
    }

    /// The attach report: one line per hook, then a summary line containing "attached".
    pub fn report(&self) -> String {
        let mut s = String::new();
        for o in &self.probes.outcomes {
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
        let _ = writeln!(s, "{}", summary_line(&self.probes.outcomes));
        s
    }

    pub fn report_to_stderr(&self) {
        eprint!("{}", self.report());
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
        count(probes::Method::Fentry),
        count(probes::Method::Kprobe),
        count(probes::Method::Tracepoint)
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
