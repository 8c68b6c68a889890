//! Builds the BPF object (notify-ebpf) into OUT_DIR, where `src/probes.rs` embeds it, as part of
//! the ordinary `cargo build`.
//!
//! This does what aya-build does (nightly toolchain, `-Z build-std=core`, bpfel-unknown-none,
//! bpf-linker) with one difference that is the reason it exists: the programs number events with
//! an atomic fetch-add, which needs BPF ISA v3 (`-C target-cpu=v3`), and aya-build 0.2 owns
//! `CARGO_ENCODED_RUSTFLAGS` with no way to add a flag. `cargo xtask setup` installs what this
//! needs.
use std::{
    env, fs,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().context("workspace root")?;
    for dir in [
        "notify-ebpf/src",
        "notify-ebpf/Cargo.toml",
        "notify-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let endian = env::var("CARGO_CFG_TARGET_ENDIAN").context("CARGO_CFG_TARGET_ENDIAN")?;
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    let target = if endian == "big" {
        "bpfeb-unknown-none"
    } else {
        "bpfel-unknown-none"
    };
    let target_dir = out_dir.join("ebpf-target");
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".into(),
        "-Clink-arg=--btf".into(),
        "-Ctarget-cpu=v3".into(),
    ]
    .join("\x1f");

    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--release", "--bins"])
        .args(["--package", "notify-ebpf", "--target", target])
        .args(["-Z", "build-std=core"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // The outer build's compiler and wrappers are for the host toolchain, not nightly's.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(key);
    }
    let output = cmd.output().with_context(|| {
        format!("failed to run {cmd:?}: is rustup installed? run `cargo xtask setup`")
    })?;
    if !output.status.success() {
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            println!("cargo:warning={line}");
        }
        bail!(
            "building the eBPF object failed ({}); if the toolchain is missing, run `cargo xtask \
             setup` (nightly rust-src and bpf-linker 0.13 for LLVM 22)",
            output.status
        );
    }
    let object = target_dir.join(target).join("release").join("notify");
    fs::copy(&object, out_dir.join("notify-ebpf.o"))
        .with_context(|| format!("copying {}", object.display()))?;
    Ok(())
}
