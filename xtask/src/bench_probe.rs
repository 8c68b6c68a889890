//! `cargo xtask bench probe-cost`: BPF run time per hit (kernel.bpf_stats_enabled) of notify's
//! programs in both attach flavours and of bpftrace doing the same probes and records
//! (lab/probecost.bt), all attached at once in one VM (guest side: lab/bench.sh `bench_probe`).
//!
//! bpftrace and bpftool are the host's Debian packages: the guest mounts the host's /usr over
//! virtio-9p (read-only) and runs them with the host's dynamic loader. The 9p modules and the
//! script go into a small cpio appended to the lab's initramfs (the kernel unpacks both).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use super::{BenchOpts, median, section_head, write_section};
use crate::{kernel::Kernel, util, vm};

/// Goal: notify's per-hit cost at most this fraction of bpftrace's.
const GOAL: f64 = 0.5;

/// virtio-9p client modules, dependencies first (fscache only exists as a module on 6.1).
const NINEP: &[&str] = &["netfs", "fscache", "9pnet", "9pnet_virtio", "9p"];

/// The lab image with the 9p modules and lab/probecost.bt appended, and `extra` files
/// (source, path in the guest); sets the qemu share.
pub(super) fn image(k: &Kernel, base: &Path, extra: &[(&Path, &str)]) -> Result<PathBuf> {
    let dir = base.with_file_name("bench-extra");
    let _ = fs::remove_dir_all(&dir);
    util::mkdirp(&dir.join("lib/modules"))?;
    util::mkdirp(&dir.join("lab"))?;
    let mut list = String::new();
    for m in NINEP {
        let found = ["fs/netfs", "fs/fscache", "net/9p", "fs/9p"]
            .iter()
            .flat_map(|d| {
                ["ko", "ko.xz", "ko.zst"]
                    .map(|e| k.moddir.join("kernel").join(d).join(format!("{m}.{e}")))
            })
            .find(|p| p.exists());
        let Some(p) = found else { continue };
        let to = dir.join(format!("lib/modules/{m}.ko"));
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "ko" {
            fs::copy(&p, &to)?;
        } else {
            let tool = if ext == "zst" { "zstd" } else { "xz" };
            let out = Command::new(tool).arg("-dc").arg(&p).output()?;
            if !out.status.success() {
                bail!("{tool} -dc {} failed", p.display());
            }
            fs::write(&to, out.stdout)?;
        }
        list.push_str(&format!("{m}.ko\n"));
    }
    fs::write(dir.join("lab/modules-extra.list"), list)?;
    for f in ["probecost.bt", "startup.bt"] {
        fs::copy(
            util::workspace_root().join("lab").join(f),
            dir.join("lab").join(f),
        )?;
    }
    for (from, to) in extra {
        let to = dir.join(to);
        util::mkdirp(to.parent().unwrap_or(&dir))?;
        fs::copy(from, &to).with_context(|| format!("{}", from.display()))?;
    }
    // bench startup: an older build, side by side with this one.
    if let Some(b) = std::env::var_os(super::startup::BASELINE_ENV) {
        util::mkdirp(&dir.join("bin"))?;
        fs::copy(&b, dir.join("bin/notify-baseline")).with_context(|| {
            format!("{}: {}", super::startup::BASELINE_ENV, b.to_string_lossy())
        })?;
    }
    let extra = base.with_file_name("bench-extra.cpio.gz");
    util::run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > '{}'",
        dir.display(),
        extra.display()
    )))?;
    let img = base.with_file_name("initrd-bench.cpio.gz");
    let mut bytes = fs::read(base).with_context(|| format!("{}", base.display()))?;
    bytes.extend(fs::read(&extra)?);
    fs::write(&img, bytes)?;
    vm::set_extra_args(&[
        "-virtfs",
        "local,path=/usr,mount_tag=hostusr,security_model=none,readonly=on",
    ]);
    Ok(img)
}

/// Function a program is attached to, and whether at entry or return.
fn notify_target(name: &str) -> Option<(&'static str, &'static str)> {
    const HOOKS: &[(&str, &str)] = &[
        ("memory_failure_", "memory_failure"),
        ("notify_", "dax_holder_notify_failure"),
        ("xfs_notify_", "xfs_dax_notify_failure"),
        ("holder_get_", "fs_dax_get_by_bdev"),
        ("holder_put_", "fs_put_dax"),
        ("fill_super_", "xfs_fs_fill_super"),
        ("mountfs_", "xfs_mountfs"),
        ("log_recover_finish_", "xlog_recover_finish"),
        ("log_recover_", "xlog_recover"),
        ("get_tree_", "vfs_get_tree"),
        ("put_super_", "xfs_fs_put_super"),
    ];
    if name == "mf_event" {
        return Some(("ras:memory_failure_event", "tracepoint"));
    }
    let (p, f) = HOOKS.iter().find(|(p, _)| name.starts_with(p))?;
    let rest = &name[p.len()..];
    let at = match rest {
        "kprobe" | "fentry" => "entry",
        "kretprobe" | "fexit" => "return",
        _ => return None,
    };
    Some((f, at))
}

pub(super) fn report(
    o: &BenchOpts,
    mach: &str,
    vm_line: &str,
    t: &vm::Transcript,
    out: &Path,
) -> Result<()> {
    let d = "bench-probe";
    let stats = t.file(d, "stats.txt").unwrap_or("");
    let progs: serde_json::Value =
        serde_json::from_str(t.file(d, "progs.json").unwrap_or("[]").trim()).unwrap_or_default();
    let perf: serde_json::Value =
        serde_json::from_str(t.file(d, "perf.json").unwrap_or("[]").trim()).unwrap_or_default();
    // prog id -> name
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for p in progs.as_array().into_iter().flatten() {
        if let (Some(id), Some(n)) = (p["id"].as_u64(), p["name"].as_str()) {
            names.insert(id, n.to_string());
        }
    }
    // prog id -> (function or tracepoint, entry|return) for perf-attached programs
    let mut perf_at: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for p in perf.as_array().into_iter().flatten() {
        let Some(id) = p["prog_id"].as_u64() else {
            continue;
        };
        let ty = p["fd_type"].as_str().unwrap_or("");
        let at = match ty {
            "kprobe" => "entry",
            "kretprobe" => "return",
            "tracepoint" => "tracepoint",
            _ => continue,
        };
        let f = p["func"]
            .as_str()
            .or(p["tracepoint"].as_str())
            .unwrap_or("?");
        perf_at.insert(id, (f.to_string(), at.to_string()));
    }
    // (tool, prog id) -> per round (run_time_ns, run_cnt), cumulative
    let mut cum: BTreeMap<(String, u64), BTreeMap<i32, (f64, f64)>> = BTreeMap::new();
    for l in stats.lines() {
        let kv: BTreeMap<&str, &str> = l
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let (Some(r), Some(tool), Some(id)) = (kv.get("round"), kv.get("tool"), kv.get("prog_id"))
        else {
            continue;
        };
        let (Ok(r), Ok(id)) = (r.parse::<i32>(), id.parse::<u64>()) else {
            continue;
        };
        let f = |k: &str| kv.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        cum.entry((tool.to_string(), id))
            .or_default()
            .insert(r, (f("run_time_ns"), f("run_cnt")));
    }
    // (function, at) -> tool -> per-round ns/hit, and total hits
    type PerTool = BTreeMap<String, (Vec<f64>, f64, f64)>;
    let mut table: BTreeMap<(String, String), PerTool> = BTreeMap::new();
    for ((tool, id), rounds) in &cum {
        let target = if tool == "bpftrace" {
            perf_at.get(id).cloned()
        } else {
            names
                .get(id)
                .and_then(|n| notify_target(n))
                .map(|(f, a)| (f.to_string(), a.to_string()))
        };
        let Some((f, at)) = target else { continue };
        let f = if at == "tracepoint" {
            "ras:memory_failure_event".to_string()
        } else {
            f
        };
        let e = table
            .entry((f, at))
            .or_default()
            .entry(tool.clone())
            .or_default();
        let mut prev: Option<(f64, f64)> = None;
        for (r, v) in rounds {
            if let Some(p) = prev
                && *r >= 0
            {
                let (dt, dc) = (v.0 - p.0, v.1 - p.1);
                if dc > 0.0 {
                    e.0.push(dt / dc);
                }
            }
            prev = Some(*v);
        }
        if let (Some(first), Some(last)) = (rounds.values().next(), rounds.values().last()) {
            e.1 += last.1 - first.1;
            e.2 += last.0 - first.0;
        }
    }
    // The instruction-driven runs have their own section per kernel, beside the wall-clock one.
    let section = match o.icount {
        None => "probe-cost".to_string(),
        Some(_) => format!("probe-cost-icount-{}", o.kernel),
    };
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        &match o.icount {
            None => {
                "probe-cost (VM lab): BPF run time per hit, notify (kprobe, fentry) vs bpftrace"
                    .to_string()
            }
            Some(n) => format!(
                "probe-cost, instruction-driven (VM lab, `--icount {n}`): BPF run time per hit, notify (kprobe, fentry) vs bpftrace"
            ),
        },
        "guest `bench_probe` in `lab/bench.sh`, bpftrace script `lab/probecost.bt`",
        Some(mach),
    )?;
    writeln!(b, "{vm_line}  ")?;
    if let Some(v) = t.file(d, "versions.txt") {
        writeln!(
            b,
            "bpftrace: {} (host Debian package over virtio-9p)",
            v.trim()
        )?;
    }
    writeln!(
        b,
        "\n`kernel.bpf_stats_enabled=1`; three tracers attached at the same time, so every hit runs all three: `notify trace --attach kprobe`, `notify trace --attach fentry` (fentry/fexit for functions in vmlinux; XFS's are in xfs.ko, so that agent takes kprobes there too) and bpftrace running `lab/probecost.bt` (kprobe/kretprobe on the same functions, the same arguments stashed per thread at entry, the same kernel fields read at the offsets `notify doctor` found in BTF, one record per hit with a sequence number, ktime, pid/tid, cpu, comm and payload, via printf). A round = mount+umount cycles (`benchhelp mount`) then a storm of poisoned pages on a fresh file (`benchhelp storm`); per program, run_time_ns and run_cnt (from /proc/PID/fdinfo of its fd) are read after every round. Figure per program: the median over rounds of the round's delta run_time_ns / delta run_cnt. Ratio = notify's ns/hit / bpftrace's ns/hit for the same function and side (entry or return), from the same rounds. A `-` for a notify flavour: it has no program at that side (nothing runs there), which meets the goal. Under TCG absolute ns mean little; the ratios are side by side.\n"
    )?;
    if let Some(n) = o.icount {
        writeln!(
            b,
            "With `--icount {n}` qemu drives the guest clock by executed instructions (`-icount shift={n},sleep=off`: 2^{n} ns of guest time per instruction), so run_time_ns counts the instructions a program ran (and the two clock reads around it) whatever the host's load; the host load moves only which vCPU runs when.\n"
        )?;
    }
    if table.is_empty() {
        writeln!(
            b,
            "**No results**: the guest sent no usable stats (see {}/console.log).",
            out.display()
        )?;
        if let Some(l) = t.file(d, "lines.txt") {
            writeln!(b, "\n```\n{l}```")?;
        }
        return write_section(&section, &b);
    }
    writeln!(
        b,
        "| function | side | hits (bpftrace) | bpftrace ns/hit | notify kprobe ns/hit | ratio kprobe/bpftrace | notify fentry flavour ns/hit | ratio fentry/bpftrace | goal <= {GOAL} |"
    )?;
    writeln!(b, "|---|---|---:|---:|---:|---:|---:|---:|---|")?;
    let mut verdicts = Vec::new();
    for ((f, at), tools) in &table {
        let med = |k: &str| -> (f64, f64) {
            tools
                .get(k)
                .map(|(v, c, _)| (median(&mut v.clone()), *c))
                .unwrap_or((f64::NAN, 0.0))
        };
        let (bt, bc) = med("bpftrace");
        let (kp, _) = med("kprobe");
        let (fe, _) = med("fentry");
        let (rk, rf) = (kp / bt, fe / bt);
        let verdict = if bc == 0.0 && kp.is_nan() && fe.is_nan() {
            "not hit by this workload".to_string()
        } else if bt.is_nan() || bc == 0.0 {
            "no bpftrace hits".to_string()
        } else {
            // A flavour with no program at this side runs nothing there (the fentry agent has
            // no fentry for an entry that tells nothing; the kprobe agent leaves
            // xfs_dax_notify_failure's entry unattached, its return reading the outer stash).
            let ok_k = !tools.contains_key("kprobe") || rk <= GOAL;
            let ok_f = fe.is_nan() || rf <= GOAL;
            if ok_k && ok_f {
                "met".into()
            } else {
                format!(
                    "**MISSED** ({})",
                    [(!ok_k).then_some("kprobe"), (!ok_f).then_some("fentry")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        verdicts.push(verdict.clone());
        let fmt = |x: f64| {
            if x.is_nan() {
                "-".to_string()
            } else {
                format!("{x:.0}")
            }
        };
        let fmtr = |x: f64| {
            if x.is_nan() {
                "-".to_string()
            } else {
                format!("{x:.2}")
            }
        };
        writeln!(
            b,
            "| `{f}` | {at} | {bc:.0} | {} | {} | {} | {} | {} | {verdict} |",
            fmt(bt),
            fmt(kp),
            fmtr(rk),
            fmt(fe),
            fmtr(rf)
        )?;
    }
    let met = verdicts.iter().filter(|v| *v == "met").count();
    let hit = verdicts
        .iter()
        .filter(|v| *v != "not hit by this workload")
        .count();
    writeln!(
        b,
        "\nGoal (notify <= {GOAL}x bpftrace per hit, each probe pair hit by the workload, both flavours): met for {met} of {hit} pairs.",
    )?;
    for f in ["agent-totals.txt", "lines.txt"] {
        if let Some(x) = t.file(d, f) {
            writeln!(b, "\n`{f}`:\n\n```\n{x}```")?;
        }
    }
    writeln!(
        b,
        "\n<details><summary>raw per-program counters of this run (cumulative after each round)</summary>\n\n```\n{stats}```\n</details>"
    )?;
    write_section(&section, &b)
}
