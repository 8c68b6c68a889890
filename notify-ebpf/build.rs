use which::which;

/// Fails the BPF build early, with the fix, when bpf-linker is missing; and asks bpf-linker for
/// BPF ISA v3, which the probes need for the atomic fetch-add that numbers events.
fn main() {
    let bpf_linker = which("bpf-linker").unwrap_or_else(|err| {
        panic!("bpf-linker not found ({err}): run `cargo xtask setup` to install it")
    });
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
    println!("cargo:rustc-link-arg-bins=--cpu=v3");
}
