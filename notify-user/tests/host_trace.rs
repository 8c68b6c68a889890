//! On the host: load the real BPF object, attach what this kernel allows, and check that events
//! really arrive when a real XFS image is mounted and unmounted on a loop device.
//!
//! The host kernel here has tracepoints but no kprobes and no BPF trampolines, so the function
//! hooks must be reported as skipped with their reason while the tracepoints fire. The function
//! hooks themselves are proved in the VM lab (`cargo xtask vm-test`).

use std::{
    ffi::OsStr,
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use notify_model::{
    Dev, EventData, Item, TraceEvent,
    session::{ExitStatus, SessionFile},
};

/// Root, or the test fails (the tests that call this are `#[ignore]`d, run by the test command).
fn require_root(test: &str) {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "{test} needs root (BPF): run `sudo -E cargo xtask test`"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 512 MB XFS image on a loop device, mounted; unmounted and detached on drop.
struct LoopXfs {
    dir: PathBuf,
    loopdev: String,
    mnt: PathBuf,
    mounted: bool,
}

impl LoopXfs {
    fn new(tag: &str) -> LoopXfs {
        let dir = std::env::temp_dir().join(format!("notify-host-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let img = dir.join("xfs.img");
        let f = fs::File::create(&img).unwrap();
        f.set_len(512 << 20).unwrap();
        run(Command::new("mkfs.xfs")
            .args(["-q", "-f", "-m", "rmapbt=1,reflink=1"])
            .arg(&img));
        let loopdev = run(Command::new("losetup").args(["-f", "--show"]).arg(&img))
            .trim()
            .to_string();
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        LoopXfs {
            dir,
            loopdev,
            mnt,
            mounted: false,
        }
    }

    fn dev(&self) -> Dev {
        Dev::from_user(fs::metadata(&self.loopdev).unwrap().rdev())
    }

    fn mount(&mut self) {
        run(Command::new("mount").arg(&self.loopdev).arg(&self.mnt));
        self.mounted = true;
    }

    fn umount(&mut self) {
        run(Command::new("umount").arg(&self.mnt));
        self.mounted = false;
    }
}

impl Drop for LoopXfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mnt).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `notify trace -o json --output FILE`, stopped with SIGINT.
struct Tracer {
    child: Child,
    stderr: Vec<String>,
}

impl Tracer {
    fn start(out: &Path) -> Tracer {
        Tracer::start_with(out, &[])
    }

    fn start_with(out: &Path, extra: &[&std::ffi::OsStr]) -> Tracer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_notify"))
            .args(["trace", "-o", "json", "--attach", "auto", "--output"])
            .arg(out)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn notify");
        // Wait for "notify: ready": every probe was tried (the attach summary came first) and
        // XFS's own channels are set up.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut stderr = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line == "notify: ready";
            stderr.push(line);
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "notify never said `ready`");
        }
        assert!(
            stderr.iter().any(|l| l.starts_with("notify: attached ")),
            "`ready` without the attach summary before it: {stderr:?}"
        );
        // Keep draining stderr so the child never blocks on a full pipe.
        let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        std::mem::forget(rest);
        Tracer { child, stderr }
    }

    fn stop(mut self) -> i32 {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        status.code().unwrap_or(-1)
    }
}

fn read_events(path: &Path) -> Vec<Item> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l}: {e}")))
        .collect()
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn tracepoints_fire_on_a_real_xfs_mount_and_unmount() {
    require_root("tracepoints_fire_on_a_real_xfs_mount_and_unmount");
    let mut fs_ = LoopXfs::new("trace");
    let out = fs_.dir.join("events.jsonl");
    let tracer = Tracer::start(&out);
    let report = tracer.stderr.join("\n");
    // What this host's kernel allows, as the attach report must say.
    assert!(
        report.contains("tracepoint"),
        "no tracepoint attached:\n{report}"
    );
    fs_.mount();
    fs::write(fs_.mnt.join("f"), b"data").unwrap();
    fs_.umount();
    // Give the ring buffer consumer a moment, then stop.
    std::thread::sleep(Duration::from_millis(300));
    let code = tracer.stop();
    assert_eq!(code, 0, "notify trace must exit 0 on SIGINT");

    let evs = read_events(&out);
    let dev = fs_.dev();
    // Sequence numbers strictly increase: the stream is in kernel order.
    for w in evs.windows(2) {
        assert!(
            w[0].seq() < w[1].seq(),
            "out of order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let kernel: Vec<&TraceEvent> = evs.iter().filter_map(Item::kernel).collect();
    let mount_ok = kernel.iter().position(|e| {
        matches!(&e.data, EventData::SyscallExit { syscall, ret: 0 }
            if (syscall == "mount" || syscall == "fsconfig") && e.comm == "mount")
    });
    let umount_write = kernel.iter().position(|e| {
        matches!(&e.data, EventData::XfsTracepoint { tracepoint, dev: d }
            if tracepoint == "xfs_log_umount_write" && *d == dev)
    });
    let umount_ok = kernel.iter().position(
        |e| matches!(&e.data, EventData::SyscallExit { syscall, ret: 0 } if syscall == "umount"),
    );
    let dump = || {
        evs.iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (m, w, u) = (
        mount_ok.unwrap_or_else(|| panic!("no successful mount syscall exit:\n{}", dump())),
        umount_write.unwrap_or_else(|| panic!("no xfs_log_umount_write for {dev}:\n{}", dump())),
        umount_ok.unwrap_or_else(|| panic!("no umount exit:\n{}", dump())),
    );
    // The unmount record is written after umount(2)'s exit tracepoint: the superblock is torn
    // down by task_work on the way back to user space, in the same task.
    assert!(
        m < u && u < w,
        "mount < umount return < unmount record, got {m} {u} {w}"
    );
    assert_eq!(
        kernel[u].pid, kernel[w].pid,
        "the umount task writes the record"
    );
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn attach_report_explains_what_this_kernel_lacks() {
    require_root("attach_report_explains_what_this_kernel_lacks");
    let out = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(["doctor"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // 0, or 4 when a required hook cannot attach (as on this host: bad_input.rs checks which);
    // the report is printed either way.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            || (out.status.code() == Some(4) && err.contains("required hooks cannot attach")),
        "doctor failed: {err}"
    );
    // Every hook is listed with what auto would use.
    for hook in notify::probe::hooks::HOOKS {
        assert!(text.contains(hook.name), "{} missing:\n{text}", hook.name);
    }
    let kprobes_here = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    if !kprobes_here {
        // This host: no kprobes; every function hook must say why, none may claim kprobe:ok.
        assert!(!text.contains("kprobe:ok"), "{text}");
        assert!(text.to_lowercase().contains("kprobe"), "{text}");
    }
    assert!(text.contains("tracepoint:ok"), "{text}");
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn trace_writes_a_session_that_report_reads() {
    require_root("trace_writes_a_session_that_report_reads");
    let mut fs_ = LoopXfs::new("tsession");
    let out = fs_.dir.join("events.jsonl");
    let session = fs_.dir.join("session.json");
    let tracer = Tracer::start_with(&out, &[OsStr::new("--session"), session.as_os_str()]);
    fs_.mount();
    fs_.umount();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tracer.stop(), 0, "notify trace must exit 0 on SIGINT");

    let s = SessionFile::load(&session).unwrap_or_else(|e| panic!("{e}"));
    // The session holds exactly the stream notify trace printed, derived events included.
    let printed: Vec<u64> = read_events(&out).iter().filter_map(Item::seq).collect();
    let kept: Vec<u64> = s.events.iter().filter_map(Item::seq).collect();
    assert_eq!(
        kept, printed,
        "session events differ from the printed stream"
    );
    assert!(
        s.command.iter().any(|a| a == "trace") && s.command.iter().any(|a| a == "--session"),
        "command is notify's own command line: {:?}",
        s.command
    );
    assert_eq!(s.exit_status, ExitStatus::Code(0));
    assert!(
        s.probes
            .iter()
            .any(|p| p.method.as_deref() == Some("tracepoint")),
        "probes: {:?}",
        s.probes
    );
    let dev = fs_.dev().to_string();
    let name = fs_.loopdev.trim_start_matches("/dev/").to_string();
    assert_eq!(s.devices.get(&dev), Some(&name), "devices: {:?}", s.devices);

    // notify report draws the loop device's lane from it.
    let r = Command::new(env!("CARGO_BIN_EXE_notify"))
        .arg("report")
        .arg(&session)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(text.contains(&name), "report does not name {name}:\n{text}");
}
