//! `cargo xtask fuzz [--target T] [--time S]`: the fuzz targets of fuzz/ (one per parser of
//! outside bytes), run with cargo-fuzz on the nightly toolchain, one after another (the machine
//! is shared: one libFuzzer job at a time). `cargo xtask test` runs [`smoke`]: every target
//! replays its seeds and regression inputs, then a few thousand new inputs.
//!
//! Built without a sanitizer (`-s none`): the parsers are safe Rust (one length-checked
//! `read_unaligned`), so what can go wrong is a panic, an overflow or a debug assertion, which
//! `-a` keeps on; ASan would halve the executions a run gets for nothing it could find here.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util;

pub struct FuzzOpts {
    /// One target, or all of them.
    pub target: Option<String>,
    /// Per target, seconds.
    pub time: u64,
    /// Per target, executions (libFuzzer's -runs); the run stops at whichever comes first.
    pub runs: Option<u64>,
    /// Start from the seeds and regressions only, in a corpus thrown away after (the smoke:
    /// the same work on every machine, however big a developer's fuzz/corpus has grown).
    pub scratch: bool,
}

/// What one target's run did, from libFuzzer's final statistics.
#[derive(Debug, Default, PartialEq)]
pub struct Stats {
    pub executions: u64,
    pub per_sec: u64,
    pub new_units: u64,
}

/// libFuzzer's `-print_final_stats=1` lines (`stat::number_of_executed_units: N`, ...).
pub fn parse_stats(stderr: &str) -> Option<Stats> {
    let mut s = Stats::default();
    let mut seen = false;
    for line in stderr.lines() {
        let Some((key, value)) = line.trim().strip_prefix("stat::").and_then(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((k, v.trim().parse::<u64>().ok()?))
        }) else {
            continue;
        };
        match key {
            "number_of_executed_units" => (s.executions, seen) = (value, true),
            "average_exec_per_sec" => s.per_sec = value,
            "new_units_added" => s.new_units = value,
            _ => {}
        }
    }
    seen.then_some(s)
}

fn fuzz_dir() -> PathBuf {
    util::workspace_root().join("fuzz")
}

/// The targets: fuzz/fuzz_targets/*.rs, sorted.
pub fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".rs")?.to_string())
        })
        .collect();
    v.sort();
    Ok(v)
}

/// `cargo fuzz` on nightly (through rustup, as notify-user's build.rs builds the BPF object),
/// with the outer build's toolchain settings removed.
fn cargo_fuzz(verb: &str) -> Command {
    let mut c = Command::new("rustup");
    c.args([
        "run",
        "nightly",
        "cargo",
        "fuzz",
        verb,
        "--sanitizer",
        "none",
    ])
    .args(["--debug-assertions", "--fuzz-dir"])
    .arg(fuzz_dir())
    .arg("--target-dir")
    .arg(fuzz_dir().join("target"));
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
    ] {
        c.env_remove(key);
    }
    c
}

fn build() -> Result<()> {
    let t0 = Instant::now();
    util::run(&mut cargo_fuzz("build")).context(
        "building the fuzz targets failed: `cargo xtask setup` installs cargo-fuzz and nightly",
    )?;
    eprintln!("fuzz: targets built in {:.1?}", t0.elapsed());
    Ok(())
}

/// Runs one target: new inputs go to fuzz/corpus/T (not kept in git), the seeds and regression
/// inputs are read first, so an input that once crashed fails the run again. Err on a crash.
fn run_one(t: &str, opts: &FuzzOpts) -> Result<(Stats, Duration)> {
    let dir = fuzz_dir();
    let corpus = if opts.scratch {
        let c = dir.join("target").join("smoke-corpus").join(t);
        if c.exists() {
            fs::remove_dir_all(&c).with_context(|| format!("clearing {}", c.display()))?;
        }
        c
    } else {
        dir.join("corpus").join(t)
    };
    util::mkdirp(&corpus)?;
    let mut c = cargo_fuzz("run");
    c.arg(t).arg(&corpus);
    for d in ["seeds", "regressions"] {
        let p = dir.join(d).join(t);
        if p.is_dir() {
            c.arg(p);
        }
    }
    c.arg("--")
        .arg(format!("-max_total_time={}", opts.time))
        .args(["-print_final_stats=1", "-timeout=10"])
        .arg(format!(
            "-artifact_prefix={}/",
            artifacts(&dir, t)?.display()
        ));
    if let Some(n) = opts.runs {
        c.arg(format!("-runs={n}"));
    }
    let t0 = Instant::now();
    let out = c
        .output()
        .with_context(|| format!("running {c:?}: is cargo-fuzz installed? `cargo xtask setup`"))?;
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // The panic and libFuzzer's crash report, not cargo-fuzz's advice after them.
        for l in stderr.lines().filter(|l| {
            l.contains("panicked at")
                || l.contains("attempt to")
                || l.contains("assertion")
                || l.contains("ERROR: libFuzzer")
                || l.contains("Test unit written to")
                || l.starts_with("SUMMARY")
        }) {
            eprintln!("  {l}");
        }
        bail!(
            "fuzz target {t} failed ({}): the input is under {}; fix the parser, then keep the \
             input under fuzz/regressions/{t}/ so every smoke replays it",
            out.status,
            artifacts(&dir, t)?.display()
        );
    }
    let stats = parse_stats(&stderr)
        .with_context(|| format!("fuzz target {t}: no final statistics in libFuzzer's output"))?;
    Ok((stats, took))
}

fn artifacts(dir: &Path, t: &str) -> Result<PathBuf> {
    let p = dir.join("artifacts").join(t);
    util::mkdirp(&p)?;
    Ok(p)
}

pub fn run(opts: &FuzzOpts) -> Result<()> {
    let all = targets()?;
    let chosen = match &opts.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => bail!("unknown fuzz target {t:?} (known: {})", all.join(", ")),
        None => all,
    };
    build()?;
    let mut failed = Vec::new();
    eprintln!(
        "fuzz: {:<18} {:>12} {:>9} {:>6} {:>8}",
        "target", "executions", "exec/s", "new", "time"
    );
    for t in &chosen {
        match run_one(t, opts) {
            // libFuzzer's own average counts whole seconds (0 for a run under one): the rate
            // shown is from the wall time measured here.
            Ok((s, took)) => eprintln!(
                "fuzz: {t:<18} {:>12} {:>9.0} {:>6} {:>7.0?}",
                s.executions,
                s.executions as f64 / took.as_secs_f64().max(1e-3),
                s.new_units,
                took
            ),
            Err(e) => {
                eprintln!("fuzz: {t}: {e:#}");
                failed.push(t.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz: {} target(s) crashed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The test command's share: every target briefly (its seeds and regressions, then up to 100000
/// executions or 5 s, whichever first).
pub fn smoke() -> Result<()> {
    run(&FuzzOpts {
        target: None,
        time: 5,
        runs: Some(100_000),
        scratch: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_of_a_real_libfuzzer_run() {
        // The tail of `cargo fuzz run mountinfo -- -runs=3000 -print_final_stats=1`, this host.
        let out = "Done 3000 runs in 0 second(s)\n\
                   stat::number_of_executed_units: 3000\n\
                   stat::average_exec_per_sec:     0\n\
                   stat::new_units_added:          142\n\
                   stat::slowest_unit_time_sec:    0\n\
                   stat::peak_rss_mb:              48\n";
        assert_eq!(
            parse_stats(out),
            Some(Stats {
                executions: 3000,
                per_sec: 0,
                new_units: 142
            })
        );
        assert_eq!(parse_stats("INFO: Seed: 1\n"), None);
    }
}
