use which::which;

/// Fails the BPF build early, with the fix, when bpf-linker is missing.
fn main() {
    let bpf_linker = which("bpf-linker").unwrap_or_else(|err| {
        panic!("bpf-linker not found ({err}): run `cargo xtask setup` to install it")
    });
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
