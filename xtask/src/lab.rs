//! `cargo xtask lab` (narrated) and `cargo xtask vm-test` (asserted): boot one
//! VM per kernel and agent flavour, run every scenario inside it, store what
//! came back under `target/lab/<kernel>/<flavour>/<scenario>/` and check it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    checks::{self, Evidence, Outcome, steps},
    host_report, initramfs, kernel,
    kernel_line::Flavor,
    util, vm,
};

pub const SCENARIOS: &[&str] = &[
    "no_holder",
    "mounted",
    "remount",
    "premature",
    "replay",
    "healthmon",
    "ext4",
    "mount_suite",
    "tell",
    "redrive",
    "journal_faults",
    // Last: it unbinds pmem0's namespace (and binds it again).
    "removal",
];

/// Scenarios whose subject is the agent's user-space work (telling XFS, its reports, the
/// journal's closing rules), not how the probes attach: a vm-test runs them in its first
/// attach flavour only, since each costs about a minute of TCG per VM and a second flavour
/// would repeat the same user-space path (their probe events come from the same hooks the
/// other scenarios check in every flavour).
pub const FIRST_FLAVOUR_ONLY: &[&str] = &[
    "healthmon",
    "ext4",
    "tell",
    "redrive",
    "journal_faults",
    "removal",
];

/// The scenarios `flavour`'s VM runs.
fn scenarios_for<'a>(opts: &'a Opts, flavour: &str) -> Vec<&'a str> {
    // Without an agent there is one VM per kernel ("none"): it runs everything.
    let first = flavour == "none" || opts.attach.first().is_none_or(|f| f == flavour);
    opts.scenarios
        .iter()
        .map(String::as_str)
        .filter(|s| first || !FIRST_FLAVOUR_ONLY.contains(s))
        .collect()
}

/// Scenarios run only when named: `selftest_panic` panics the guest kernel, to check that
/// vm-test reports a dying guest (panic lines, console tail), boots it once more and fails on
/// the second death.
pub const SELFTESTS: &[&str] = &["selftest_panic"];

/// Scenarios run only when named, for their length: `crash_loop` starts and kills the agent 50
/// times (about 10 minutes of TCG); docs/RELIABILITY.md records its run.
pub const OPT_IN: &[&str] = &["crash_loop"];

#[derive(Clone, Debug)]
pub struct Opts {
    pub kernels: Vec<Flavor>,
    /// Agent attach modes to run (one VM each); "none" runs without agent.
    pub attach: Vec<String>,
    pub release: bool,
    /// Use this notify binary instead of building one.
    pub agent: Option<PathBuf>,
    pub no_agent: bool,
    pub require_agent: bool,
    pub timeout: Duration,
    pub scenarios: Vec<String>,
    /// Narrate (lab) rather than just assert (vm-test).
    pub narrate: bool,
    /// RUST_LOG for the agent in the guest.
    pub agent_log: Option<String>,
    /// Re-check the console.log of an earlier run instead of booting.
    pub recheck: bool,
    /// Copy each scenario's evidence to `xtask/tests/fixtures/<kernel>-<flavour>/`.
    pub save_fixtures: bool,
}

/// Where recorded runs live for the unit tests.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The files of a scenario kept as a fixture: these, plus the scenario's extra files
/// (`checks::EXTRA_FILES`).
pub const FIXTURE_FILES: &[&str] = &[
    "result.txt",
    "dmesg.txt",
    "events.jsonl",
    "log.txt",
    "doctor.txt",
];

/// Builds notify-user and returns the agent binary, or None (with a reason).
fn agent(opts: &Opts) -> Option<PathBuf> {
    if opts.no_agent {
        eprintln!("lab: running without the agent (--no-agent)");
        return None;
    }
    if let Some(a) = &opts.agent {
        return Some(a.clone());
    }
    eprintln!(
        "lab: cargo build -p notify-user{}",
        if opts.release { " --release" } else { "" }
    );
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-p", "notify-user"]);
    if opts.release {
        c.arg("--release");
    }
    let t0 = Instant::now();
    let ok = c.status().is_ok_and(|s| s.success());
    let bin = util::target_dir()
        .join(if opts.release { "release" } else { "debug" })
        .join("notify");
    if ok && bin.exists() {
        eprintln!(
            "lab: agent built in {:.0?}: {}",
            t0.elapsed(),
            bin.display()
        );
        Some(bin)
    } else {
        eprintln!("lab: agent missing: building notify-user failed; scenarios run without it");
        None
    }
}

/// Runs the lab; Ok(false) when an assertion failed (vm-test).
pub fn run(opts: &Opts) -> Result<bool> {
    let t_all = Instant::now();
    let agent = if opts.recheck { None } else { agent(opts) };
    let flavours: Vec<String> = if agent.is_some() || opts.recheck {
        opts.attach.clone()
    } else {
        vec!["none".to_string()]
    };
    let mut summary: Vec<(String, String, Vec<Outcome>, Duration)> = Vec::new();
    let mut failures = 0usize;
    for &k in &opts.kernels {
        let t0 = Instant::now();
        let kern = kernel::ensure(k)?;
        let (img, rebuilt) = if opts.recheck {
            (PathBuf::new(), false)
        } else {
            initramfs::ensure(&kern, agent.as_deref())?
        };
        eprintln!(
            "lab: {} kernel {} ready in {:.1?} (initramfs {})",
            k.label(),
            kern.release,
            t0.elapsed(),
            if rebuilt { "rebuilt" } else { "cached" }
        );
        for fl in &flavours {
            let outcomes = boot_one(opts, &kern, &img, fl)?;
            failures += outcomes.iter().filter(|o| !o.passed()).count();
            summary.push((k.label().to_string(), fl.clone(), outcomes, t0.elapsed()));
        }
    }
    println!("\n== summary ({:.0?} total)", t_all.elapsed());
    for (k, fl, outs, _) in &summary {
        for o in outs {
            let n_ok = o.checks.iter().filter(|c| c.ok).count();
            println!(
                "  {:<5} {:<7} {:<10} {} ({}/{} checks){}",
                k,
                fl,
                o.scenario,
                if o.passed() { "PASS" } else { "FAIL" },
                n_ok,
                o.checks.len(),
                if o.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", o.skipped.join("; "))
                }
            );
        }
    }
    println!("  results: {}", util::target_dir().join("lab").display());
    if failures > 0 {
        println!("  {failures} scenario(s) FAILED");
    }
    let total: usize = summary.iter().map(|(_, _, outs, _)| outs.len()).sum();
    // The plain closing line test harnesses and CI read.
    println!("vm-test: {} passed, {failures} failed", total - failures);
    Ok(failures == 0 || opts.narrate)
}

/// The console of a first boot that died, kept beside the second's console.log.
const FIRST_ATTEMPT: &str = "console.attempt1.log";

fn boot_one(opts: &Opts, kern: &kernel::Kernel, img: &Path, flavour: &str) -> Result<Vec<Outcome>> {
    let out = util::target_dir()
        .join("lab")
        .join(kern.flavor.label())
        .join(flavour);
    if opts.recheck {
        let console = fs::read_to_string(out.join("console.log"))?;
        println!(
            "\n== {} agent={flavour}: re-checking {}",
            kern.flavor.label(),
            out.display()
        );
        return check_transcript(
            opts,
            kern,
            flavour,
            &out,
            &host_report::with_host_report(
                vm::parse_console(&console),
                &out,
                opts.agent.as_deref(),
            ),
            None,
        );
    }
    let _ = fs::remove_dir_all(&out);
    util::mkdirp(&out)?;
    let mut append = format!(
        "lab.attach={flavour} lab.scenarios={}",
        scenarios_for(opts, flavour).join(",")
    );
    if let Some(l) = &opts.agent_log {
        append.push_str(&format!(" lab.rust_log={l}"));
    }
    println!(
        "\n== {} ({}) agent={flavour}: booting qemu (TCG)",
        kern.flavor.label(),
        kern.release
    );
    let narrate = opts.narrate;
    let live = |line: &str| {
        if let Some(s) = line.strip_prefix("@@NOTIFY-SAY ") {
            if narrate {
                println!("   {s}");
            }
        } else if let Some(s) = line.strip_prefix("@@NOTIFY-SCENARIO-BEGIN ") {
            println!(" -- {s}");
        } else if let Some(s) = line.strip_prefix("@@NOTIFY-WARN ") {
            println!("   warning: {s}");
        }
    };
    // A guest that booted and then stopped without finishing (a kernel panic or reset: qemu
    // exits by itself) is booted once more. The first attempt stays on disk and in the
    // output, and the summary says it happened; a second death fails the run.
    let mut attempt = 1;
    let boot = loop {
        let boot = vm::boot(
            &kern.vmlinuz,
            img,
            &append,
            opts.timeout,
            &out.join("console.log"),
            live,
        )?;
        let t = vm::parse_console(&boot.console);
        let died = !t.done && !boot.timed_out && t.booted.is_some();
        if !(died && attempt == 1) {
            break boot;
        }
        let first = out.join(FIRST_ATTEMPT);
        fs::rename(out.join("console.log"), &first)?;
        println!(
            " -- the guest stopped after {:.1?} without finishing (qemu exit {:?}), in scenario \
             {}; its console: {}",
            boot.elapsed,
            boot.exit,
            t.begun.last().map_or("(none)", String::as_str),
            first.display()
        );
        for l in &t.trouble {
            println!("   ! {l}");
        }
        for l in &t.tail {
            println!("   | {l}");
        }
        println!(" -- booting it once more (a second death fails the run)");
        attempt += 1;
    };
    let t = host_report::with_host_report(
        vm::parse_console(&boot.console),
        &out,
        opts.agent.as_deref(),
    );
    check_transcript(opts, kern, flavour, &out, &t, Some(&boot))
}

/// Stores what the guest sent and runs the assertions of every scenario.
fn check_transcript(
    opts: &Opts,
    kern: &kernel::Kernel,
    flavour: &str,
    out: &Path,
    t: &vm::Transcript,
    boot: Option<&vm::Boot>,
) -> Result<Vec<Outcome>> {
    let narrate = opts.narrate;
    // Store every file the guest sent.
    for (name, body) in &t.files {
        let p = out.join(name);
        util::mkdirp(p.parent().unwrap())?;
        fs::write(&p, body)?;
    }
    if let Some(doc) = t.file("doctor", "doctor.txt") {
        fs::write(out.parent().unwrap().join("doctor.txt"), doc)?;
    }
    let default_boot = vm::Boot::default();
    let boot = boot.unwrap_or(&default_boot);
    println!(
        " -- VM {} in {:.1?}{}{}",
        if t.done { "finished" } else { "did NOT finish" },
        boot.elapsed,
        if boot.timed_out {
            " (TIMED OUT, killed)"
        } else {
            ""
        },
        t.booted
            .as_ref()
            .map_or(" (never reached /init)".to_string(), |r| format!(
                ", guest {r}"
            )),
    );
    let mut outcomes = Vec::new();
    let mut vm_check = Outcome {
        scenario: "vm".into(),
        ..Default::default()
    };
    vm_check.checks.push(checks::Check {
        what: "guest ran to the end".into(),
        ok: t.done && !boot.timed_out,
        detail: format!(
            "done={} timed_out={}{} qemu exit={:?} warnings={:?}; see {}",
            t.done,
            boot.timed_out,
            if boot.killed_after_done {
                " (did not power off within 30 s of the end: stopped)"
            } else {
                ""
            },
            boot.exit,
            t.warnings,
            out.join("console.log").display()
        ),
    });
    if !t.trouble.is_empty() {
        vm_check.checks.push(checks::Check {
            what: "guest kernel reported no panic, oops, BUG or OOM".into(),
            ok: false,
            detail: t.trouble.join("\n"),
        });
    }
    if !t.done {
        // Without this, CI shows only that the guest stopped, not where.
        println!(
            "   console tail (full log: {}):",
            out.join("console.log").display()
        );
        for l in &t.tail {
            println!("   | {l}");
        }
    }
    if out.join(FIRST_ATTEMPT).exists() {
        vm_check.skipped.push(format!(
            "the first boot died before the end: see {FIRST_ATTEMPT}"
        ));
    }
    report(&vm_check);
    outcomes.push(vm_check);
    let mut wanted: Vec<&str> = vec!["doctor"];
    wanted.extend(scenarios_for(opts, flavour));
    for sc in wanted {
        let ev = Evidence::parse(|f| t.file(sc, f));
        // An agent flavour whose guest had no agent is a failure, not a skip.
        let o = checks::check_scenario(sc, &ev, opts.require_agent || flavour != "none");
        if narrate {
            narrate_scenario(sc, &ev);
        }
        report(&o);
        outcomes.push(o);
        if opts.save_fixtures {
            let to = fixtures_dir()
                .join(format!("{}-{flavour}", kern.flavor.label()))
                .join(sc);
            let _ = fs::remove_dir_all(&to);
            util::mkdirp(&to)?;
            for f in FIXTURE_FILES.iter().chain(checks::EXTRA_FILES) {
                if let Some(body) = t.file(sc, f) {
                    fs::write(to.join(f), body)?;
                }
            }
            fs::write(
                to.parent().unwrap().join("kernel.txt"),
                format!("{}\n", kern.release),
            )?;
        }
    }
    Ok(outcomes)
}

/// The lab's story of a scenario: the interesting dmesg lines and events.
fn narrate_scenario(sc: &str, ev: &Evidence) {
    let keys = [
        "Memory failure",
        "not ready for notify_failure",
        "Sending SIGBUS",
        "Mounting V5",
        "Ending clean mount",
        "Unmounting",
        "Corruption",
        "Shutting down",
    ];
    let lines: Vec<&str> = ev
        .dmesg
        .lines()
        .filter(|l| keys.iter().any(|k| l.contains(k)))
        .collect();
    if !lines.is_empty() {
        println!("   [{sc}] kernel said:");
        for l in lines {
            println!("     {l}");
        }
    }
    if let Some(file) = ev.events("events.jsonl") {
        let evs = file.by_seq();
        let interesting: Vec<_> = evs
            .iter()
            .filter(|e| !(steps::Kind::MfEvent.of(e) || steps::Kind::MemoryFailureExit.of(e)))
            .collect();
        println!("   [{sc}] agent saw {} events:", evs.len());
        for e in interesting.iter().take(40) {
            println!("     {}", steps::brief(e));
        }
    }
}

fn report(o: &Outcome) {
    if o.checks.is_empty() && o.skipped.is_empty() {
        return;
    }
    for c in &o.checks {
        if c.ok {
            println!("   ok   {}: {}", o.scenario, c.what);
        } else {
            println!(
                "   FAIL {}: {}\n        {}",
                o.scenario,
                c.what,
                c.detail.replace('\n', "\n        ")
            );
        }
    }
    for s in &o.skipped {
        println!("   skip {}: {s}", o.scenario);
    }
}
