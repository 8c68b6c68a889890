//! `cargo xtask setup`: everything a fresh Debian bookworm machine needs to
//! build notify and run the VM lab. Idempotent; every step checks first.

use std::{os::unix::fs::symlink, path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, run, try_output};

/// Debian packages the lab (and the BPF build) needs on the host.
pub const APT_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "xfsprogs",
    // The lab's ext4 scenario: a filesystem on pmem that never registers as dax holder.
    "e2fsprogs",
    "busybox-static",
    "kmod",
    "cpio",
    "dmsetup",
    "gcc",
    "libc6-dev",
    "xz-utils",
    "zstd",
    // notify agent's tests: a real Prometheus scrapes it; systemd-analyze verifies its unit.
    "prometheus",
    "systemd",
    // The Debian package's test (`cargo xtask deb --check`): `man -w notify` finds the
    // installed pages (man-db), the packaged binary is stripped (binutils' strip; promtool for
    // the alert rules' tests comes with `prometheus` above).
    "man-db",
    "binutils",
    // notify report --png renders the SVG with rsvg-convert.
    "librsvg2-bin",
    // The BTF parser's host tests cross-check offsets and type records against pahole and
    // bpftool.
    "dwarves",
    "bpftool",
];

/// What only the benchmarks need, installed by `cargo xtask bench` (not by setup, so the test
/// run does not pull LLVM in for bpftrace).
pub const BENCH_PACKAGES: &[&str] = &[
    // probe-cost, footprint: the guest runs the host's bpftrace and bpftool (its /usr over
    // virtio-9p) to compare notify's per-hit BPF cost and footprint with bpftrace's (bpftool
    // is also in APT_PACKAGES, for the host tests).
    "bpftrace",
    "bpftool",
    // footprint: Debian's rasdaemon, run in the guest the same way.
    "rasdaemon",
    // mappers: the peers notify's /proc scan is timed against.
    "psmisc",
    "lsof",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
/// The fuzz runner (`cargo xtask fuzz`, and the test command's fuzz smoke). Building it from
/// crates.io took 23 s here.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn setup() -> Result<()> {
    let t0 = Instant::now();
    nightly()?;
    bpf_linker()?;
    cargo_fuzz()?;
    apt_packages()?;
    python_modules()?;
    eprintln!("setup: all done in {:.1?}", t0.elapsed());
    Ok(())
}

fn nightly() -> Result<()> {
    let toolchains = try_output("rustup", &["toolchain", "list"]).unwrap_or_default();
    if toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("setup: nightly toolchain present");
    } else {
        eprintln!("setup: installing the nightly toolchain");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let comps = try_output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    if comps.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("setup: rust-src present");
    } else {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// The nightly sysroot's `lib/`, where its libLLVM lives.
pub fn nightly_libdir() -> Result<PathBuf> {
    let sysroot = try_output("rustc", &["+nightly", "--print", "sysroot"])
        .context("rustc +nightly --print sysroot")?;
    Ok(PathBuf::from(sysroot.trim()).join("lib"))
}

/// bpf-linker links against the nightly toolchain's libLLVM, which is not on
/// the default library path: cargo +nightly (through rustup) puts it there when
/// it runs the linker, so check it the same way.
fn bpf_linker_version(libdir: &std::path::Path) -> Option<String> {
    let out = Command::new("bpf-linker")
        .arg("--version")
        .env("LD_LIBRARY_PATH", libdir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn bpf_linker() -> Result<()> {
    let libdir = nightly_libdir()?;
    if let Some(v) = bpf_linker_version(&libdir) {
        if v.contains(BPF_LINKER_VERSION) {
            eprintln!("setup: {v} present");
            return Ok(());
        }
        eprintln!("setup: found {v}, want {BPF_LINKER_VERSION}");
    }
    // bpf-linker's llvm-sys wants an LLVM prefix with lib/libLLVM.so: point it at
    // the nightly toolchain's own libLLVM.so.22* so both use the same LLVM.
    let llvm = std::fs::read_dir(&libdir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.22"))
        })
        .with_context(|| format!("no libLLVM.so.22* in {}", libdir.display()))?;
    let prefix = util::target_dir().join("llvm-prefix");
    util::mkdirp(&prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    symlink(&llvm, &link).with_context(|| format!("symlinking {}", link.display()))?;
    eprintln!(
        "setup: installing bpf-linker {BPF_LINKER_VERSION} (LLVM_PREFIX={})",
        prefix.display()
    );
    run(Command::new("cargo")
        .args([
            "+nightly",
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--no-default-features", "--features", "llvm-22", "--locked"])
        .env("LLVM_PREFIX", &prefix))?;
    match bpf_linker_version(&libdir) {
        Some(v) if v.contains(BPF_LINKER_VERSION) => Ok(()),
        other => bail!("bpf-linker still not usable after install: {other:?}"),
    }
}

/// Python modules the tests use: `jsonschema`, the independent validator of
/// docs/events.schema.json (installed from PyPI for the `python3` on PATH, which may not be
/// Debian's).
const PYTHON_MODULES: &[&str] = &["jsonschema"];

fn python_modules() -> Result<()> {
    for m in PYTHON_MODULES {
        let present = Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            eprintln!("setup: python module {m} present");
        } else {
            eprintln!("setup: installing python module {m}");
            run(Command::new("python3").args(["-m", "pip", "install", "--quiet", m]))?;
        }
    }
    Ok(())
}

fn cargo_fuzz() -> Result<()> {
    let v = try_output("cargo", &["fuzz", "--version"]).unwrap_or_default();
    if v.contains(CARGO_FUZZ_VERSION) {
        eprintln!("setup: {} present", v.trim());
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}

/// Packages of `list` that dpkg does not report as installed.
fn missing_of(list: &[&'static str]) -> Vec<&'static str> {
    list.iter()
        .copied()
        .filter(|p| {
            try_output("dpkg-query", &["-W", "-f=${Status}", p])
                .is_none_or(|s| !s.contains("install ok installed"))
        })
        .collect()
}

fn apt_packages() -> Result<()> {
    apt_install(APT_PACKAGES)
}

/// Installs what the benchmarks need beyond setup's packages (quick when present).
pub fn bench_packages() -> Result<()> {
    apt_install(BENCH_PACKAGES)
}

fn apt_install(list: &[&'static str]) -> Result<()> {
    let missing = missing_of(list);
    if missing.is_empty() {
        eprintln!("setup: Debian packages present");
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    let sudo = !util::is_root();
    let apt = |args: &[&str]| {
        let mut c = if sudo {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update"]))?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run(&mut apt(&args))
}
