//! Developer tasks for notify: `cargo xtask setup|build|run|lab|vm-test|fuzz`.

mod apt;
mod bench;
mod checks;
mod deb;
mod deb_check;
mod disk;
mod fuzz;
mod host_report;
mod initramfs;
mod kernel;
mod kernel_line;
mod lab;
mod setup;
mod test;
mod util;
mod vm;

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "notify developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and the VM lab need (idempotent).
    Setup,
    /// Build notify-user (the BPF object comes from its build.rs).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build, then run `notify ARGS` as root (through sudo if needed).
    Run {
        #[arg(long)]
        release: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Narrated demo: boot the lab VM(s) and tell what happens.
    Lab(LabArgs),
    /// The lab's scenarios as assertions; exits non-zero on a failure.
    VmTest(LabArgs),
    /// Everything: setup, the workspace's unit and host tests, then vm-test (README's test
    /// command, what CI runs).
    Test {
        /// Skip the VM lab.
        #[arg(long)]
        no_vm: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// The Debian package (target/deb/notify_VERSION_ARCH.deb): binary, unit, conffile, docs,
    /// completions, man pages, alert rules, dashboard.
    Deb {
        /// Package this notify binary instead of building a release one.
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Then install it with dpkg, run it, remove and purge it, checking each step (root).
        #[arg(long)]
        check: bool,
    },
    /// Fuzz the parsers of outside bytes (fuzz/, cargo-fuzz on nightly), target after target.
    Fuzz {
        /// One target (fuzz/fuzz_targets/T.rs); all by default.
        #[arg(long)]
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Stop a target after this many executions (before --time if reached first).
        #[arg(long)]
        runs: Option<u64>,
        /// Start from the seeds and regressions only (a throw-away corpus), as the test
        /// command's smoke does (`--time 5 --runs 100000 --scratch`).
        #[arg(long)]
        scratch: bool,
    },
    /// One benchmark figure of docs/BENCHMARKS.md (pipeline, mappers, mount-overhead, storm);
    /// rewrites its section. Not part of `test`.
    Bench {
        name: String,
        /// Rounds (host) or A/B block pairs (mount-overhead).
        #[arg(long)]
        rounds: Option<u32>,
        /// pipeline: skip criterion's statistics, only the alternated figures.
        #[arg(long)]
        quick: bool,
        /// VM benchmarks: one kernel line (6.1, 6.12, 7.2, 7.3 or newest).
        #[arg(long, default_value = "6.12")]
        kernel: String,
        #[arg(long, default_value = "kprobe")]
        attach: String,
        /// mount-overhead: cycles per block; storm: pages to poison.
        #[arg(long)]
        size: Option<u32>,
        /// Hard limit for the VM, seconds.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
        /// mount-overhead: guest clock driven by executed instructions (qemu `-icount
        /// shift=N,sleep=off`, 2^N ns per instruction; 0: guest ns = instructions).
        #[arg(long, value_name = "SHIFT")]
        icount: Option<u32>,
        /// mount-overhead: the guest's vCPUs (default 2). With 1 and `--icount`, a thread's CPU
        /// time is its own instructions: with two, both vCPUs share qemu's one instruction
        /// counter, so a running thread's clock also moves while the other vCPU runs.
        #[arg(long, value_name = "N")]
        vcpus: Option<u32>,
    },
}

#[derive(Args)]
struct LabArgs {
    /// Debian kernel line(s), comma-separated: 6.1, 6.12, 7.2 (sid), 7.3 (trixie-backports),
    /// newest (the newest line the lab knows: 7.3) or all (6.1, 6.12 and the newest).
    #[arg(long, default_value = "all")]
    kernel: String,
    /// Agent attach modes, one VM each (comma-separated: kprobe,fentry,auto).
    /// Defaults: lab kprobe, vm-test kprobe,fentry.
    #[arg(long, value_delimiter = ',')]
    attach: Vec<String>,
    /// Scenarios to run, in order.
    #[arg(long, value_delimiter = ',', default_values_t = lab::SCENARIOS.iter().map(|s| s.to_string()))]
    scenarios: Vec<String>,
    /// Use the release build of the agent.
    #[arg(long)]
    release: bool,
    /// Use this notify binary instead of building notify-user.
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Run the scenarios without the agent (kernel-side checks only).
    #[arg(long, conflicts_with = "agent")]
    no_agent: bool,
    /// Fail (instead of skipping event checks) when the agent is missing.
    #[arg(long)]
    require_agent: bool,
    /// RUST_LOG for the agent inside the guest (e.g. trace); its stderr is agent.log.
    #[arg(long)]
    agent_log: Option<String>,
    /// Re-run the assertions on the console.log of the last run (no boot).
    #[arg(long)]
    recheck: bool,
    /// Save each scenario's evidence under xtask/tests/fixtures/ for the unit tests.
    #[arg(long)]
    save_fixtures: bool,
    /// Hard limit per VM, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

impl LabArgs {
    fn opts(self, narrate: bool) -> Result<lab::Opts> {
        let attach = if self.attach.is_empty() {
            if narrate {
                vec!["kprobe".into()]
            } else {
                vec!["kprobe".into(), "fentry".into()]
            }
        } else {
            self.attach
        };
        for a in &attach {
            if !matches!(a.as_str(), "kprobe" | "fentry" | "auto" | "none") {
                bail!("unknown attach mode {a:?}");
            }
        }
        for s in &self.scenarios {
            if !lab::SCENARIOS.contains(&s.as_str())
                && !lab::SELFTESTS.contains(&s.as_str())
                && !lab::OPT_IN.contains(&s.as_str())
            {
                bail!(
                    "unknown scenario {s:?} (known: {}; run only when named: {}; harness \
                     self-tests: {})",
                    lab::SCENARIOS.join(", "),
                    lab::OPT_IN.join(", "),
                    lab::SELFTESTS.join(", ")
                );
            }
        }
        Ok(lab::Opts {
            kernels: kernel_line::Flavor::parse(&self.kernel)?,
            attach,
            release: self.release,
            agent: self.agent,
            no_agent: self.no_agent,
            require_agent: self.require_agent,
            timeout: Duration::from_secs(self.timeout),
            scenarios: self.scenarios,
            narrate,
            save_fixtures: self.save_fixtures,
            recheck: self.recheck,
            agent_log: self.agent_log,
        })
    }
}

pub(crate) fn cargo_build(release: bool) -> Result<PathBuf> {
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-p", "notify-user"]);
    if release {
        c.arg("--release");
    }
    util::run(&mut c)?;
    Ok(util::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("notify"))
}

fn main() -> std::process::ExitCode {
    // `{:#}`: the error and its causes on one line. The Debug form would add a
    // backtrace whenever RUST_BACKTRACE is set, burying the summary above it.
    match run(Cli::parse().cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Build { release } => cargo_build(release).map(|_| ()),
        Cmd::Run { release, args } => {
            let bin = cargo_build(release)?;
            let mut c = if util::is_root() {
                Command::new(&bin)
            } else {
                let mut c = Command::new("sudo");
                c.arg("-E").arg(&bin);
                c
            };
            let status = c.args(&args).status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Lab(a) => lab::run(&a.opts(true)?).map(|_| ()),
        Cmd::Test { no_vm, lab } => test::run(test::TestOpts {
            vm: if no_vm { None } else { Some(lab.opts(false)?) },
        }),
        Cmd::Fuzz {
            target,
            time,
            runs,
            scratch,
        } => fuzz::run(&fuzz::FuzzOpts {
            target,
            time,
            runs,
            scratch,
        }),
        Cmd::Bench {
            name,
            rounds,
            quick,
            kernel,
            attach,
            size,
            timeout,
            icount,
            vcpus,
        } => bench::run(&bench::BenchOpts {
            name,
            rounds,
            kernel,
            attach,
            quick,
            timeout: Duration::from_secs(timeout),
            size,
            icount,
            vcpus,
        }),
        Cmd::Deb { binary, check } => {
            let deb = deb::build(&deb::DebOpts {
                binary,
                out_dir: None,
            })?;
            if check {
                deb_check::check(&deb)?;
            }
            Ok(())
        }
        Cmd::VmTest(a) => {
            if !lab::run(&a.opts(false)?)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
