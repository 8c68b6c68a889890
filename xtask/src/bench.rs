//! `cargo xtask bench <name>`: one command per figure of docs/BENCHMARKS.md.
//!
//! Every figure is a ratio measured side by side in one run (variants alternated round by
//! round), never a lone absolute time: this machine is shared and noisy. Each command rewrites
//! its own section of docs/BENCHMARKS.md (between `<!-- bench:NAME -->` markers) with the
//! command, the machine, the kernel, the medians and ratios of that run, and whether the goal
//! was met. Benchmarks are not part of `cargo xtask test`.
//!
//! - `pipeline` (host): criterion bench notify-user/benches/pipeline.rs
//! - `mappers` (host, root): notify-user/benches/mappers.rs
//! - `journal` (host, root): notify-user/benches/journal.rs (module `bench_journal`)
//! - `mount-overhead` (VM lab): lab/bench.sh `bench_mount` (module `bench_mount`; `--icount N`)
//! - `storm` (VM lab): lab/bench.sh `bench_storm`
//! - `containment` (VM lab): lab/bench.sh `bench_contain` (module `bench_contain`)
//! - `probe-cost` (VM lab): lab/bench.sh `bench_probe` (module `bench_probe`)
//! - `footprint` (VM lab): lab/bench.sh `bench_foot` (module `bench_foot`)
//! - `startup` (VM lab): lab/bench.sh `bench_startup` (module `bench_startup`)
//! - `mappers-vm` (VM lab): lab/bench.sh `bench_mappers` running notify-user/benches/mappers.rs
//!   in the guest (module `bench_mappers_vm`)

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{initramfs, kernel, kernel_line, util, vm};

#[path = "bench_contain.rs"]
mod contain;
#[path = "bench_foot.rs"]
mod foot;
#[path = "bench_journal.rs"]
mod journal;
#[path = "bench_mappers_vm.rs"]
mod mappers_vm;
#[path = "bench_mount.rs"]
mod mount;
#[path = "bench_probe.rs"]
mod probe;
#[path = "bench_startup.rs"]
mod startup;

pub const NAMES: &[&str] = &[
    "pipeline",
    "mappers",
    "journal",
    "mount-overhead",
    "storm",
    "containment",
    "probe-cost",
    "footprint",
    "startup",
    "mappers-vm",
];

pub struct BenchOpts {
    pub name: String,
    /// Rounds (host benches) or A/B block pairs (mount-overhead).
    pub rounds: Option<u32>,
    /// Kernel for the VM benches.
    pub kernel: String,
    pub attach: String,
    /// Skip criterion's statistics (pipeline): only the alternated figures.
    pub quick: bool,
    pub timeout: Duration,
    /// mount-overhead: mount+umount cycles per block; storm: pages.
    pub size: Option<u32>,
    /// mount-overhead: drive the guest clock by executed instructions (qemu `-icount
    /// shift=N,sleep=off`), so host noise leaves the figure.
    pub icount: Option<u32>,
    /// mount-overhead: the guest's vCPUs (None: the lab's 2).
    pub vcpus: Option<u32>,
}

pub(crate) type Row = BTreeMap<String, String>;

pub(crate) fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|l| l.find("@@BENCH ").map(|i| &l[i + 8..]))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

pub(crate) fn get<'a>(r: &'a Row, k: &str) -> &'a str {
    r.get(k).map(String::as_str).unwrap_or("")
}

/// The mappers benches' table (host and VM): one line per children count and variant.
pub(crate) fn mappers_table(b: &mut String, rows: &[Row]) -> std::fmt::Result {
    use std::fmt::Write as _;
    writeln!(
        b,
        "| children | processes in /proc | variant | rounds | median time | ratio vs `fuser FILE` | pids found |"
    )?;
    writeln!(b, "|---:|---:|---|---:|---:|---:|---:|")?;
    for r in rows {
        writeln!(
            b,
            "| {} | {} | {} | {} | {:.1} ms | {} | {} |",
            get(r, "children"),
            get(r, "processes"),
            get(r, "variant"),
            get(r, "rounds"),
            num(r, "median_s") * 1e3,
            get(r, "ratio_vs_fuser_file"),
            get(r, "found")
        )?;
    }
    writeln!(b)
}

pub(crate) fn num(r: &Row, k: &str) -> f64 {
    get(r, k).parse().unwrap_or(f64::NAN)
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// nproc, CPU model, host kernel, load average at the start.
fn machine() -> String {
    let nproc = util::try_output("nproc", &[] as &[&str]).unwrap_or_default();
    let model = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let kernel = util::try_output("uname", &["-r"]).unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let date = util::try_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    format!(
        "{}; nproc {}, {model}; host kernel {}; load average at start {}",
        date.trim(),
        nproc.trim(),
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn doc_path() -> PathBuf {
    util::workspace_root().join("docs/BENCHMARKS.md")
}

/// Replaces (or appends) the section of `name` in docs/BENCHMARKS.md.
pub(crate) fn write_section(name: &str, body: &str) -> Result<()> {
    let p = doc_path();
    let doc = fs::read_to_string(&p).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let begin = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (doc.find(&begin), doc.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &doc[..a], &doc[b + end.len()..]),
        _ => format!("{}\n{section}\n", doc.trim_end()),
    };
    fs::write(&p, new)?;
    eprintln!("bench: wrote the {name} section of {}", p.display());
    Ok(())
}

/// A host bench's output and its `@@BENCH` rows: `cargo bench --bench NAME` with `--rounds`
/// passed on as NOTIFY_BENCH_ROUNDS; an error when it printed none.
pub(crate) fn host_bench_rows(name: &str, o: &BenchOpts) -> Result<(String, Vec<Row>)> {
    let mut env = vec![];
    if let Some(r) = o.rounds {
        env.push(("NOTIFY_BENCH_ROUNDS", r.to_string()));
    }
    let text = cargo_bench(name, &env)?;
    let rows = parse_rows(&text);
    if rows.is_empty() {
        bail!("the {name} bench printed no @@BENCH lines");
    }
    Ok((text, rows))
}

/// Runs `cargo bench -p notify-user --bench NAME`, streaming its output; returns stdout.
fn cargo_bench(name: &str, env: &[(&str, String)]) -> Result<String> {
    let mut c = Command::new(env!("CARGO"));
    c.args(["bench", "-p", "notify-user", "--bench", name]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped());
    let child = c.spawn().context("spawning cargo bench")?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        bail!("cargo bench --bench {name} failed: {}", out.status);
    }
    Ok(text)
}

pub fn run(o: &BenchOpts) -> Result<()> {
    if !NAMES.contains(&o.name.as_str()) {
        bail!(
            "unknown benchmark {:?} (known: {})",
            o.name,
            NAMES.join(", ")
        );
    }
    crate::setup::bench_packages()?;
    match o.name.as_str() {
        "pipeline" => pipeline(o),
        "mappers" => mappers(o),
        "journal" => journal::run(o),
        "mount-overhead" => vm_bench(o, "mount"),
        "storm" => vm_bench(o, "storm"),
        "containment" => vm_bench(o, "contain"),
        "probe-cost" => vm_bench(o, "probe"),
        "footprint" => vm_bench(o, "foot"),
        "startup" => vm_bench(o, "startup"),
        "mappers-vm" => vm_bench(o, "mappers"),
        other => bail!("unknown benchmark {other:?} (known: {})", NAMES.join(", ")),
    }
}

/// The head every section starts with: its title, the command that wrote it (and what it runs)
/// and, when given, the machine line.
pub(crate) fn section_head(
    b: &mut String,
    o: &BenchOpts,
    title: &str,
    what: &str,
    mach: Option<&str>,
) -> std::fmt::Result {
    writeln!(b, "## {title}\n")?;
    writeln!(b, "Command: `{}` ({what})  ", command_line(o))?;
    if let Some(m) = mach {
        writeln!(b, "Machine: {m}  ")?;
    }
    Ok(())
}

pub(crate) fn command_line(o: &BenchOpts) -> String {
    let mut s = format!("cargo xtask bench {}", o.name);
    if let Some(r) = o.rounds {
        write!(s, " --rounds {r}").unwrap();
    }
    if o.quick {
        s.push_str(" --quick");
    }
    if matches!(
        o.name.as_str(),
        "mount-overhead"
            | "storm"
            | "containment"
            | "probe-cost"
            | "footprint"
            | "startup"
            | "mappers-vm"
    ) {
        write!(s, " --kernel {} --attach {}", o.kernel, o.attach).unwrap();
        if let Some(n) = o.size {
            write!(s, " --size {n}").unwrap();
        }
        if let Some(n) = o.icount {
            write!(s, " --icount {n}").unwrap();
        }
        if let Some(n) = o.vcpus {
            write!(s, " --vcpus {n}").unwrap();
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------

fn pipeline(o: &BenchOpts) -> Result<()> {
    let mach = machine();
    let mut env = vec![];
    if let Some(r) = o.rounds {
        env.push(("NOTIFY_BENCH_ROUNDS", r.to_string()));
    }
    if o.quick {
        env.push(("NOTIFY_BENCH_FIGURES_ONLY", "1".to_string()));
    }
    let text = cargo_bench("pipeline", &env)?;
    let rows = parse_rows(&text);
    if rows.is_empty() {
        bail!("the pipeline bench printed no @@BENCH lines");
    }
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "pipeline (host): decode -> reorder -> readiness tracker (-> journal)",
        "criterion bench `notify-user/benches/pipeline.rs`; the figures below are its alternated rounds, not criterion's sequential runs",
        None,
    )?;
    writeln!(b, "Machine: {mach}\n")?;
    writeln!(
        b,
        "Input: raw `notify_common::Event` records built from the lab's recorded runs (6.1-kprobe fixtures): `ready` = the remount mount sequence + 5,000 poisoned pages delivered to a ready XFS (6 records each); `premature` = a mount held in log recovery + 200 poisoned pages XFS drops, each needing a journal record. Every 16th record pair is swapped (two CPUs committing out of order). Records are fed in drains of 256, `Pipeline::ready` after each drain, derived events on (as the agent runs).\n"
    )?;
    writeln!(
        b,
        "| stream | variant | events | rounds | median time | events/s | ratio vs decode (median of per-round ratios) | notes (fs as `stat -f` names it; it reports ext4 as ext2/ext3) |"
    )?;
    writeln!(b, "|---|---|---:|---:|---:|---:|---:|---|")?;
    for r in &rows {
        let mut notes = Vec::new();
        for k in ["journal_appends", "appends_per_s", "batch", "fs"] {
            if r.contains_key(k) {
                notes.push(format!("{k}={}", get(r, k)));
            }
        }
        writeln!(
            b,
            "| {} | {} | {} | {} | {:.2} ms | {:.0} | {} | {} |",
            get(r, "stream"),
            get(r, "variant"),
            get(r, "events"),
            get(r, "rounds"),
            num(r, "median_s") * 1e3,
            num(r, "events_per_s"),
            get(r, "ratio_vs_decode"),
            notes.join(" ")
        )?;
    }
    let full = rows
        .iter()
        .find(|r| get(r, "stream") == "ready" && get(r, "variant") == "decode_reorder_tracker");
    let jr = rows
        .iter()
        .find(|r| get(r, "variant") == "journal_fsync_per_record");
    let jb = rows
        .iter()
        .find(|r| get(r, "variant") == "frames_fsync_batched");
    writeln!(b)?;
    if let Some(f) = full {
        let eps = num(f, "events_per_s");
        writeln!(
            b,
            "Goal: >= 1M events/s through decode + reorder + tracker: **{}** ({:.2}M events/s on the ready stream).",
            if eps >= 1e6 { "met" } else { "MISSED" },
            eps / 1e6
        )?;
    }
    if let (Some(j), Some(bt)) = (jr, jb) {
        writeln!(
            b,
            "\nJournal: with a dropped notification in every 6 records, one fdatasync per record dominates: {:.0} events/s ({} appends/s, ratio {} vs decode). The same frames with one fdatasync per {} records or per drain give {:.0} events/s ({} appends/s). The agent stores a drained batch that way (group commit: one write and one fdatasync, each record acknowledged after it); its own figure is the `journal` section.",
            num(j, "events_per_s"),
            get(j, "appends_per_s"),
            get(j, "ratio_vs_decode"),
            get(bt, "batch"),
            num(bt, "events_per_s"),
            get(bt, "appends_per_s"),
        )?;
    }
    writeln!(
        b,
        "\n<details><summary>raw lines of this run (and criterion's sequential estimates, a cross-check)</summary>\n\n```"
    )?;
    for l in text.lines().filter(|l| {
        l.contains("@@BENCH")
            || l.starts_with("pipeline_")
            || l.contains("time:")
            || l.contains("thrpt:")
    }) {
        writeln!(b, "{l}")?;
    }
    writeln!(b, "```\n</details>")?;
    write_section("pipeline", &b)
}

// ---------------------------------------------------------------------------------------------

fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| {
            util::try_output("sh", &["-c", &format!("command -v {bin}")])
                .is_none_or(|s| s.trim().is_empty())
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        util::run(
            Command::new("apt-get")
                .args(["install", "-y"])
                .args(&missing),
        )?;
    }
    Ok(())
}

fn mappers(o: &BenchOpts) -> Result<()> {
    if !util::is_root() {
        bail!("the mappers bench needs root (tmpfs mount, 10k processes, /proc of all of them)");
    }
    ensure_tools(&[("fuser", "psmisc"), ("lsof", "lsof")])?;
    let mach = machine();
    let versions = format!(
        "{}; {}",
        util::try_output("sh", &["-c", "fuser -V 2>&1 | head -n 1"])
            .unwrap_or_default()
            .trim(),
        util::try_output("sh", &["-c", "lsof -v 2>&1 | grep -m1 revision"])
            .unwrap_or_default()
            .trim()
    );
    let (text, rows) = host_bench_rows("mappers", o)?;
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "mappers (host): who maps this file, among N processes",
        "`notify-user/benches/mappers.rs`",
        Some(&mach),
    )?;
    writeln!(b, "Tools: {versions}\n")?;
    writeln!(
        b,
        "N sleeping children (forks of the bench binary, ~40 maps lines each), 5 of them mmap page 0 of a 1 MiB file on a dedicated tmpfs mount. Variants in rotated order every round: `notify::mappers::scan` (`notify_scan`: in process, what the agent runs at replay: the /proc scan until the process's /proc scans have visited 10,000 processes in all, then the kernel's task_vma BPF iterator, which loads on this host, with /proc read for its candidates only; the sizes run in this order in one process, so the smaller one is mostly /proc and the larger one the iterator), notify's /proc scan of every process (`notify_proc`: VMAs read with the PROCMAP_QUERY ioctl of Linux 6.11+), the same reading the maps text as on older kernels (`notify_scan_text`), `fuser FILE`, `fuser -m MOUNT`, `lsof -t -w FILE` (each exec'd as a user would). Every answer is checked to contain the 5 mappers. Ratio = median of per-round ratios against `fuser FILE`.\n"
    )?;
    mappers_table(&mut b, &rows)?;
    for r in rows.iter().filter(|r| get(r, "variant") == "notify_proc") {
        let ratio = num(r, "ratio_vs_fuser_file");
        writeln!(
            b,
            "Goal at {} children: notify's PROCMAP_QUERY scan <= 0.2x `fuser FILE`: **{}** ({ratio:.3}x).  ",
            get(r, "children"),
            if ratio <= 0.2 { "met" } else { "MISSED" }
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
    write_section("mappers", &b)
}

// ---------------------------------------------------------------------------------------------

fn vm_bench(o: &BenchOpts, which: &str) -> Result<()> {
    let flavors = kernel_line::Flavor::parse(&o.kernel)?;
    let [k] = flavors.as_slice() else {
        bail!("pick one kernel for a VM benchmark (--kernel 6.1, 6.12, 7.2, 7.3 or newest)");
    };
    if let Some(shift) = o.icount {
        if which != "mount" && which != "probe" {
            bail!(
                "--icount applies to mount-overhead and probe-cost only (the other VM benches time host-visible waits or count events)"
            );
        }
        mount::check_shift(shift)?;
    }
    if let Some(n) = o.vcpus {
        if which != "mount" {
            bail!("--vcpus applies to mount-overhead only (the other VM benches keep the lab's 2)");
        }
        if !(1..=2).contains(&n) {
            bail!("--vcpus {n}: the lab boots 1 or 2 vCPUs (the host has 2 cores)");
        }
    }
    vm::set_vcpus(o.vcpus.unwrap_or(vm::LAB_VCPUS));
    let mach = machine();
    // The release agent: what a fleet runs, and the user-space side of the cost.
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-p", "notify-user", "--release"]);
    util::run(&mut c)?;
    let agent = util::target_dir().join("release/notify");
    let kern = kernel::ensure(*k)?;
    let (mut img, _) = initramfs::ensure(&kern, Some(&agent))?;
    // mount-overhead: bpftrace, the third arm, runs from the host's /usr too.
    if which == "probe" || which == "foot" || which == "startup" || which == "mount" {
        img = probe::image(&kern, &img, &[])?;
    }
    if which == "mappers" {
        let bin = mappers_vm::bench_binary()?;
        img = probe::image(&kern, &img, &[(&bin, mappers_vm::GUEST_BIN)])?;
    }
    let out = util::target_dir().join("bench").join(k.label()).join(which);
    let _ = fs::remove_dir_all(&out);
    util::mkdirp(&out)?;
    let mut append = format!("lab.bench={which} lab.attach={}", o.attach);
    if let Some(r) = o.rounds {
        write!(append, " lab.rounds={r}")?;
    }
    if which == "probe" && o.size.is_none() {
        // A round: 4 mount cycles and 300 poisoned pages.
        append.push_str(" lab.pages=300 lab.cycles=4");
    }
    if which == "foot" {
        append.push_str(&foot::defaults(o));
    }
    // The agent's --ring-size in the storm bench (default: the agent's own default).
    if let Ok(r) = std::env::var("NOTIFY_BENCH_RING") {
        if which != "storm" {
            bail!("NOTIFY_BENCH_RING applies to the storm bench only");
        }
        write!(append, " lab.ring={r}")?;
    }
    // mount-overhead: which arms run (default none,all,bpftrace; `none,all` leaves bpftrace out
    // but keeps the 9p share mounted, to see what the third arm's presence moves).
    if let Ok(a) = std::env::var("NOTIFY_BENCH_ARMS") {
        if which != "mount" {
            bail!("NOTIFY_BENCH_ARMS applies to the mount-overhead bench only");
        }
        write!(append, " lab.arms={a}")?;
    }
    if which == "mappers" {
        append.push_str(&mappers_vm::defaults(o));
    }
    if let Some(n) = o.size {
        match which {
            "mount" => write!(append, " lab.cycles={n}")?,
            // containment: the largest N of 1, 10, 100 (a quick run: --size 10)
            "contain" => write!(
                append,
                " lab.sizes={}",
                [1, 10, 100]
                    .iter()
                    .filter(|&&s| s <= n)
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )?,
            _ => write!(append, " lab.pages={n}")?,
        }
    }
    let accel = match o.icount {
        Some(shift) => {
            let args = mount::icount_args(shift);
            // Added to the image's own (probe-cost: the host /usr share for bpftrace).
            vm::add_extra_args(&args.iter().map(String::as_str).collect::<Vec<_>>());
            format!("TCG with `{}`", args.join(" "))
        }
        None => "TCG".to_string(),
    };
    println!(
        "== {} ({}) bench {which}: booting qemu ({accel})",
        k.label(),
        kern.release
    );
    let boot = vm::boot(
        &kern.vmlinuz,
        &img,
        &append,
        o.timeout,
        &out.join("console.log"),
        |l| {
            if let Some(s) = l.strip_prefix("@@NOTIFY-SAY ") {
                println!("   {s}");
            } else if let Some(s) = l.find("@@NOTIFY-WARN ").map(|i| &l[i..]) {
                println!("   {s}");
            }
        },
    )?;
    let t = vm::parse_console(&boot.console);
    for (name, body) in &t.files {
        let p = out.join(name);
        util::mkdirp(p.parent().unwrap())?;
        fs::write(&p, body)?;
    }
    let guest = t.booted.clone().unwrap_or_else(|| "(did not boot)".into());
    let agent_cmd = match which {
        "probe" => format!(
            "notify trace -o json --attach kprobe` and `--attach fentry`, and bpftrace running `lab/probecost.bt`, all at once; rounds {}; `notify",
            o.rounds.unwrap_or(6)
        ),
        "foot" => foot::agent_cmd(o),
        "mappers" => "notify-user/benches/mappers.rs` in process, no `notify".into(),
        "startup" => format!(
            "notify agent -o json --attach {}` vs bpftrace running `lab/probecost.bt` + `lab/startup.bt`; rounds {}; `notify",
            o.attach,
            o.rounds.unwrap_or(6)
        ),
        "contain" => format!(
            "notify agent -o json --policy sigbus --attach {}` and `notify journal replay --policy sigbus",
            o.attach
        ),
        "mount" => format!(
            "notify trace -o json --attach {}` vs bpftrace running `lab/probecost.bt` + `lab/startup.bt`; `notify",
            o.attach
        ),
        _ => format!("notify trace -o json --attach {}", o.attach),
    };
    let vm_line = format!(
        "VM: qemu {accel}, {} vCPU(s), 3 GiB, emulated pmem (memmap=1G!1G), guest kernel {guest}; agent `{agent_cmd}` (release build); VM {} in {:.0?}{}",
        vm::vcpus(),
        if t.done { "finished" } else { "did NOT finish" },
        boot.elapsed,
        if boot.timed_out { " (TIMED OUT)" } else { "" }
    );
    match which {
        "mount" => mount::report(o, k.label(), &mach, &vm_line, &t, &out),
        "contain" => contain::report(o, &mach, &vm_line, &t, &out),
        "probe" => probe::report(o, &mach, &vm_line, &t, &out),
        "foot" => foot::report(o, &mach, &vm_line, &t, &out),
        "mappers" => mappers_vm::report(o, &mach, &vm_line, &t, &out),
        "startup" => startup::report(o, &mach, &vm_line, &t, &out),
        _ => storm_report(o, &mach, &vm_line, &t, &out),
    }
}

fn storm_report(
    o: &BenchOpts,
    mach: &str,
    vm_line: &str,
    t: &vm::Transcript,
    out: &std::path::Path,
) -> Result<()> {
    let res: BTreeMap<String, String> = t
        .file("bench-storm", "result.txt")
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let totals = t
        .file("bench-storm", "agent-totals.txt")
        .unwrap_or("")
        .trim()
        .to_string();
    let paused = t
        .file("bench-storm", "agent-totals-paused.txt")
        .unwrap_or("(not run)")
        .trim()
        .to_string();
    let mut b = String::new();
    section_head(
        &mut b,
        o,
        "storm (VM lab): 10,000 poisoned pages on the DAX mount",
        "guest `bench_storm` in `lab/bench.sh`, poisoning in `lab/benchhelp.c`",
        Some(mach),
    )?;
    writeln!(b, "{vm_line}\n")?;
    // The guest says which --ring-size it gave (empty: the agent's default, RING_BYTES in
    // notify-common).
    let ring = match res.get("ring").map(|r| r.trim()) {
        Some(r) if !r.is_empty() => format!("`--ring-size {r}`"),
        _ => "default ring buffer, 1 MiB".to_string(),
    };
    writeln!(
        b,
        "One process maps a file on XFS (dax=always) and madvise(MADV_HWPOISON)s each of its pages in turn (vm.memory_failure_early_kill=0, so it survives); the agent (`notify trace`, {ring}) runs throughout and is stopped (SIGINT) once its output stops growing. Its exit line gives events, losses in the kernel (failed ring-buffer reservations) and sequence gaps.\n"
    )?;
    if res.is_empty() {
        writeln!(
            b,
            "**No results**: the guest sent none (see {}/console.log).",
            out.display()
        )?;
        return write_section("storm", &b);
    }
    let g = |k: &str| res.get(k).cloned().unwrap_or_default();
    let f = |k: &str| g(k).parse::<f64>().unwrap_or(f64::NAN);
    let storm_s = f("storm_ns") / 1e9;
    let kspan = (f("last_ktime") - f("first_ktime")) / 1e9;
    let lines = f("lines");
    writeln!(b, "| figure | value |\n|---|---:|")?;
    writeln!(
        b,
        "| pages asked / poisoned / madvise failed / SIGBUS | {} / {} / {} / {} |",
        g("pages"),
        g("poisoned"),
        g("failed"),
        g("sigbus")
    )?;
    writeln!(
        b,
        "| events by kind seen: memory_failure_enter / notify_enter / notify_exit / notification | {} / {} / {} / {} |",
        g("kind_memory_failure_enter"),
        g("kind_notify_enter"),
        g("kind_notify_exit"),
        g("kind_notification")
    )?;
    writeln!(
        b,
        "| last sequence number (events the kernel numbered while the agent ran) | {} |",
        g("last_seq")
    )?;
    writeln!(b, "| agent exit line | `{}` |", totals)?;
    writeln!(
        b,
        "| storm duration in the guest (poisoning loop) | {storm_s:.2} s ({:.0} pages/s) |",
        f("poisoned") / storm_s
    )?;
    writeln!(
        b,
        "| output lines / kernel time span of the events | {lines:.0} lines over {kspan:.2} s |"
    )?;
    writeln!(
        b,
        "| agent output still growing after the storm ended for | {} s (polled every 1 s) |",
        g("drained_after_s")
    )?;
    writeln!(
        b,
        "| agent RSS idle / peak (VmHWM) | {} kB / {} kB |",
        g("agent_rss_idle_kb"),
        g("agent_rss_peak_kb")
    )?;
    writeln!(
        b,
        "| ring capacity: the same storm on fresh pages with the agent stopped (SIGSTOP) until it is over: pages poisoned / agent exit line | {} / `{paused}` |",
        g("paused_poisoned")
    )?;
    let ticks = f("agent_cpu_ticks") / f("clk_tck");
    writeln!(
        b,
        "| agent CPU during storm+drain | {ticks:.2} s of {:.2} s wall ({:.0}%) |",
        storm_s + f("drained_after_s"),
        100.0 * ticks / (storm_s + f("drained_after_s"))
    )?;
    write_section("storm", &b)
}
