//! `cargo xtask bench mappers`: finding the processes that map one file among N processes.
//!
//! Spawns N sleeping children (forks of this binary: a dynamically linked Rust process, ~40
//! maps lines each), MAPPERS of which mmap page 0 of a target file on a dedicated tmpfs mount.
//! Then, in alternated rounds (the order rotates every round), times:
//!
//! - `notify::resolve::mappers::scan` (what the agent runs at replay), in process: `notify_scan` with the
//!   PROCMAP_QUERY ioctl where the kernel has it, `notify_scan_text` reading the maps text (what
//!   kernels before 6.11 get);
//! - `fuser FILE` (psmisc), `fuser -m MOUNT`, `lsof FILE`, as a user would run them
//!   (their exec is part of their time: a few hundred microseconds, noise next to the scan).
//!
//! - in the VM lab (`cargo xtask bench mappers-vm`, where the kernel has BPF tracing programs):
//!   `notify_kernel`, the scan by the kernel's task_vma iterator (its one-time load is timed
//!   apart, before the rounds), and `notify_proc`, the /proc scan (PROCMAP_QUERY) it replaces.
//!
//! NOTIFY_BENCH_VARIANTS=a,b,... picks variants (default: all but `notify_kernel`; `notify_scan`
//! is the agent's choice, /proc until this process's /proc scans have visited 10,000 processes
//! and the iterator from then on wherever it loads, `notify_proc` always the /proc scan);
//! NOTIFY_BENCH_RUN
//! is a command prefix for the tools (the guest runs the host's fuser through the host's
//! dynamic loader, over virtio-9p) and NOTIFY_BENCH_FUSER the fuser binary.
//!
//! Every tool's answer is checked to contain the mappers. Ratios are taken per round against
//! `fuser FILE`, then the median. Results are `@@BENCH ...` lines for `cargo xtask bench mappers`.
//! Children die with this process (PR_SET_PDEATHSIG) and are killed and reaped at the end.
//!
//! Needs root (mount) and psmisc + lsof. Not part of `cargo test` (`bench = false`).

use std::{
    collections::BTreeSet,
    ffi::CString,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use notify::resolve::mappers::{self, Target};

const MAPPERS: usize = 5;

struct Lab {
    dir: PathBuf,
    file: PathBuf,
    children: Vec<libc::pid_t>,
    mounted: bool,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for &p in &self.children {
            // SAFETY: plain syscalls on our own children.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        for &p in &self.children {
            let mut st = 0;
            unsafe { libc::waitpid(p, &mut st, 0) };
        }
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn raise_limits(n: usize) {
    let want = (n as u64 + 4096) as libc::rlim_t;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NPROC, &mut rl);
        if rl.rlim_cur != libc::RLIM_INFINITY && rl.rlim_cur < want {
            rl.rlim_cur = want.max(rl.rlim_cur);
            rl.rlim_max = rl.rlim_max.max(rl.rlim_cur);
            if libc::setrlimit(libc::RLIMIT_NPROC, &rl) != 0 {
                eprintln!("mappers bench: cannot raise RLIMIT_NPROC to {want}");
            }
        }
    }
    let pid_max: usize = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let running = fs::read_dir("/proc").map(|d| d.count()).unwrap_or(0);
    if pid_max < running + n + 4096 {
        let to = (running + n + 4096).next_power_of_two();
        eprintln!("mappers bench: raising kernel.pid_max {pid_max} -> {to}");
        let _ = fs::write("/proc/sys/kernel/pid_max", to.to_string());
    }
}

fn spawn(n: usize, file: &Path) -> Vec<libc::pid_t> {
    let cpath = CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
    let parent = unsafe { libc::getpid() };
    let mut kids = Vec::with_capacity(n);
    for i in 0..n {
        // Mappers spread over the pid range, as real ones would be.
        let maps = i % (n / MAPPERS) == n / MAPPERS / 2;
        // SAFETY: this process is single-threaded here; the child only makes syscalls.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            panic!("fork #{i}: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                if maps {
                    let fd = libc::open(cpath.as_ptr(), libc::O_RDWR);
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd,
                        0,
                    );
                    if fd < 0 || p == libc::MAP_FAILED {
                        libc::_exit(3);
                    }
                    libc::close(fd);
                }
                loop {
                    libc::pause();
                }
            }
        }
        kids.push(pid);
    }
    kids
}

fn setup(n: usize) -> Lab {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-mappers-{n}"));
    let _ = Command::new("umount")
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .status();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        dir: dir.clone(),
        file: dir.join("target"),
        children: Vec::new(),
        mounted: false,
    };
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "notify-bench"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount tmpfs on {} (needs root)", dir.display());
    lab.mounted = true;
    fs::write(&lab.file, vec![0u8; 1 << 20]).unwrap();
    raise_limits(n);
    lab.children = spawn(n, &lab.file);
    lab
}

fn target_of(file: &Path) -> Target {
    let md = fs::metadata(file).unwrap();
    Target {
        major: libc::major(md.dev()),
        minor: libc::minor(md.dev()),
        inode: md.ino(),
        offset: 0,
        length: 4096,
    }
}

fn pids_in(text: &str) -> BTreeSet<i32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Runs a tool (after NOTIFY_BENCH_RUN's prefix, if any); returns (seconds, the pids it printed
/// on stdout).
fn tool(args: &[&str]) -> (f64, BTreeSet<i32>) {
    let prefix = std::env::var("NOTIFY_BENCH_RUN").unwrap_or_default();
    let mut argv: Vec<&str> = prefix.split_whitespace().collect();
    argv.extend_from_slice(args);
    let t = Instant::now();
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    // `lsof -t`: one pid per line; fuser: " 1234m 5678m" (the letters say how it is used).
    (secs, pids_in(&String::from_utf8_lossy(&out.stdout)))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run(n: usize, rounds: usize) {
    let lab = setup(n);
    // Let the mappers map.
    std::thread::sleep(std::time::Duration::from_millis(500 + n as u64 / 10));
    let mapper_pids: BTreeSet<i32> = lab
        .children
        .iter()
        .enumerate()
        .filter(|(i, _)| i % (n / MAPPERS) == n / MAPPERS / 2)
        .map(|(_, p)| *p)
        .collect();
    let t = target_of(&lab.file);
    let file = lab.file.to_string_lossy().into_owned();
    let mount = lab.dir.to_string_lossy().into_owned();
    // notify_scan: what the agent runs (PROCMAP_QUERY where the kernel has it);
    // notify_scan_text: the same scan reading the maps text, as on kernels before 6.11.
    let all = [
        "notify_scan",
        "fuser_file",
        "fuser_m",
        "lsof_file",
        "notify_scan_text",
        "notify_kernel",
        "notify_proc",
    ];
    let picked: Vec<String> = std::env::var("NOTIFY_BENCH_VARIANTS")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_else(|_| {
            [
                "notify_scan",
                "fuser_file",
                "fuser_m",
                "lsof_file",
                "notify_scan_text",
                "notify_proc",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        });
    for p in &picked {
        assert!(
            all.contains(&p.as_str()),
            "unknown variant {p:?} (known: {all:?})"
        );
    }
    assert!(
        picked.iter().any(|p| p == "fuser_file"),
        "the ratios are against fuser_file: pick it"
    );
    let names: Vec<&str> = picked.iter().map(String::as_str).collect();
    let fuser_at = names.iter().position(|n| *n == "fuser_file").unwrap_or(0);
    let fuser = std::env::var("NOTIFY_BENCH_FUSER").unwrap_or_else(|_| "fuser".into());
    // The iterator's one-time load (BTF, the object, the program) is not part of a scan.
    let mut load_s = 0.0;
    if names.contains(&"notify_kernel") {
        let t0 = Instant::now();
        mappers::scan_with(Path::new("/proc"), &[t], mappers::Method::Kernel)
            .expect("the kernel's VMA iterator");
        load_s = t0.elapsed().as_secs_f64();
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut found: Vec<usize> = vec![0; names.len()];
    let mut procs = 0;
    for r in 0..rounds {
        for j in 0..names.len() {
            let i = (r + j) % names.len();
            let (secs, pids) = match names[i] {
                v @ ("notify_scan" | "notify_scan_text" | "notify_kernel" | "notify_proc") => {
                    let method = match v {
                        "notify_scan" => mappers::Method::Auto,
                        "notify_scan_text" => mappers::Method::Text,
                        "notify_kernel" => mappers::Method::Kernel,
                        _ => mappers::Method::Proc,
                    };
                    let t0 = Instant::now();
                    let (m, stats) =
                        mappers::scan_with(std::path::Path::new("/proc"), &[t], method).unwrap();
                    let secs = t0.elapsed().as_secs_f64();
                    if !stats.kernel_iterator {
                        procs = stats.processes;
                    }
                    (secs, m.iter().map(|m| m.pid).collect())
                }
                "fuser_file" => tool(&[&fuser, &file]),
                "fuser_m" => tool(&[&fuser, "-m", &mount]),
                _ => tool(&["lsof", "-t", "-w", &file]),
            };
            assert!(
                mapper_pids.is_subset(&pids),
                "{} missed mappers: want {mapper_pids:?}, got {pids:?}",
                names[i]
            );
            found[i] = pids.len();
            times[i].push(secs);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let mut ratios: Vec<f64> = times[i]
            .iter()
            .zip(&times[fuser_at])
            .map(|(a, b)| a / b)
            .collect();
        let ratio = median(&mut ratios);
        let med = median(&mut times[i].clone());
        println!(
            "@@BENCH figure=mappers children={n} processes={procs} mappers={} variant={name} rounds={rounds} median_s={med:.6} ratio_vs_fuser_file={ratio:.3} found={} iter_load_s={load_s:.3}",
            mapper_pids.len(),
            found[i]
        );
    }
    drop(lab);
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("NOTIFY_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let sizes: Vec<usize> = std::env::var("NOTIFY_BENCH_CHILDREN")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or(vec![1_000, 10_000]);
    for n in sizes {
        run(n, rounds);
    }
}
