//! The kernel structure offsets the probes read, from the running kernel's BTF (vmlinux and
//! module BTF) and tracefs formats. Nothing is hard-coded for one kernel: a field not found stays
//! UNKNOWN and the probe skips that read.

use std::collections::BTreeMap;

use notify_common::Offsets;
use serde::Serialize;

use crate::{
    kernel::{btf::Btf, tracefs::Tracefs},
    probe::phases,
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
        "tp_sig_sig" => &mut offsets.tp_sig_sig,
        "tp_sig_code" => &mut offsets.tp_sig_code,
        "tp_sig_pid" => &mut offsets.tp_sig_pid,
        "tp_sig_comm" => &mut offsets.tp_sig_comm,
        "tp_sig_result" => &mut offsets.tp_sig_result,
        "task_tgid" => &mut offsets.task_tgid,
        "vma_vm_start" => &mut offsets.vma_vm_start,
        "vma_vm_end" => &mut offsets.vma_vm_end,
        "vma_vm_pgoff" => &mut offsets.vma_vm_pgoff,
        "vma_vm_file" => &mut offsets.vma_vm_file,
        "file_f_inode" => &mut offsets.file_f_inode,
        "inode_i_ino" => &mut offsets.inode_i_ino,
        "inode_i_sb" => &mut offsets.inode_i_sb,
        other => unreachable!("unknown offset field {other}"),
    };
    *slot = v;
}

/// The fields the VMA iterator reads (Offsets member, BTF struct, BTF member), all in vmlinux.
/// `vm_start`/`vm_end` sit in an anonymous union on newer kernels: found through it.
const VMA_ITER_FIELDS: &[(&str, &str, &str)] = &[
    ("task_tgid", "task_struct", "tgid"),
    ("vma_vm_start", "vm_area_struct", "vm_start"),
    ("vma_vm_end", "vm_area_struct", "vm_end"),
    ("vma_vm_pgoff", "vm_area_struct", "vm_pgoff"),
    ("vma_vm_file", "vm_area_struct", "vm_file"),
    ("file_f_inode", "file", "f_inode"),
    ("inode_i_ino", "inode", "i_ino"),
    ("inode_i_sb", "inode", "i_sb"),
    ("sb_s_dev", "super_block", "s_dev"),
];

/// The offsets the VMA iterator needs, from vmlinux BTF (the others stay UNKNOWN: that object
/// load runs no probe). An error names the first field not found: the iterator cannot filter
/// without all of them.
pub fn vma_iter_offsets(vmlinux: &Btf) -> Result<Offsets, String> {
    let mut offsets = Offsets::unknown();
    for &(field, strukt, member) in VMA_ITER_FIELDS {
        let off = vmlinux
            .member_offset(strukt, member)
            .map_err(|e| format!("{strukt}.{member}: {e}"))?;
        set(&mut offsets, field, off);
    }
    Ok(offsets)
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
    phases::done("vmlinux BTF parse");
    let mut modules: BTreeMap<&str, Option<Btf>> = BTreeMap::new();
    for &(field, strukt, member, module) in FIELDS {
        let (offset, note) = match &vmlinux {
            Err(e) => (None, e.to_string()),
            Ok(base) => {
                // A module's types live in its split BTF when it is a module, in vmlinux when it
                // is built in.
                // Parsed once per module (xfs holds two of the fields).
                let module_btf = module.and_then(|m| {
                    modules
                        .entry(m)
                        .or_insert_with(|| Btf::module(m, base).ok())
                        .clone()
                });
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
    phases::done("struct offsets (module BTF, lookups)");
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
        ("tp_sig_sig", &[("signal", "signal_generate")], "sig"),
        ("tp_sig_code", &[("signal", "signal_generate")], "code"),
        ("tp_sig_pid", &[("signal", "signal_generate")], "pid"),
        ("tp_sig_comm", &[("signal", "signal_generate")], "comm"),
        ("tp_sig_result", &[("signal", "signal_generate")], "result"),
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

/// Names of the memory-failure tracepoint's enum values (`type`: the page type, `result`: the
/// action result), read from the kernel's own format file: the tables differ by version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbols {
    pub mf_type: BTreeMap<i64, String>,
    pub mf_result: BTreeMap<i64, String>,
}

impl Symbols {
    /// From the format of the first memory-failure tracepoint that exists (`ras` or
    /// `memory_failure` group); empty tables when there is none or its format has none.
    pub fn read(tracefs: Option<&Tracefs>) -> Symbols {
        let Some(t) = tracefs else {
            return Symbols::default();
        };
        let fmt = [
            ("ras", "memory_failure_event"),
            ("memory_failure", "memory_failure_event"),
        ]
        .iter()
        .find_map(|(g, e)| t.tracepoint_format(g, e).ok());
        match fmt {
            Some(f) => Symbols {
                mf_type: f.symbols("type").unwrap_or_default(),
                mf_result: f.symbols("result").unwrap_or_default(),
            },
            None => Symbols::default(),
        }
    }
}
