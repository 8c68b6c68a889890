//! One qemu (TCG) boot of the lab guest, with a hard timeout, and the parser
//! for what the guest sends back over the serial console.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// What a boot produced.
#[derive(Debug, Default)]
pub struct Boot {
    pub console: String,
    pub timed_out: bool,
    /// The guest finished but did not power off within [`POWEROFF_GRACE`]: qemu was stopped.
    pub killed_after_done: bool,
    pub elapsed: Duration,
    pub exit: Option<i32>,
}

/// The lab's vCPUs: two, so that cross-CPU ordering of ring-buffer commits is exercised.
pub const LAB_VCPUS: u32 = 2;

/// vCPUs of the next boots of this process (`cargo xtask bench mount-overhead --vcpus`).
static VCPUS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(LAB_VCPUS);

pub fn set_vcpus(n: u32) {
    VCPUS.store(n, std::sync::atomic::Ordering::Relaxed);
}

pub fn vcpus() -> u32 {
    VCPUS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Extra qemu arguments for the next boots of this process (`cargo xtask bench` shares the
/// host's root read-only with the guest over virtio-9p for bpftrace and rasdaemon).
static EXTRA_ARGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub fn set_extra_args(args: &[&str]) {
    *EXTRA_ARGS.lock().unwrap() = args.iter().map(|s| s.to_string()).collect();
}

/// Adds to what [`set_extra_args`] set (probe-cost's 9p share and `--icount`'s clock together).
pub fn add_extra_args(args: &[&str]) {
    EXTRA_ARGS
        .lock()
        .unwrap()
        .extend(args.iter().map(|s| s.to_string()));
}

/// Boots `vmlinuz` + `initrd` with `append` appended to the lab's base
/// command line. The console goes to `console_log` as it arrives; `live`
/// gets every line (for narration). The qemu process is killed after `timeout`.
pub fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    append: &str,
    timeout: Duration,
    console_log: &Path,
    mut live: impl FnMut(&str),
) -> Result<Boot> {
    let cmdline = format!("console=ttyS0 quiet memmap=1G!1G panic=-1 {append}");
    let mut child = Command::new("qemu-system-x86_64")
        // One host thread for both vCPUs (thread=single). Multi-threaded TCG let a vCPU run a
        // stale translation of kernel text the other vCPU was patching: attaching tracepoints
        // and kprobes patches text with INT3 (text_poke_bp), and a guest died of "Oops: int3"
        // in syscall_exit_to_user_mode_prepare -> "Fatal exception in interrupt" during a
        // perf_event_open (footprint bench, 6.12). Likely what ended a 6.12 guest in CI
        // mid-scenario (qemu exited by itself; its console was not kept).
        // Both vCPUs still exist and interleave, so cross-CPU ordering is still exercised.
        .args(["-accel", "tcg,thread=single", "-cpu", "max", "-m", "3G"])
        .args(["-smp", &vcpus().to_string()])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(&cmdline)
        .args(EXTRA_ARGS.lock().unwrap().iter())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning qemu-system-x86_64 (run `cargo xtask setup`)")?;
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let tx2 = tx.clone();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .replace('\r', "");
            if tx2.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let stderr = child.stderr.take().unwrap();
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    drop(tx);

    let mut log = fs::File::create(console_log)?;
    let mut console = String::new();
    let mut timed_out = false;
    // After @@NOTIFY-DONE everything has come back; a guest whose power-off then hangs (a
    // kernel task that never finished holds a device lock `device_shutdown` needs) is stopped.
    let mut done_at: Option<Instant> = None;
    let mut killed_after_done = false;
    loop {
        if done_at.is_some_and(|d| d.elapsed() >= POWEROFF_GRACE) {
            killed_after_done = true;
            let _ = child.kill();
            break;
        }
        let left = timeout.saturating_sub(t0.elapsed());
        if left.is_zero() {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                if line.starts_with("@@NOTIFY-DONE") {
                    done_at.get_or_insert_with(Instant::now);
                }
                writeln!(log, "{line}")?;
                live(&line);
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    let _ = reader.join();
    let err = err_reader.join().unwrap_or_default();
    if !err.trim().is_empty() {
        writeln!(log, "--- qemu stderr ---\n{err}")?;
        console.push_str(&format!("--- qemu stderr ---\n{err}"));
    }
    Ok(Boot {
        console,
        timed_out,
        killed_after_done,
        elapsed: t0.elapsed(),
        exit: status.code(),
    })
}

/// How long a guest that sent `@@NOTIFY-DONE` may take to power off.
pub const POWEROFF_GRACE: Duration = Duration::from_secs(30);

/// The guest's transcript, demultiplexed from the console.
#[derive(Debug, Default, PartialEq)]
pub struct Transcript {
    /// `uname -r` from `@@NOTIFY-BOOTED`.
    pub booted: Option<String>,
    /// `@@NOTIFY-PLAN` line.
    pub plan: Option<String>,
    /// Reached `@@NOTIFY-DONE`.
    pub done: bool,
    /// "scenario/file" -> contents.
    pub files: BTreeMap<String, String>,
    /// Scenarios that began / ended.
    pub begun: Vec<String>,
    pub ended: Vec<String>,
    pub warnings: Vec<String>,
    /// Kernel lines that explain a guest that stopped early: panics, oopses,
    /// BUGs, the OOM killer, a dying init. The lab prints `quiet` with
    /// loglevel 1, so these (KERN_EMERG/ALERT, or printed by the panic path
    /// itself) are what still reaches the console.
    pub trouble: Vec<String>,
    /// The last lines outside any emitted file: what the guest was doing
    /// when the console stopped.
    pub tail: Vec<String>,
}

impl Transcript {
    pub fn file(&self, scenario: &str, name: &str) -> Option<&str> {
        self.files
            .get(&format!("{scenario}/{name}"))
            .map(String::as_str)
    }
}

/// Splits the console into the files the guest emitted between
/// `@@NOTIFY-FILE-BEGIN x` and `@@NOTIFY-FILE-END x` lines.
pub fn parse_console(console: &str) -> Transcript {
    const TAIL: usize = 25;
    let mut t = Transcript::default();
    let mut cur: Option<(String, String)> = None;
    for line in console.lines() {
        if cur.is_none() {
            if is_trouble(line) && t.trouble.len() < 60 {
                t.trouble.push(line.to_string());
            }
            if t.tail.len() == TAIL {
                t.tail.remove(0);
            }
            t.tail.push(line.to_string());
        }
        if let Some((name, body)) = cur.as_mut() {
            if line.ends_with(&format!("@@NOTIFY-FILE-END {name}")) {
                let (name, body) = cur.take().unwrap();
                t.files.insert(name, body);
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        // Terminal resets from the firmware or kernel messages may precede a marker.
        let Some(line) = line.find("@@NOTIFY-").map(|i| &line[i..]) else {
            continue;
        };
        if let Some(n) = line.strip_prefix("@@NOTIFY-FILE-BEGIN ") {
            cur = Some((n.trim().to_string(), String::new()));
        } else if let Some(r) = line.strip_prefix("@@NOTIFY-BOOTED ") {
            t.booted = Some(r.trim().to_string());
        } else if let Some(r) = line.strip_prefix("@@NOTIFY-PLAN ") {
            t.plan = Some(r.trim().to_string());
        } else if line.starts_with("@@NOTIFY-DONE") {
            t.done = true;
        } else if let Some(s) = line.strip_prefix("@@NOTIFY-SCENARIO-BEGIN ") {
            t.begun.push(s.trim().to_string());
        } else if let Some(s) = line.strip_prefix("@@NOTIFY-SCENARIO-END ") {
            t.ended.push(s.trim().to_string());
        } else if let Some(w) = line.strip_prefix("@@NOTIFY-WARN ") {
            t.warnings.push(w.to_string());
        }
    }
    // A file cut off by a timeout still counts, marked as truncated.
    if let Some((name, body)) = cur {
        t.warnings.push(format!("{name} truncated"));
        t.files.insert(name, body);
    }
    t
}

/// Whether a console line says the guest kernel is in trouble.
fn is_trouble(line: &str) -> bool {
    const MARKS: [&str; 12] = [
        "Kernel panic",
        "BUG:",
        "Oops",
        "general protection fault",
        "Call Trace:",
        "RIP:",
        "Out of memory",
        "oom-kill",
        "Attempted to kill init",
        "watchdog: BUG",
        "rcu_preempt detected stalls",
        "blocked for more than",
    ];
    !line.contains("@@NOTIFY-") && MARKS.iter().any(|m| line.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trouble_and_tail() {
        let mut c = String::from(
            "@@NOTIFY-FILE-BEGIN a/dmesg.txt\n[1.0] BUG: in a file, not trouble\n@@NOTIFY-FILE-END a/dmesg.txt\n",
        );
        for i in 0..40 {
            c.push_str(&format!("@@NOTIFY-SAY [replay] step {i}\n"));
        }
        c.push_str(
            "[ 130.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000007\n",
        );
        let t = parse_console(&c);
        assert_eq!(
            t.trouble,
            ["[ 130.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000007"]
        );
        assert_eq!(t.tail.len(), 25);
        assert_eq!(t.tail[0], "@@NOTIFY-SAY [replay] step 16");
        assert!(t.tail[24].contains("Kernel panic"));
    }

    #[test]
    fn demux() {
        let c = "noise\n\x1bc\x1b[?7l\x1b[2J@@NOTIFY-BOOTED 6.1.0-56-amd64\n@@NOTIFY-SCENARIO-BEGIN a\n@@NOTIFY-FILE-BEGIN a/x.txt\nl1\n@@NOTIFY-FILE-BEGIN not-a-marker-inside\n\n@@NOTIFY-FILE-END a/x.txt\n@@NOTIFY-SCENARIO-END a\n@@NOTIFY-FILE-BEGIN b/y\ncut";
        let t = parse_console(c);
        assert_eq!(t.booted.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(
            t.file("a", "x.txt"),
            Some("l1\n@@NOTIFY-FILE-BEGIN not-a-marker-inside\n\n")
        );
        assert_eq!(t.file("b", "y"), Some("cut\n"));
        assert_eq!(t.begun, ["a"]);
        assert_eq!(t.ended, ["a"]);
        assert!(!t.done);
        assert_eq!(t.warnings, ["b/y truncated"]);
    }
}
