//! `cargo xtask bench footprint`: RSS, CPU and idle wakeups of `notify agent` (and `notify
//! trace`) against rasdaemon (`rasdaemon -f -r`) and bpftrace running lab/probecost.bt, each
//! idle and under a storm of poisoned pages, one tool at a time in one VM boot (guest side:
//! lab/bench.sh `bench_foot`). rasdaemon and bpftrace are the host's Debian packages, run in the
//! guest from the host's /usr over virtio-9p (same image as probe-cost).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Result;

use super::{BenchOpts, Row, get, median, num, parse_rows, section_head, write_section};
use crate::vm;

const TOOLS: &[&str] = &["agent", "trace", "rasdaemon", "bpftrace"];

/// Kernel command line defaults: 3 rounds, 2,000 pages, 30 s idle window; NOTIFY_FOOT_TOOLS=a,b
/// runs only those tools.
pub(super) fn defaults(o: &BenchOpts) -> String {
    let mut s = String::from(" lab.idle=30");
    if o.rounds.is_none() {
        s.push_str(" lab.rounds=3");
    }
    if o.size.is_none() {
        s.push_str(" lab.pages=2000");
    }
    // A subset of the tools, for a quick look at one of them (not for the figure).
    if let Ok(t) = std::env::var("NOTIFY_FOOT_TOOLS") {
        s.push_str(&format!(" lab.tools={t}"));
    }
    s
}

pub(super) fn agent_cmd(o: &BenchOpts) -> String {
    format!(
        "notify agent -o json --attach {a} --journal /tmp/foot-journal --output /tmp/...` (default metrics endpoint 127.0.0.1:9464) and `notify trace -o json --attach {a} --output /tmp/...",
        a = o.attach
    )
}

/// Per (tool, round): the phases' key=value lines.
type Runs = BTreeMap<(String, String), BTreeMap<String, Row>>;

fn fmt(x: f64, prec: usize) -> String {
    if x.is_nan() || x.is_infinite() {
        "-".into()
    } else {
        format!("{x:.prec$}")
    }
}

pub(super) fn report(
    o: &BenchOpts,
    mach: &str,
    vm_line: &str,
    t: &vm::Transcript,
    out: &Path,
) -> Result<()> {
    let d = "bench-foot";
    let text = t.file(d, "rounds.txt").unwrap_or("");
    // The lines carry no @@BENCH prefix: parse them as rows directly.
    let prefixed: String = text.lines().map(|l| format!("@@BENCH {l}\n")).collect();
    let rows = parse_rows(&prefixed);
    let head = rows.first().cloned().unwrap_or_default();
    let tck = num(&head, "clk_tck");
    let tck = if tck > 0.0 { tck } else { 100.0 };
    let idle_s = num(&head, "idle_s");
    let pages = get(&head, "pages").to_string();
    let mut runs: Runs = BTreeMap::new();
    for r in &rows {
        let (tool, round, phase) = (get(r, "tool"), get(r, "round"), get(r, "phase"));
        if tool.is_empty() {
            continue;
        }
        runs.entry((tool.to_string(), round.to_string()))
            .or_default()
            .insert(phase.to_string(), r.clone());
    }
    // metric name -> tool -> round -> value
    let mut m: BTreeMap<&str, BTreeMap<String, BTreeMap<String, f64>>> = BTreeMap::new();
    for ((tool, round), ph) in &runs {
        let (Some(st), Some(i0), Some(i1), Some(s0), Some(s1)) = (
            ph.get("start"),
            ph.get("idle0"),
            ph.get("idle1"),
            ph.get("storm0"),
            ph.get("storm1"),
        ) else {
            continue;
        };
        let mut put = |k: &'static str, v: f64| {
            m.entry(k)
                .or_default()
                .entry(tool.clone())
                .or_default()
                .insert(round.clone(), v);
        };
        put("ready_s", num(st, "ready_s"));
        put("start_cpu_s", num(st, "ticks") / tck);
        put("threads", num(i1, "threads"));
        put("idle_rss_kb", num(i1, "rss_kb"));
        put("hwm_kb", num(i1, "hwm_kb"));
        put("kbuf_kb", num(i1, "kbuf_kb"));
        put("idle_cpu_ticks", num(i1, "ticks") - num(i0, "ticks"));
        put("idle_wakeups", num(i1, "ctxt") - num(i0, "ctxt"));
        put("storm_cpu_s", (num(s1, "ticks") - num(s0, "ticks")) / tck);
        put("storm_peak_kb", num(s1, "hwm_kb"));
        put("storm_after_kb", num(s1, "rss_kb"));
        put("storm_out_bytes", num(s1, "out_bytes"));
        put("poisoned", num(s1, "poisoned"));
    }
    let med = |k: &str, tool: &str| -> f64 {
        m.get(k)
            .and_then(|x| x.get(tool))
            .map(|v| median(&mut v.values().copied().collect::<Vec<_>>()))
            .unwrap_or(f64::NAN)
    };
    // median over rounds of the per-round ratio a/b
    let ratio = |k: &str, a: &str, b: &str| -> f64 {
        let Some(x) = m.get(k) else { return f64::NAN };
        let (Some(ra), Some(rb)) = (x.get(a), x.get(b)) else {
            return f64::NAN;
        };
        let mut v: Vec<f64> = ra
            .iter()
            .filter_map(|(r, va)| rb.get(r).filter(|vb| **vb > 0.0).map(|vb| va / vb))
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            median(&mut v)
        }
    };
    let nrounds = m
        .get("idle_rss_kb")
        .and_then(|x| x.get("agent"))
        .map_or(0, |v| v.len());

    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "footprint (VM lab): RSS, CPU and idle wakeups, notify vs rasdaemon vs bpftrace",
        "guest `bench_foot` in `lab/bench.sh`, bpftrace script `lab/probecost.bt`",
        Some(mach),
    )?;
    writeln!(b, "{vm_line}  ")?;
    if let Some(v) = t.file(d, "versions.txt") {
        writeln!(
            b,
            "Others (host Debian packages over virtio-9p): {}",
            v.lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        )?;
    }
    writeln!(
        b,
        "\nOne tool at a time (not side by side: each one's CPU and wakeups must be its own), all in the same boot; the order rotates every round. Tools: `notify agent` (release build, as a fleet runs it: journal in /tmp, metrics endpoint on by default), `notify trace` (no journal, no metrics), `rasdaemon -f -r` (sqlite db in /var/lib/rasdaemon on the guest's tmpfs root; Debian's 0.6.8 build enables and records only `ras:mc_event`, `ras:aer_event`, `mce:mce_record` and `ras:extlog_mem_event`: it leaves `ras:memory_failure_event` off (enable = 0 in its tracing instance, below), so the storm gives it nothing to do and its storm figures are a floor, not the cost of recording the storm) and bpftrace running `lab/probecost.bt` (the same kprobes and tracepoint as notify, one printf record per hit, output to /tmp). Per tool and round: start, wait until it is attached, settle (>= 5 s, until its CPU and output stop moving), then an idle window of {idle} s with nothing happening, then `benchhelp storm` poisons {pages} pages of a fresh file on the DAX mount (vm.memory_failure_early_kill=0), wait until its CPU and output stop moving, stop it. RSS = VmRSS of /proc/PID/status at the end of the idle window; VmHWM = its lifetime peak (start-up included); storm peak = VmHWM after `echo 5 > /proc/PID/clear_refs` just before the storm; CPU = utime+stime of /proc/PID/stat (all threads); wakeups = growth of voluntary+nonvoluntary_ctxt_switches summed over /proc/PID/task/*/status during the idle window; kernel-side buffers = what the kernel holds for the tool outside its RSS, at the end of the idle window: for notify and bpftrace the `memlock` of every BPF map it holds an fd of (/proc/PID/fdinfo, each map once; notify's 1 MiB ring is most of it, the same whether or not its pages are mapped), for rasdaemon its tracing instance's `buffer_total_size_kb` (/sys/kernel/tracing/instances/rasdaemon, every CPU's ring). Medians over {nrounds} rounds; ratios are medians of per-round ratios. rasdaemon and bpftrace run with the host's dynamic loader and libraries from the 9p share; the pages they touch of those count in their RSS, as the pages of glibc that notify (dynamically linked, copied into the initramfs with its libraries) touches count in its, so every RSS here is that of the binary on a Debian host, give or take the loader mapped as a program rather than as an interpreter. Under TCG absolute CPU times mean little; the ratios are side by side.\n",
        idle = fmt(idle_s, 0),
    )?;
    if m.is_empty() {
        writeln!(
            b,
            "**No results**: the guest sent no usable rounds (see {}/console.log).",
            out.display()
        )?;
        for f in ["rounds.txt", "logs.txt"] {
            if let Some(x) = t.file(d, f) {
                writeln!(b, "\n`{f}`:\n\n```\n{x}```")?;
            }
        }
        return write_section("footprint", &b);
    }
    let metrics: &[(&str, &str, usize, f64)] = &[
        ("ready_s", "start-up until attached (s)", 1, 1.0),
        ("start_cpu_s", "CPU spent in start-up + settle (s)", 2, 1.0),
        ("threads", "threads", 0, 1.0),
        ("idle_rss_kb", "RSS idle (MiB)", 1, 1024.0),
        (
            "kbuf_kb",
            "kernel-side buffers, idle, not in RSS (MiB)",
            1,
            1024.0,
        ),
        ("hwm_kb", "VmHWM incl. start-up (MiB)", 1, 1024.0),
        ("idle_cpu_ticks", "CPU in the idle window (ticks)", 0, 1.0),
        ("idle_wakeups", "wakeups in the idle window", 0, 1.0),
        (
            "storm_peak_kb",
            "RSS peak during the storm (MiB)",
            1,
            1024.0,
        ),
        ("storm_after_kb", "RSS after the storm (MiB)", 1, 1024.0),
        ("storm_cpu_s", "CPU during the storm (s)", 2, 1.0),
        (
            "storm_out_bytes",
            "output written during the storm (KiB)",
            0,
            1024.0,
        ),
        ("poisoned", "pages poisoned (benchhelp)", 0, 1.0),
    ];
    writeln!(
        b,
        "| figure (median) | notify agent | notify trace | rasdaemon | bpftrace | agent / rasdaemon | agent / bpftrace | trace / rasdaemon | trace / bpftrace |"
    )?;
    writeln!(b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for (k, label, prec, div) in metrics {
        let cells: Vec<String> = TOOLS.iter().map(|t| fmt(med(k, t) / div, *prec)).collect();
        let rs: Vec<String> = [
            ("agent", "rasdaemon"),
            ("agent", "bpftrace"),
            ("trace", "rasdaemon"),
            ("trace", "bpftrace"),
        ]
        .iter()
        .map(|(a, c)| {
            if matches!(*k, "poisoned" | "storm_out_bytes") {
                "".into()
            } else {
                fmt(ratio(k, a, c), 2)
            }
        })
        .collect();
        writeln!(
            b,
            "| {label} | {} | {} |",
            cells.join(" | "),
            rs.join(" | ")
        )?;
    }
    // Goals.
    let rss_a = med("idle_rss_kb", "agent");
    let rss_r = med("idle_rss_kb", "rasdaemon");
    let peak_a = med("storm_peak_kb", "agent");
    let peak_r = med("storm_peak_kb", "rasdaemon");
    let wk: Vec<f64> = m
        .get("idle_wakeups")
        .and_then(|x| x.get("agent"))
        .map(|v| v.values().copied().collect())
        .unwrap_or_default();
    let verdict = |ok: bool| if ok { "met" } else { "**MISSED**" };
    writeln!(
        b,
        "\nGoal 1, notify agent's RSS below rasdaemon's: idle {} ({} vs {} MiB, ratio {}); storm peak {} ({} vs {} MiB, ratio {}).",
        verdict(rss_a < rss_r),
        fmt(rss_a / 1024.0, 1),
        fmt(rss_r / 1024.0, 1),
        fmt(ratio("idle_rss_kb", "agent", "rasdaemon"), 2),
        verdict(peak_a < peak_r),
        fmt(peak_a / 1024.0, 1),
        fmt(peak_r / 1024.0, 1),
        fmt(ratio("storm_peak_kb", "agent", "rasdaemon"), 2),
    )?;
    writeln!(
        b,
        "\nGoal 2, no idle wakeups of notify agent: {} (per round, {} s window: {}).",
        verdict(!wk.is_empty() && wk.iter().all(|w| *w == 0.0)),
        fmt(idle_s, 0),
        wk.iter()
            .map(|w| format!("{w:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    // Which threads woke during the idle window.
    if let Some(tasks) = t.file(d, "tasks.txt") {
        let mut files: BTreeMap<String, BTreeMap<String, (String, f64)>> = BTreeMap::new();
        let mut cur = String::new();
        for l in tasks.lines() {
            if let Some(f) = l.strip_prefix("== ") {
                cur = f.trim_end_matches(".txt").to_string();
                continue;
            }
            let w: Vec<&str> = l.split_whitespace().collect();
            if let [tid, comm, v, n] = w[..] {
                let c = v.parse::<f64>().unwrap_or(0.0) + n.parse::<f64>().unwrap_or(0.0);
                files
                    .entry(cur.clone())
                    .or_default()
                    .insert(tid.to_string(), (comm.to_string(), c));
            }
        }
        writeln!(
            b,
            "\nThreads that woke during the idle window (context switches gained per thread, `comm:+N`; threads with none left out):\n"
        )?;
        writeln!(b, "| run | threads that woke |")?;
        writeln!(b, "|---|---|")?;
        for (tag, before) in &files {
            let Some(run) = tag
                .strip_prefix("tasks-")
                .and_then(|x| x.strip_suffix("-0"))
            else {
                continue;
            };
            let Some(after) = files.get(&format!("tasks-{run}-1")) else {
                continue;
            };
            let woke: Vec<String> = after
                .iter()
                .filter_map(|(tid, (comm, c))| {
                    let c0 = before.get(tid).map_or(0.0, |x| x.1);
                    (c - c0 > 0.0).then(|| format!("{comm}:+{:.0}", c - c0))
                })
                .collect();
            writeln!(
                b,
                "| {run} | {} |",
                if woke.is_empty() {
                    "none".to_string()
                } else {
                    woke.join(" ")
                }
            )?;
        }
    }
    if let Some(x) = t.file(d, "logs.txt") {
        writeln!(
            b,
            "\n<details><summary>last log lines of each tool (round 0), and the `ras:memory_failure_event` enable of rasdaemon's tracing instance (every round)</summary>\n\n```\n{x}```\n</details>"
        )?;
    }
    if let Some(x) = t.file(d, "smaps.txt").filter(|x| !x.trim().is_empty()) {
        writeln!(
            b,
            "\n<details><summary>what is in each tool's RSS at the end of the idle window (round 0): /proc/PID/smaps_rollup, then every mapping holding >= 16 kB (RSS, of it in transparent huge pages, perms, range, what is mapped)</summary>\n\n```\n{x}```\n</details>"
        )?;
    }
    writeln!(
        b,
        "\n<details><summary>raw lines of this run</summary>\n\n```\n{text}```\n</details>"
    )?;
    write_section("footprint", &b)
}
