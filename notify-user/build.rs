use anyhow::Context as _;
use aya_build::{Package, Toolchain};

/// Builds the BPF object (notify-ebpf, for bpfel-unknown-none with the nightly toolchain and
/// bpf-linker) into OUT_DIR, where `src/loader.rs` embeds it. `cargo xtask setup` installs what
/// this needs.
fn main() -> anyhow::Result<()> {
    let ebpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../notify-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "notify-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF object failed: run `cargo xtask setup` (nightly rust-src, bpf-linker)")
}
