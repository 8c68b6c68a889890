//! `cargo xtask test`: everything, in the order a fresh machine needs it.
//!
//! 1. setup (Debian packages, nightly rust-src, bpf-linker; idempotent);
//! 2. the workspace's tests: unit tests, and host tests that use a real XFS on loop devices,
//!    real processes and signals, and the real BPF object on the host kernel (root);
//! 3. the Debian package: built from the tests' notify binary, installed with dpkg, run,
//!    removed and purged (`cargo xtask deb --check`, seconds);
//! 4. a fuzz smoke: every fuzz target replays its seeds and regression inputs, then a few
//!    thousand new inputs (`cargo xtask fuzz` for a real run);
//! 5. the VM lab's scenarios as assertions on Debian's 6.1, 6.12 and newest kernel lines, kprobe
//!    and fentry (the agent-side scenarios in the first flavour only).

use std::process::Command;

use anyhow::{Result, bail};

use crate::{deb, deb_check, disk, fuzz, lab, setup, util};

pub struct TestOpts {
    pub vm: Option<lab::Opts>,
}

pub fn run(opts: TestOpts) -> Result<()> {
    // Before the first download or build: a full disk fails minutes in with rustc's or qemu's
    // word for it, not ours.
    disk::check_room(disk::NEEDED_BYTES)?;
    setup::setup()?;
    if !util::is_root() {
        bail!(
            "the tests need root (BPF, loop devices, mount, signals to other users' processes): \
             run `sudo -E cargo xtask test`"
        );
    }
    let mut c = Command::new(env!("CARGO"));
    // The default members: notify-ebpf builds only for the BPF target (via notify-user's
    // build.rs). Cargo runs the test binaries one after another. The root-only host tests are
    // #[ignore]d (a plain `cargo test` skips them visibly): run them here, as root.
    // `split_btf_from_debian_module` is a manual tool (it wants the BTF of a Debian kernel in
    // two environment variables); the VM lab parses that split BTF for real in every guest.
    c.args([
        "test",
        "--all-targets",
        "--",
        "--include-ignored",
        "--skip",
        "split_btf_from_debian_module",
    ]);
    util::run(&mut c)?;
    // The debug binary the host tests just ran (a release build would cost CI minutes; what
    // is checked here is the packaging, the same for either).
    let deb = deb::build(&deb::DebOpts {
        binary: Some(util::target_dir().join("debug/notify")),
        out_dir: None,
    })?;
    deb_check::check(&deb)?;
    fuzz::smoke()?;
    let Some(mut vm) = opts.vm else {
        eprintln!("xtask test: VM lab skipped (--no-vm)");
        return Ok(());
    };
    // A test run must prove the agent in the guest: a notify that failed to build is a failure
    // here, not a skipped check.
    vm.require_agent = true;
    let ok = lab::run(&vm)?;
    if !ok {
        bail!("vm-test: an assertion failed (see the summary above and target/lab/)");
    }
    Ok(())
}
