//! `cargo xtask bench journal` (host, root): journal appends per second, one fdatasync per
//! record against group commit, side by side (notify-user/benches/journal.rs).

use std::fmt::Write as _;

use anyhow::{Result, bail};

use super::{BenchOpts, get, host_bench_rows, machine, num, section_head, write_section};
use crate::util;

/// Issue #13's goal for group commit.
const GOAL: f64 = 50_000.0;

pub fn run(o: &BenchOpts) -> Result<()> {
    if !util::is_root() {
        bail!("the journal bench needs root (mkfs.xfs, losetup, mount of a loop device)");
    }
    let mach = machine();
    let (text, rows) = host_bench_rows("journal", o)?;
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "journal (host): appends per second, fdatasync per record vs group commit",
        "`notify-user/benches/journal.rs`",
        Some(&mach),
    )?;
    writeln!(
        b,
        "\nThe filesystem: {} (a fresh 512 MiB XFS, `mkfs.xfs` defaults, on a loop device over a sparse image in the target directory; its backing filesystem is named in the raw lines), so each fdatasync reaches this host's disk; tmpfs would not be a durability figure. Each variant writes {} notifications into a fresh journal, in rotated order every round; the journal is reopened after and must hold all of them. `per_record`: `Journal::append` (one write + one fdatasync each, the journal before group commit); `batch_8`, `batch_64`: `append_batch` of 8 or 64 (drained batches of a trickle and of a modest storm); `drain`: a producer thread sends as fast as it can and the writer commits whatever arrived since its last flush in one `append_batch` (what the agent's intake does with each drained batch of the ring buffer; a producer this fast outruns every flush, so this is the upper bound, not a typical batch). Ratio = median of per-round ratios of time against `per_record`.\n",
        rows.first().map_or("?", |r| get(r, "fs")),
        rows.first().map_or("?", |r| get(r, "records")),
    )?;
    writeln!(
        b,
        "| variant | rounds | median appends/s | ratio vs `per_record` | records per fdatasync |"
    )?;
    writeln!(b, "|---|---:|---:|---:|---:|")?;
    for r in &rows {
        writeln!(
            b,
            "| {} | {} | {:.0} | {} | {} |",
            get(r, "variant"),
            get(r, "rounds"),
            num(r, "median_rate"),
            get(r, "ratio_vs_per_record"),
            get(r, "records_per_fdatasync"),
        )?;
    }
    writeln!(b)?;
    // The goal is the agent's group commit: one fdatasync per drained batch. A fixed batch of
    // B reaches it only while an fdatasync takes less than B / 50k seconds.
    for r in rows.iter().filter(|r| get(r, "variant") == "drain") {
        let rate = num(r, "median_rate");
        writeln!(
            b,
            "Goal (issue #13): group commit, one fdatasync per drained batch, >= {GOAL:.0} appends/s: **{}** ({rate:.0}/s, {:.1}x `per_record`).  ",
            if rate >= GOAL { "met" } else { "MISSED" },
            num(r, "ratio_vs_per_record"),
        )?;
    }
    if let Some(p) = rows.iter().find(|r| get(r, "variant") == "per_record") {
        writeln!(
            b,
            "One fdatasync took {:.2} ms (median, from `per_record`): a fixed batch of 64 reaches {GOAL:.0}/s only below 1.28 ms, a batch of 8 below 0.16 ms.  ",
            1e3 / num(p, "median_rate"),
        )?;
    }
    writeln!(
        b,
        "\n<details><summary>raw lines of this run</summary>\n\n```"
    )?;
    for l in text.lines().filter(|l| l.contains("@@BENCH")) {
        writeln!(b, "{l}")?;
    }
    writeln!(b, "```\n</details>")?;
    write_section("journal", &b)
}
