//! `cargo xtask bench containment`: the kernel's own synchronous kill vs notify's replay, for
//! 1, 10 and 100 affected files (guest side: lab/bench.sh `bench_contain`, timing in
//! lab/benchhelp.c `contain`).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Result;

use super::{BenchOpts, Row, get, median, num, section_head, write_section};
use crate::vm;

/// Goal: notify's replay (XFS told and reporting, every mapper signalled) within this factor of
/// the kernel's own kill.
const GOAL: f64 = 2.0;

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

/// Quartile of a sorted slice (nearest rank).
fn q(v: &[f64], f: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * f).round() as usize]
}

pub(super) fn report(
    o: &BenchOpts,
    mach: &str,
    vm_line: &str,
    t: &vm::Transcript,
    out: &Path,
) -> Result<()> {
    let d = "bench-contain";
    let rs = rows(t.file(d, "rounds.txt").unwrap_or(""));
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "containment (VM lab): poisoned page -> XFS knows and every mapper has its SIGBUS, kernel vs notify's replay",
        "guest `bench_contain` in `lab/bench.sh`, mappers and timing in `lab/benchhelp.c` `contain`",
        Some(mach),
    )?;
    writeln!(b, "{vm_line}\n")?;
    writeln!(
        b,
        "N files of one page each on XFS (`-m rmapbt=1,reflink=1`, `mount -o dax=always`), N mapper processes, each mapping page 0 of its own file MAP_SHARED (touched), with `PR_MCE_KILL_EARLY` and a SIGBUS handler that stores CLOCK_MONOTONIC and si_code in shared memory and exits. Times are from t0 to the **last** mapper's SIGBUS handler.\n\n\
- **(a) kernel**: filesystem mounted, `vm.memory_failure_early_kill=1`; t0 = right before the first `write(corrupt-pfn)`; the helper then writes the N pfns (FIEMAP) one after the other: `memory_failure` -> `dax_holder_notify_failure` -> `xfs_dax_notify_failure` -> rmap walk -> `mf_dax_kill_procs` signals the mappers (BUS_MCEERR_AO, si_code 5). No agent runs.\n\
- **(b) notify**: N fresh files, their pages poisoned (`corrupt-pfn`) while the filesystem is **unmounted**, with `notify agent --policy sigbus` running: XFS is not the holder, the kernel drops the notification (EBUSY, no_holder) and the agent journals it. The agent is stopped, the filesystem mounted, the N mappers map their pages, then t0 = `exec` of `notify journal replay --policy sigbus` (a fresh process: journal open, GETFSMAP per record, one scan of every process's VMAs for all records, pidfd_send_signal(SIGBUS), si_code 0 SI_USER), end = the last mapper's SIGBUS.\n\n\
Why (b) starts at the replay and not at the ready edge: at the ready edge (`vfs_get_tree` returns) no process can have mapped a file of the new mount yet, so the running agent's replay there finds owners but nobody to signal (the `replay` lab scenario shows exactly that). The mappers appear later, and what the enforcing side costs is one replay pass over the pending records with them in place: that is what a restarted agent (or the `journal replay` command) does at start, and what (b) measures. It includes process start-up of `notify` itself (the agent's start-up replay would add loading and attaching its BPF programs, seconds under TCG, which is not containment work).\n\n\
On Linux 7.0+ (b) first tells XFS of every record (`XFS_IOC_VERIFY_MEDIA` over the pages, which (b) lists in pmem0's bad blocks once the mappers have mapped them, as the platform does after a machine check) and reads XFS's data-loss report for each owner before acting; a fanotify group of the helper's own, marked before t0, counts XFS's reports (FAN_FS_ERROR, EIO, with the reports fanotify folded) in both (a) and (b) and notes when the N-th arrived. Two ratios against the kernel's kill, (a) t0 -> last SIGBUS: **XFS knows** = (b) t0 -> XFS's last report, and **contained** = (b) t0 -> last SIGBUS. Before 7.0 XFS reports nothing and only the second exists.\n\n\
Rounds alternate the order (kernel first on even rounds, replay first on odd ones); ratio = median over rounds of the ratios of the same round and N. Under TCG absolute times mean nothing; ratios do.\n"
    )?;
    if rs.is_empty() {
        writeln!(
            b,
            "**No results**: the guest sent none (see {}/console.log).",
            out.display()
        )?;
        return write_section("containment", &b);
    }
    // (round, n) -> mode -> row
    let mut by: BTreeMap<(u32, u32), BTreeMap<String, Row>> = BTreeMap::new();
    for r in &rs {
        let (Ok(round), Ok(n)) = (get(r, "round").parse(), get(r, "n").parse()) else {
            continue;
        };
        by.entry((round, n))
            .or_default()
            .insert(get(r, "mode").to_string(), r.clone());
    }
    let mut ns: Vec<u32> = by.keys().map(|(_, n)| *n).collect();
    ns.sort();
    ns.dedup();
    writeln!(
        b,
        "| files N | rounds | SIGBUS (a) / (b) | XFS reports (a) / (b) | (a) kernel: last SIGBUS | (a) XFS's last report | (b) XFS's last report | (b) last SIGBUS | (b) command exit | XFS knows: (b) report / (a) kill | contained: (b) / (a) SIGBUS, q1 .. q3 | goal <= {GOAL}x |"
    )?;
    writeln!(
        b,
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    let mut verdicts = Vec::new();
    for n in &ns {
        let (mut ka, mut kx, mut rx, mut rb, mut cmd) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut ratios, mut xratios) = (vec![], vec![]);
        let (mut sa, mut sb, mut xa, mut xb, mut rounds, mut complete) =
            (0.0, 0.0, 0.0, 0.0, 0, true);
        for ((_, rn), m) in &by {
            if rn != n {
                continue;
            }
            let (Some(a), Some(bb)) = (m.get("kernel"), m.get("replay")) else {
                continue;
            };
            rounds += 1;
            sa += num(a, "sigbus");
            sb += num(bb, "sigbus");
            xa += num(a, "xfs_reports");
            xb += num(bb, "xfs_reports");
            // A round where a mapper got no SIGBUS has no "last SIGBUS": left out of the times.
            let (fa, fb) = (
                num(a, "sigbus") == *n as f64,
                num(bb, "sigbus") == *n as f64,
            );
            complete &= fa && fb;
            let all_reported = |r: &Row| num(r, "xfs_reports") >= *n as f64;
            if fa {
                ka.push(num(a, "last_ns"));
            }
            if all_reported(a) {
                kx.push(num(a, "xfs_last_ns"));
            }
            if fb {
                rb.push(num(bb, "last_ns"));
                cmd.push(num(bb, "cmd_ns"));
            }
            if fa && fb {
                ratios.push(num(bb, "last_ns") / num(a, "last_ns"));
            }
            if all_reported(bb) {
                rx.push(num(bb, "xfs_last_ns"));
                if fa {
                    xratios.push(num(bb, "xfs_last_ns") / num(a, "last_ns"));
                }
            }
        }
        let ratio = median(&mut ratios);
        let xratio = median(&mut xratios);
        let verdict = if ratios.is_empty() {
            "**not measured**".to_string()
        } else {
            let x = if xratios.is_empty() {
                "XFS reported nothing".to_string()
            } else {
                format!("XFS knows {}", met(xratio))
            };
            format!(
                "{x}; contained {}{}",
                met(ratio),
                if complete {
                    ""
                } else {
                    " (some rounds incomplete)"
                }
            )
        };
        verdicts.push(format!(
            "Goal at N={n}, within {GOAL}x of the kernel's kill: {verdict} (XFS knows {xratio:.2}x, contained {ratio:.2}x)."
        ));
        let ms = |v: &mut Vec<f64>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1} ms", median(v) / 1e6)
            }
        };
        writeln!(
            b,
            "| {n} | {rounds} | {sa:.0} / {sb:.0} of {} | {xa:.0} / {xb:.0} | {} | {} | {} | {} | {} | {} | {ratio:.2} ({:.2} .. {:.2}) | {verdict} |",
            rounds * n,
            ms(&mut ka),
            ms(&mut kx),
            ms(&mut rx),
            ms(&mut rb),
            ms(&mut cmd),
            if xratios.is_empty() {
                "-".to_string()
            } else {
                format!("{xratio:.2}")
            },
            q(&ratios, 0.25),
            q(&ratios, 0.75),
        )?;
    }
    writeln!(b)?;
    for v in &verdicts {
        writeln!(b, "{v}  ")?;
    }
    if let Some(s) = t.file(d, "replay-summary.txt") {
        writeln!(
            b,
            "\nThe notify side, per round (poisoned while unmounted: `corrupt-pfn` writes and their errors, records the agent journaled, records `journal replay` replayed, processes it signalled):\n\n```\n{s}```"
        )?;
    }
    writeln!(
        b,
        "\n<details><summary>raw lines of this run (times in ns from t0; codes = si_code:count)</summary>\n\n```"
    )?;
    for l in t.file(d, "rounds.txt").unwrap_or("").lines() {
        writeln!(b, "{l}")?;
    }
    writeln!(b, "```\n</details>")?;
    if let Some(e) = t
        .file(d, "contain-err-tail.txt")
        .filter(|e| !e.trim().is_empty())
    {
        writeln!(b, "\nHelper errors (tail):\n\n```\n{e}```")?;
    }
    write_section("containment", &b)
}

fn met(ratio: f64) -> &'static str {
    if ratio <= GOAL { "met" } else { "**MISSED**" }
}
