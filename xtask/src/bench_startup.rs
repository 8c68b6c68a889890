//! `cargo xtask bench startup`: start-up latency, exec -> ready, of the agent (every probe
//! attached and the start-up replay of a journal with one pending record done: its
//! "notify: ready" line) against bpftrace attaching the same probe set (lab/probecost.bt +
//! lab/startup.bt: its BEGIN line), alternated in one boot (guest side: lab/bench.sh
//! `bench_startup`, timing in lab/benchhelp.c `startup`). With `NOTIFY_BENCH_BASELINE=PATH`
//! (an older notify binary) the image also holds that build as /bin/notify-baseline, a third
//! variant in the same boot: before/after side by side.
//!
//! The agent runs with NOTIFY_TIMINGS=1; its phase lines (notify-user/src/probe/phases.rs) give
//! the table of where the time goes.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Result;

use super::{BenchOpts, Row, get, median, num, section_head, write_section};
use crate::vm;

/// Goal: the agent's start-up at most this fraction of bpftrace's.
const GOAL: f64 = 0.5;

/// Environment variable naming an older notify binary to run as a third variant.
pub(super) const BASELINE_ENV: &str = "NOTIFY_BENCH_BASELINE";

fn rows(text: &str) -> Vec<Row> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// "median (min .. max)" of values.
fn spread(mut v: Vec<f64>, digits: usize) -> String {
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (lo, hi) = (v[0], v[v.len() - 1]);
    // The same median as the goal's verdict (the mean of the middle two for an even count).
    format!(
        "{:.digits$} ({lo:.digits$} .. {hi:.digits$})",
        median(&mut v)
    )
}

/// One phase line: "round=R variant=V notify: timing: NAME W ms cpu C ms at A ms".
fn phase(line: &str) -> Option<(String, String, f64, f64)> {
    let (head, rest) = line.split_once(" notify: timing: ")?;
    let variant = head
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("variant="))?;
    let (name, nums) = rest.rsplit_once(" ms cpu ")?;
    let (name, wall) = name.rsplit_once(' ')?;
    let cpu = nums.split_whitespace().next()?;
    Some((
        variant.to_string(),
        name.to_string(),
        wall.parse().ok()?,
        cpu.parse().ok()?,
    ))
}

pub(super) fn report(
    o: &BenchOpts,
    mach: &str,
    vm_line: &str,
    t: &vm::Transcript,
    out: &Path,
) -> Result<()> {
    let d = "bench-startup";
    let rs = rows(t.file(d, "rounds.txt").unwrap_or(""));
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "startup (VM lab): exec -> every probe attached and the journal replayed, notify agent vs bpftrace",
        "guest loop `bench_startup` in `lab/bench.sh`, timing in `lab/benchhelp.c` `startup`",
        Some(mach),
    )?;
    writeln!(b, "{vm_line}\n")?;
    writeln!(
        b,
        "Per round, in one boot, the order rotating every round (one untimed warm-up run of each first): `benchhelp startup` takes t0, forks and execs the tool with its stdout and stderr on a pipe and takes t1 at its ready line, then SIGINTs it. notify: `NOTIFY_TIMINGS=1 notify agent -o json --journal J --attach {} --metrics-addr off --output F` (release build), J a copy of a journal holding one pending record (a notification journaled while the XFS was unmounted; the XFS is mounted when the agent starts, so the start-up replay resolves the record's owner), ready = its `notify: ready` line (after the start-up replay). bpftrace: the host's package (over virtio-9p, host loader and libraries) running lab/probecost.bt + lab/startup.bt with notify's offsets: the same probe set as notify's kprobe flavour (20 kprobes and kretprobes, 8 tracepoints), one printf record per hit, ready = the line its BEGIN prints (bpftrace runs BEGIN once every other probe is attached). `baseline`, when present: an older notify build (`{BASELINE_ENV}`), same command. Ratio = median over rounds of (variant / bpftrace) in the same round; spread = min .. max over rounds.\n",
        o.attach
    )?;
    if rs.is_empty() {
        writeln!(
            b,
            "**No results**: the guest sent no rounds (see {}/console.log).",
            out.display()
        )?;
        return write_section("startup", &b);
    }
    let mut by: BTreeMap<String, BTreeMap<String, &Row>> = BTreeMap::new();
    for r in &rs {
        by.entry(get(r, "round").to_string())
            .or_default()
            .insert(get(r, "variant").to_string(), r);
    }
    let ready = |r: &Row| (get(r, "found") == "1").then(|| num(r, "ready_ns") / 1e6);
    let variants: Vec<&str> = ["notify", "baseline", "bpftrace"]
        .into_iter()
        .filter(|v| rs.iter().any(|r| get(r, "variant") == *v))
        .collect();
    writeln!(
        b,
        "| variant | rounds ready | exec -> ready, median (min .. max) | / bpftrace, median of per-round ratios (min .. max) | / baseline (min .. max) |"
    )?;
    writeln!(b, "|---|---:|---:|---:|---:|")?;
    let mut verdict = String::new();
    for v in &variants {
        let times: Vec<f64> = rs
            .iter()
            .filter(|r| get(r, "variant") == *v)
            .filter_map(ready)
            .collect();
        let ratio_to = |base: &str| -> Vec<f64> {
            by.values()
                .filter_map(|m| Some(ready(m.get(*v)?)? / ready(m.get(base)?)?))
                .collect()
        };
        let vs_bpftrace = ratio_to("bpftrace");
        let vs_baseline = if variants.contains(&"baseline") && *v == "notify" {
            spread(ratio_to("baseline"), 3)
        } else {
            "-".to_string()
        };
        if *v == "notify" && !vs_bpftrace.is_empty() {
            let mut m = vs_bpftrace.clone();
            let r = median(&mut m);
            verdict = format!(
                "Goal: notify <= {GOAL}x bpftrace: **{}** ({r:.3}x).",
                if r <= GOAL { "met" } else { "MISSED" }
            );
        }
        writeln!(
            b,
            "| {v} | {} of {} | {} ms | {} | {vs_baseline} |",
            times.len(),
            by.len(),
            spread(times, 0),
            if *v == "bpftrace" {
                "1".to_string()
            } else {
                spread(vs_bpftrace, 3)
            },
        )?;
    }
    writeln!(b, "\n{verdict}\n")?;
    // Where the agent's time goes: medians of each phase over rounds.
    // (variant, first seen, phase) -> (wall ms, cpu ms) per round
    type Samples = (Vec<f64>, Vec<f64>);
    let mut phases: BTreeMap<(String, usize, String), Samples> = BTreeMap::new();
    let mut order: BTreeMap<(String, String), usize> = BTreeMap::new();
    for l in t.file(d, "phases.txt").unwrap_or("").lines() {
        let Some((v, name, wall, cpu)) = phase(l) else {
            continue;
        };
        let n = order.len();
        let i = *order.entry((v.clone(), name.clone())).or_insert(n);
        let e = phases.entry((v, i, name)).or_default();
        e.0.push(wall);
        e.1.push(cpu);
    }
    if !phases.is_empty() {
        writeln!(
            b,
            "Where the agent's start-up goes (`NOTIFY_TIMINGS=1`, medians over rounds; wall ms and the process's CPU ms in the phase; attaches under 1 ms median folded into `other attaches`):\n"
        )?;
        writeln!(b, "| variant | phase | wall ms | cpu ms |")?;
        writeln!(b, "|---|---|---:|---:|")?;
        let mut folded: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for ((v, _, name), (w, c)) in &phases {
            let (mut w, mut c) = (w.clone(), c.clone());
            let (wm, cm) = (median(&mut w), median(&mut c));
            if name.starts_with("attach ") && wm < 1.0 {
                let f = folded.entry(v.clone()).or_default();
                f.0 += wm;
                f.1 += cm;
                continue;
            }
            writeln!(b, "| {v} | {name} | {wm:.1} | {cm:.1} |")?;
        }
        for (v, (w, c)) in folded {
            writeln!(b, "| {v} | other attaches | {w:.1} | {c:.1} |")?;
        }
        writeln!(b)?;
    }
    writeln!(
        b,
        "<details><summary>raw lines of this run</summary>\n\n```"
    )?;
    for l in t.file(d, "rounds.txt").unwrap_or("").lines() {
        writeln!(b, "{l}")?;
    }
    writeln!(b, "```\n</details>")?;
    write_section("startup", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_lines_parse() {
        let p = phase(
            "round=2 variant=notify notify: timing: offsets (BTF, tracefs formats) 43.9 ms cpu 42.5 ms at 175.9 ms",
        );
        assert_eq!(
            p,
            Some((
                "notify".to_string(),
                "offsets (BTF, tracefs formats)".to_string(),
                43.9,
                42.5
            ))
        );
        assert_eq!(phase("round=2 variant=notify notify: ready: x"), None);
        assert_eq!(spread(vec![3.0, 1.0, 2.0], 1), "2.0 (1.0 .. 3.0)");
        assert_eq!(spread(vec![4.0, 1.0, 2.0, 3.0], 1), "2.5 (1.0 .. 4.0)");
        assert_eq!(spread(vec![], 1), "-");
    }
}
