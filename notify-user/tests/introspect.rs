//! Kernel introspection against the running kernel (the project's host: 6.18 with BTF and
//! tracefs, no kprobes, no modules). Tests that need something the kernel lacks say so and
//! check the error instead.

use std::{path::Path, process::Command, sync::OnceLock};

use notify::kernel::{
    btf::{Btf, BtfError, BtfKind, builder::BtfBuilder},
    facts::{CollectOptions, KernelInfo, Lockdown, Status},
    kallsyms::{Kallsyms, KallsymsError},
    tracefs::{self, Tracefs},
};

fn vmlinux() -> Btf {
    Btf::vmlinux().expect("this host has /sys/kernel/btf/vmlinux")
}

/// `/proc/kallsyms` read once for all tests in this binary.
fn kallsyms() -> &'static Kallsyms {
    static K: OnceLock<Kallsyms> = OnceLock::new();
    K.get_or_init(|| Kallsyms::load().expect("/proc/kallsyms readable"))
}

fn is_project_host() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok_and(|r| r.contains("-fc-"))
}

/// Members the loader needs: all must resolve in vmlinux (XFS and DAX are built in here).
const NEEDED: &[(&str, &str)] = &[
    ("super_block", "s_flags"),
    ("super_block", "s_fs_info"),
    ("super_block", "s_dev"),
    ("super_block", "s_bdev"),
    ("dax_device", "holder_data"),
    ("dax_device", "holder_ops"),
    ("fs_context", "root"),
    ("dentry", "d_sb"),
    ("block_device", "bd_dev"),
];

#[test]
fn vmlinux_members_resolve() {
    let btf = vmlinux();
    assert!(!btf.is_split());
    assert!(btf.own_type_count() > 10_000);
    for &(s, m) in NEEDED {
        let info = btf
            .member_info(s, m)
            .unwrap_or_else(|e| panic!("{s}.{m}: {e}"));
        eprintln!("{s}.{m} = {} (size {:?})", info.offset, info.size);
    }
    // Pointers are 8 bytes, dev_t 4, s_flags an unsigned long.
    assert_eq!(
        btf.member_info("super_block", "s_fs_info").unwrap().size,
        Some(8)
    );
    assert_eq!(
        btf.member_info("super_block", "s_dev").unwrap().size,
        Some(4)
    );
    assert_eq!(
        btf.member_info("block_device", "bd_dev").unwrap().size,
        Some(4)
    );
    assert_eq!(
        btf.member_info("super_block", "s_flags").unwrap().size,
        Some(8)
    );
    // `d_name` sits in an anonymous union in 6.x dentry.
    assert!(btf.member_offset("dentry", "d_name").is_ok());
    // A dotted path through an embedded struct: dentry.d_name.len is inside the qstr.
    let d_name = btf.member_offset("dentry", "d_name").unwrap();
    let len = btf.member_offset("qstr", "len").unwrap();
    assert_eq!(
        btf.member_offset("dentry", "d_name.len").unwrap(),
        d_name + len
    );
    // Through a pointer is refused with a clear error.
    let e = btf.member_offset("dentry", "d_sb.s_flags").unwrap_err();
    assert!(matches!(e, BtfError::NotAStruct { .. }), "{e}");
    assert!(e.to_string().contains("pointer"), "{e}");
}

#[test]
fn vmlinux_errors_are_clear() {
    let btf = vmlinux();
    let e = btf
        .member_offset("super_block", "no_such_field")
        .unwrap_err();
    assert!(matches!(e, BtfError::MemberNotFound { .. }), "{e}");
    assert!(e.to_string().contains("/sys/kernel/btf/vmlinux"), "{e}");
    let e = btf.member_offset("no_such_struct_notify", "x").unwrap_err();
    assert!(matches!(e, BtfError::StructNotFound { .. }), "{e}");
    // Real bitfields: sk_buff's `__u8 cloned:1, nohdr:1, fclone:2` (stable since 2.6).
    let e = btf.member_offset("sk_buff", "cloned").unwrap_err();
    assert!(matches!(e, BtfError::Bitfield { bits: 1, .. }), "{e}");
    assert!(e.to_string().contains("bitfield"), "{e}");
    let (
        BtfError::Bitfield {
            bit_offset: cloned, ..
        },
        Err(BtfError::Bitfield {
            bit_offset: fclone,
            bits: 2,
            ..
        }),
    ) = (e, btf.member_offset("sk_buff", "fclone"))
    else {
        panic!("sk_buff.fclone should be a 2-bit bitfield");
    };
    assert_eq!(
        fclone,
        cloned + 2,
        "cloned:1, nohdr:1, fclone:2 are adjacent"
    );
}

/// Cross-check against pahole (Debian's `pahole` package; installed on the project host) when
/// present: `pahole -C s` prints `/* offset size */` for each member, including members of
/// anonymous unions with their absolute offset.
#[test]
fn offsets_match_pahole() {
    assert!(
        Command::new("pahole").arg("--version").output().is_ok(),
        "offsets_match_pahole needs pahole (cargo xtask setup installs Debian's dwarves)"
    );
    let btf = vmlinux();
    let mut checked = 0;
    for &(s, m) in NEEDED
        .iter()
        .chain(&[("dentry", "d_name"), ("xfs_mount", "m_super")])
    {
        let out = Command::new("pahole")
            .args(["-C", s, "/sys/kernel/btf/vmlinux"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(expected) = pahole_offset(&text, m) else {
            panic!("pahole shows no {s}.{m}:\n{text}");
        };
        assert_eq!(btf.member_offset(s, m).unwrap(), expected, "{s}.{m}");
        checked += 1;
    }
    assert!(checked >= 10);
}

fn pahole_offset(text: &str, member: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let (decl, comment) = l.split_once(';')?;
        let name = decl.split_whitespace().last()?.trim_start_matches('*');
        if name != member {
            return None;
        }
        let c = comment.trim().strip_prefix("/*")?;
        c.split_whitespace().next()?.parse().ok()
    })
}

/// Cross-check with bpftool's raw dump when present: top-level members' bits_offset.
#[test]
fn offsets_match_bpftool() {
    let Ok(out) = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "raw",
        ])
        .output()
    else {
        panic!("this test needs bpftool (cargo xtask setup installs Debian's bpftool)");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let btf = vmlinux();
    // Every struct record's id/name/size/vlen must match ours: walk the dump and compare kinds.
    let mut structs = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let (id, rest) = rest.split_once("] ").unwrap();
        let id: u32 = id.parse().unwrap();
        let kind = rest.split_whitespace().next().unwrap();
        let (our_kind, our_name) = btf.type_kind_and_name(id).expect("id in range");
        let expected_kind = match kind {
            "INT" => BtfKind::Int,
            "PTR" => BtfKind::Ptr,
            "ARRAY" => BtfKind::Array,
            "STRUCT" => BtfKind::Struct,
            "UNION" => BtfKind::Union,
            "ENUM" => BtfKind::Enum,
            "FWD" => BtfKind::Fwd,
            "TYPEDEF" => BtfKind::Typedef,
            "VOLATILE" => BtfKind::Volatile,
            "CONST" => BtfKind::Const,
            "RESTRICT" => BtfKind::Restrict,
            "FUNC" => BtfKind::Func,
            "FUNC_PROTO" => BtfKind::FuncProto,
            "VAR" => BtfKind::Var,
            "DATASEC" => BtfKind::Datasec,
            "FLOAT" => BtfKind::Float,
            "DECL_TAG" => BtfKind::DeclTag,
            "TYPE_TAG" => BtfKind::TypeTag,
            "ENUM64" => BtfKind::Enum64,
            other => panic!("bpftool kind {other}"),
        };
        assert_eq!(our_kind, expected_kind, "type {id}");
        let name = rest.split('\'').nth(1).unwrap_or("");
        if name != "(anon)" {
            assert_eq!(our_name, name, "type {id}");
        }
        if kind != "STRUCT" || name == "(anon)" {
            continue;
        }
        // Top-level members of a uniquely named struct: offsets must agree.
        if btf.find_types(name, BtfKind::Struct).len() != 1 {
            continue;
        }
        while let Some(m) = lines.peek().filter(|l| l.starts_with('\t')) {
            let m = *m;
            lines.next();
            let mname = m.split('\'').nth(1).unwrap();
            if mname == "(anon)" || m.contains("bitfield_size=") && !m.contains("bitfield_size=0") {
                continue;
            }
            let bits: u32 = m
                .split("bits_offset=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            if bits.is_multiple_of(8) {
                assert_eq!(
                    btf.member_offset(name, mname).unwrap(),
                    bits / 8,
                    "{name}.{mname}"
                );
            }
        }
        structs += 1;
    }
    assert!(structs > 5000, "checked {structs} structs");
    assert_eq!(
        btf.next_id() - 1,
        text.lines().filter(|l| l.starts_with('[')).count() as u32
    );
}

#[test]
fn functions_in_btf() {
    let btf = vmlinux();
    for f in [
        "dax_holder_notify_failure",
        "vfs_get_tree",
        "fs_dax_get_by_bdev",
    ] {
        assert!(btf.has_func(f), "{f}");
    }
    assert_eq!(
        btf.func_proto_arg_count("dax_holder_notify_failure")
            .unwrap(),
        4
    );
    let params = btf.func_params("dax_holder_notify_failure").unwrap();
    assert_eq!(params[0].name, "dax_dev");
    assert!(!btf.has_func("super_block"), "a struct is not a FUNC");
    assert!(matches!(
        btf.func_params("no_such_function_notify"),
        Err(BtfError::FuncNotFound { .. })
    ));
}

/// XFS: module BTF if it is a loaded module, else vmlinux (built in, as on this host).
#[test]
fn xfs_types_via_module_or_vmlinux() {
    let btf = Btf::for_module_or_vmlinux("xfs").unwrap();
    let xfs_is_module = Path::new("/sys/kernel/btf/xfs").exists();
    assert_eq!(btf.is_split(), xfs_is_module);
    if is_project_host() {
        assert!(
            !xfs_is_module,
            "XFS is built into the project host's kernel"
        );
    }
    for (s, m) in [("xfs_mount", "m_super"), ("xlog", "l_mp")] {
        let off = btf
            .member_offset(s, m)
            .unwrap_or_else(|e| panic!("{s}.{m}: {e}"));
        eprintln!("{s}.{m} = {off} (from {})", btf.source());
    }
    // vmlinux types are reachable from module BTF too.
    assert!(btf.member_offset("super_block", "s_flags").is_ok());
    assert!(btf.has_func("xfs_fs_fill_super"));
    let e = Btf::module("no_such_module_notify", &vmlinux()).unwrap_err();
    assert!(matches!(e, BtfError::NoBtf { .. }), "{e}");
    assert!(e.to_string().contains("for_module_or_vmlinux"), "{e}");
}

/// Every module BTF file present parses as split BTF against vmlinux. The project host has no
/// module support at all, so additionally a split blob is built on top of the real vmlinux.
#[test]
fn split_btf_on_real_vmlinux() {
    let base = vmlinux();
    let mut modules = 0;
    for entry in std::fs::read_dir("/sys/kernel/btf").unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if name == "vmlinux" {
            continue;
        }
        let m = Btf::module(&name, &base).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(m.is_split() && m.start_id() == base.next_id());
        modules += 1;
    }
    eprintln!("{modules} module BTF file(s) parsed");

    let sb = base.find_types("super_block", BtfKind::Struct)[0];
    let ulong = base.find_types("long unsigned int", BtfKind::Int)[0];
    let mut b = BtfBuilder::split(base.next_id(), base.str_end());
    let sb_ptr = b.ptr(sb);
    let m = b.composite(
        "notify_test_mount",
        false,
        1500,
        &[
            ("m_flags", ulong, 0, 0),
            ("m_super", sb_ptr, 64, 0),
            ("m_sb_copy", sb, 128, 0),
        ],
    );
    b.func(
        "notify_test_fill_super",
        &[("sb", sb_ptr), ("data", ulong)],
        ulong,
    );
    let split = Btf::from_split_bytes(&b.build(), &base).unwrap();
    assert_eq!(split.start_id(), base.next_id());
    assert_eq!(
        split.type_kind_and_name(m),
        Some((BtfKind::Struct, "notify_test_mount"))
    );
    assert_eq!(
        split.member_offset("notify_test_mount", "m_super").unwrap(),
        8
    );
    let s_flags = base.member_offset("super_block", "s_flags").unwrap();
    assert_eq!(
        split
            .member_offset("notify_test_mount", "m_sb_copy.s_flags")
            .unwrap(),
        16 + s_flags
    );
    assert_eq!(
        split.member_offset("super_block", "s_flags").unwrap(),
        s_flags
    );
    assert_eq!(
        split
            .func_proto_arg_count("notify_test_fill_super")
            .unwrap(),
        2
    );
    assert!(split.has_func("vfs_get_tree"));
    assert!(!base.has_func("notify_test_fill_super"));
}

/// Real module BTF from a Debian kernel, when provided: `NOTIFY_TEST_BTF_BASE` (a vmlinux
/// `.BTF` section) and `NOTIFY_TEST_BTF_XFS` (the `.BTF` section of that kernel's xfs.ko),
/// extracted with `objcopy --dump-section .BTF=out.btf file /dev/null`.
#[test]
#[ignore = "needs a Debian kernel's BTF: set NOTIFY_TEST_BTF_BASE and NOTIFY_TEST_BTF_XFS"]
fn split_btf_from_debian_module() {
    let (Ok(base), Ok(xfs)) = (
        std::env::var("NOTIFY_TEST_BTF_BASE"),
        std::env::var("NOTIFY_TEST_BTF_XFS"),
    ) else {
        panic!(
            "set NOTIFY_TEST_BTF_BASE and NOTIFY_TEST_BTF_XFS (a vmlinux and an xfs.ko BTF) to run"
        );
    };
    let base = Btf::from_file(base).unwrap();
    let xfs = Btf::from_split_file(xfs, &base).unwrap();
    assert!(xfs.own_type_count() > 1000);
    let m_super = xfs.member_offset("xfs_mount", "m_super").unwrap();
    let l_mp = xfs.member_offset("xlog", "l_mp").unwrap();
    eprintln!("xfs_mount.m_super={m_super} xlog.l_mp={l_mp}");
    assert!(xfs.has_func("xfs_fs_fill_super") && xfs.has_func("xfs_dax_notify_failure"));
    assert!(!base.has_func("xfs_fs_fill_super"));
    // Parsing module BTF without its base must fail, not produce garbage.
    assert!(Btf::from_file(std::env::var("NOTIFY_TEST_BTF_XFS").unwrap()).is_err());
}

#[test]
fn kallsyms_real() {
    let k = kallsyms();
    assert!(k.len() > 10_000);
    assert!(k.contains("dax_holder_notify_failure"));
    assert_eq!(k.module_of("dax_holder_notify_failure"), Some(None));
    assert_eq!(k.module_of("no_such_symbol_notify"), None);
    // Built into vmlinux on this host (no module support); a module elsewhere.
    let xfs = k
        .module_of("xfs_fs_fill_super")
        .expect("xfs_fs_fill_super in kallsyms");
    if is_project_host() {
        assert_eq!(xfs, None);
    }
    let kptr_restrict = std::fs::read_to_string("/proc/sys/kernel/kptr_restrict")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    // kallsyms_show_value(): root (CAP_SYSLOG) sees addresses unless kptr_restrict=2;
    // others depend on perf_event_paranoid too, so only root's case is asserted.
    if root {
        let shown = kptr_restrict == "0" || kptr_restrict == "1";
        assert_eq!(
            k.addresses_hidden(),
            !shown,
            "kptr_restrict={kptr_restrict}"
        );
        if shown {
            assert_ne!(k.address("dax_holder_notify_failure"), Some(0));
        }
    }
    for f in [
        "xfs_mountfs",
        "xlog_recover_finish",
        "xfs_alloc_buftarg",
        "fs_dax_get_by_bdev",
    ] {
        let t = k.probe_target(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(t.exact, "{f}: {t:?}");
    }
}

/// Functions that exist only as compiler clones, and `.cold` parts, in the real table.
#[test]
fn kallsyms_clones_real() {
    let k = kallsyms();
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let mut isra_only = None;
    let mut cold_part = None;
    for line in text.lines() {
        let Some(name) = line.split_whitespace().nth(2) else {
            continue;
        };
        if name.starts_with("__pfx_") {
            continue;
        }
        if let Some(base) = name.strip_suffix(".isra.0")
            && isra_only.is_none()
            && !k.contains(base)
            && !base.contains('.')
        {
            isra_only = Some((base.to_string(), name.to_string()));
        }
        if let Some(base) = name.strip_suffix(".cold")
            && cold_part.is_none()
            && k.contains(base)
            && !base.contains('.')
        {
            cold_part = Some(base.to_string());
        }
    }
    if let Some((base, clone)) = isra_only {
        let t = k.probe_target(&base).unwrap();
        assert_eq!(t.symbol, clone);
        assert!(!t.exact && !t.notes.is_empty());
        eprintln!("{base} -> {clone}");
    }
    if let Some(base) = cold_part {
        let t = k.probe_target(&base).unwrap();
        assert_eq!(t.symbol, base, "never the .cold part");
        assert!(k.variants(&base).iter().any(|s| s.name.ends_with(".cold")));
    }
    assert!(matches!(
        k.probe_target("no_such_function_notify"),
        Err(KallsymsError::NotFound { .. })
    ));
}

#[test]
fn tracefs_real() {
    let t = Tracefs::find().expect("tracefs mounted on this host");
    assert!(t.has_tracepoint("syscalls", "sys_exit_mount"));
    assert!(!t.has_tracepoint("syscalls", "no_such_event_notify"));
    let f = t.tracepoint_format("syscalls", "sys_exit_mount").unwrap();
    assert!(f.id.is_some());
    let ret = f.field("ret").unwrap();
    assert!(ret.signed && ret.size == 8);
    assert_eq!(
        t.field_offset("syscalls", "sys_exit_mount", "ret").unwrap(),
        ret.offset
    );
    assert!(f.field("common_pid").unwrap().common);
    // Tracepoints notify uses on this host.
    assert!(t.has_tracepoint("ras", "mc_event"));
    assert!(t.has_tracepoint("xfs", "xfs_log_recover"));
    let dev = t.field_offset("xfs", "xfs_log_recover", "dev").unwrap();
    assert_eq!(dev, 8);
    // memory_failure_event: group `ras` or `memory_failure` depending on the kernel;
    // CONFIG_MEMORY_FAILURE is off on the project host.
    let mfe = t.first_tracepoint(&[
        ("ras", "memory_failure_event"),
        ("memory_failure", "memory_failure_event"),
    ]);
    if is_project_host() {
        assert_eq!(mfe, None);
    }
    let e = t
        .tracepoint_format("ras", "no_such_event_notify")
        .unwrap_err();
    assert!(e.to_string().contains("ras:no_such_event_notify"), "{e}");
    let e = t
        .field_offset("syscalls", "sys_exit_mount", "nope")
        .unwrap_err();
    assert!(e.to_string().contains("ret"), "{e}");
}

/// ftrace's function list: readable on a normal kernel as root; refused even to root on the
/// project host (a security module denies the ftrace files).
#[test]
fn available_filter_functions_real() {
    let t = Tracefs::find().unwrap();
    match t.available_filter_functions() {
        Ok(f) => {
            assert!(f.len() > 1000);
            assert!(f.contains("vfs_get_tree"));
        }
        Err(e) => {
            eprintln!("available_filter_functions: {e}");
            assert!(e.to_string().contains("available_filter_functions"), "{e}");
            if is_project_host() {
                assert!(e.to_string().contains("permission denied"), "{e}");
            }
        }
    }
}

#[test]
fn kprobes_real() {
    let s = tracefs::kprobe_support();
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    assert_eq!(s.supported, pmu, "{}", s.reason);
    if is_project_host() {
        assert!(!s.supported, "the project host has no kprobes");
        assert!(!s.kprobe_events);
        assert!(s.reason.contains("unsupported"), "{}", s.reason);
        assert!(s.reason.contains("CONFIG_KPROBES"), "{}", s.reason);
    }
    eprintln!("kprobes: {}", s.reason);
}

#[test]
fn kernel_info_real() {
    let k = KernelInfo::collect_with(&CollectOptions {
        mount_tracefs: false,
        probe_lockdown: true,
    });
    eprintln!("{k}");
    let osrelease = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(k.release, osrelease.trim());
    assert!(k.version().unwrap().0 >= 5);
    assert!(k.btf_vmlinux.value);
    assert!(k.tracefs.value.is_some());
    assert_eq!(k.kprobes.value, tracefs::kprobe_support().supported);
    assert_eq!(k.fentry.value, None);
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(k.root.value, root);
    if root {
        assert_eq!(k.bpf_capable.value, Some(true));
        // As root the lockdown mode can always be read (temporary securityfs mount if needed).
        assert!(k.lockdown.value.is_some(), "{}", k.lockdown.reason);
    }
    if is_project_host() {
        assert_eq!(
            k.lockdown.value,
            Some(Lockdown::Integrity),
            "{}",
            k.lockdown.reason
        );
        assert!(!k.kprobes.value);
        assert!(k.module_btf.value.is_empty());
        assert!(
            k.module_btf.reason.contains("no module support"),
            "{}",
            k.module_btf.reason
        );
    }
    let sysctl = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<i64>().ok();
    assert_eq!(
        k.unprivileged_bpf_disabled.value,
        sysctl("/proc/sys/kernel/unprivileged_bpf_disabled")
    );
    assert_eq!(
        k.perf_event_paranoid.value,
        sysctl("/proc/sys/kernel/perf_event_paranoid")
    );
    let checks = k.checks();
    assert!(checks.iter().all(|c| !c.reason.is_empty()));
    assert_eq!(
        checks.iter().find(|c| c.name == "btf").unwrap().status,
        Status::Ok
    );
    // The plain collect() changes nothing and still answers.
    let plain = KernelInfo::collect();
    assert_eq!(plain.release, k.release);
}

/// The real vmlinux blob, truncated or corrupted, gives errors (or a parse), never a panic.
#[test]
fn damaged_vmlinux_never_panics() {
    let blob = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let mut seed = 0x9e37_79b9u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..12 {
        let cut = (next() % blob.len() as u64) as usize;
        assert!(Btf::from_bytes(&blob[..cut]).is_err(), "truncated at {cut}");
    }
    for _ in 0..12 {
        let mut b = blob.clone();
        for _ in 0..64 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if let Ok(btf) = Btf::from_bytes(&b) {
            for &(s, m) in NEEDED {
                let _ = btf.member_info(s, m);
            }
            let _ = btf.func_params("dax_holder_notify_failure");
        }
    }
    // Module BTF parsed without its base is refused.
    let base = vmlinux();
    let mut split = BtfBuilder::split(base.next_id(), base.str_end());
    split.composite("notify_only_split", false, 8, &[("x", 1, 0, 0)]);
    assert!(Btf::from_bytes(&split.build()).is_err());
}
