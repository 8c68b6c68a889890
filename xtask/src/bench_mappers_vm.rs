//! `cargo xtask bench mappers-vm`: who maps this file among N processes (default 10,000) in the
//! guest: notify's scan by the kernel's task_vma
//! iterator (`notify_kernel`) against `fuser FILE`, with notify's /proc scan (`notify_proc`,
//! PROCMAP_QUERY on 6.11+, the maps text before) for reference. The host's mappers bench binary
//! (notify-user/benches/mappers.rs) runs in the guest (guest side: lab/bench.sh
//! `bench_mappers`); fuser is the host's psmisc, run from the host's /usr over virtio-9p through
//! the host's dynamic loader (as probe-cost runs bpftrace).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{BenchOpts, get, mappers_table, num, parse_rows, section_head, write_section};
use crate::vm;

/// Goal: the iterator scan at most this fraction of `fuser FILE`.
const GOAL: f64 = 0.05;

/// Builds the mappers bench binary (release, as `cargo bench` does) and returns its path.
pub(super) fn bench_binary() -> Result<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args([
            "bench",
            "-p",
            "notify-user",
            "--bench",
            "mappers",
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .context("cargo bench --no-run")?;
    if !out.status.success() {
        bail!(
            "building the mappers bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "mappers"
            && let Some(exe) = v["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo bench --no-run named no mappers executable")
}

pub(super) fn defaults(o: &BenchOpts) -> String {
    let mut s = String::new();
    if o.rounds.is_none() {
        s.push_str(" lab.rounds=5");
    }
    if o.size.is_none() {
        s.push_str(" lab.pages=10000");
    }
    s
}

pub(super) fn report(
    o: &BenchOpts,
    mach: &str,
    vm_line: &str,
    t: &vm::Transcript,
    out: &Path,
) -> Result<()> {
    let d = "bench-mappers";
    let text = t.file(d, "rows.txt").unwrap_or("");
    let rows = parse_rows(text);
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "mappers (VM): the kernel's VMA iterator among N processes",
        "`notify-user/benches/mappers.rs` in the guest, lab/bench.sh `bench_mappers`",
        Some(mach),
    )?;
    writeln!(b, "{vm_line}  ")?;
    writeln!(
        b,
        "Tools: {}\n",
        t.file(d, "versions.txt").unwrap_or("?").trim()
    )?;
    writeln!(
        b,
        "N sleeping children (forks of the bench binary), 5 of them mmap page 0 of a 1 MiB file on a tmpfs mount, in the guest. Variants in rotated order every round: `notify_kernel` (`notify::mappers::scan_with(.., Method::Kernel)`: the task_vma BPF iterator filters every VMA in the kernel by (s_dev, i_ino, file window) and /proc is read only for its candidates), `notify_proc` (the /proc scan it replaces: PROCMAP_QUERY on 6.11+, the maps text before), `fuser FILE` (host psmisc over virtio-9p, exec'd through the host's dynamic loader). The iterator's one-time load (BTF, object, program) is timed before the rounds and is not in the scans. Every answer is checked to contain the 5 mappers. Ratio = median of per-round ratios against `fuser FILE`.\n"
    )?;
    if rows.is_empty() {
        writeln!(
            b,
            "**No result lines came back** (see {}/console.log).",
            out.display()
        )?;
        write_section("mappers-vm", &b)?;
        bail!("the guest sent no mappers rows");
    }
    mappers_table(&mut b, &rows)?;
    for r in rows.iter().filter(|r| get(r, "variant") == "notify_kernel") {
        let ratio = num(r, "ratio_vs_fuser_file");
        writeln!(
            b,
            "Goal at {} children: the iterator scan <= {GOAL}x `fuser FILE`: **{}** ({ratio:.3}x); its one-time load: {:.0} ms.  ",
            get(r, "children"),
            if ratio <= GOAL { "met" } else { "MISSED" },
            num(r, "iter_load_s") * 1e3
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
    write_section("mappers-vm", &b)
}

/// Where the image puts the bench binary.
pub(super) const GUEST_BIN: &str = "bin/mappers-bench";
