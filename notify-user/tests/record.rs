//! On the host: `notify record` around real commands (a real XFS mount and unmount on a loop
//! device, exit codes, signals, a missing program) and `notify report` on what it wrote.
//!
//! This host's kernel has tracepoints but no kprobes or BPF trampolines: the session holds the
//! mount-family syscall exits and XFS's tracepoints. Function hooks and verdicts are covered by
//! the unit tests on the VM lab's recorded events.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use notify_model::{
    Dev, EventData, Item,
    session::{ExitStatus, SessionFile},
};

fn notify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(args)
        .output()
        .expect("run notify")
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn records_a_real_xfs_mount_and_umount_and_reports_it() {
    common::require_root("records_a_real_xfs_mount_and_umount_and_reports_it");
    let xfs = common::Xfs::new("rmapbt=1,reflink=1");
    let loopdev = xfs.loopdev.clone().unwrap();
    let mnt = xfs.mnt.to_str().unwrap().to_string();
    // The command mounts it itself.
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    let session = xfs.dir.path().join("session.json");
    let s = session.to_str().unwrap();
    let script = format!("mount {loopdev} {mnt} && umount {mnt}");
    let out = notify(&[
        "record",
        "--session",
        s,
        "--fail-on",
        "lost",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    // Mounted again for the fixture's teardown.
    let _ = Command::new("mount").arg(&loopdev).arg(&mnt).status();
    // --fail-on lost without losses: the command's status.
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("attached"), "attach report:\n{stderr}");
    assert!(stderr.contains("notify: session "), "{stderr}");

    let sess = SessionFile::load(&session).unwrap();
    assert_eq!(sess.format, "notify-session");
    assert_eq!(sess.version, 1);
    assert_eq!(sess.exit_status, ExitStatus::Code(0));
    assert_eq!(sess.command, ["sh", "-c", script.as_str()]);
    assert_eq!(sess.attach, "auto");
    assert!(!sess.kernel.is_empty() && !sess.probes.is_empty());
    assert!(
        sess.probes
            .iter()
            .any(|p| p.method.as_deref() == Some("tracepoint"))
    );
    assert!(!sess.lost.any(), "{:?}", sess.lost);
    assert!(sess.duration_ns > 0);
    let dev = Dev::from_user(fs::metadata(&loopdev).unwrap().rdev());
    let evs = &sess.events;
    for w in evs.windows(2) {
        assert!(
            w[0].seq() <= w[1].seq(),
            "out of order: {:?} {:?}",
            w[0],
            w[1]
        );
    }
    let dump = || {
        evs.iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let pos = |f: &dyn Fn(&EventData) -> bool| {
        evs.iter()
            .position(|e| matches!(e, Item::Kernel(k) if f(&k.data)))
    };
    let mount = pos(&|d| {
        matches!(d, EventData::SyscallExit { syscall, ret: 0 } if syscall == "mount" || syscall == "fsconfig")
    })
    .unwrap_or_else(|| panic!("no mount exit:\n{}", dump()));
    let umount =
        pos(&|d| matches!(d, EventData::SyscallExit { syscall, ret: 0 } if syscall == "umount"))
            .unwrap_or_else(|| panic!("no umount exit:\n{}", dump()));
    let record = pos(&|d| {
        matches!(d, EventData::XfsTracepoint { tracepoint, dev: x } if tracepoint == "xfs_log_umount_write" && *x == dev)
    })
    .unwrap_or_else(|| panic!("no xfs_log_umount_write for {dev}:\n{}", dump()));
    assert!(
        mount < umount && umount < record,
        "{mount} {umount} {record}"
    );
    // The device's name was read from sysfs.
    let name = Path::new(&loopdev).file_name().unwrap().to_str().unwrap();
    assert_eq!(
        sess.devices.get(&dev.to_string()).map(String::as_str),
        Some(name)
    );

    // The report: a timeline for the loop device.
    let svg = xfs.dir.path().join("s.svg");
    let rep = notify(&["report", s, "--svg", svg.to_str().unwrap()]);
    assert!(rep.status.success(), "{}", show(&rep));
    let text = String::from_utf8_lossy(&rep.stdout);
    assert!(
        text.contains(&format!("device 1: {dev} ({name})")),
        "{}",
        show(&rep)
    );
    assert!(text.contains("xfs_log_umount_write"), "{text}");
    assert!(text.contains("umount ret=0"), "{text}");
    let picture = fs::read_to_string(&svg).unwrap();
    assert_eq!(picture.matches(r#"<g class="lane""#).count(), 1);
    assert!(picture.contains(&format!(r#"data-lane="{dev}""#)));

    // PNG where rsvg-convert is installed; otherwise a clear refusal.
    let png = xfs.dir.path().join("s.png");
    let rep = notify(&["report", s, "--png", png.to_str().unwrap()]);
    if Command::new("rsvg-convert")
        .arg("--version")
        .output()
        .is_ok()
    {
        assert!(rep.status.success(), "{}", show(&rep));
        let bytes = fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    } else {
        assert_eq!(rep.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&rep.stderr).contains("librsvg2-bin"));
    }
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn exit_status_passes_through_and_the_session_is_always_written() {
    common::require_root("exit_status_passes_through_and_the_session_is_always_written");
    let dir = common::TempDir::new("record");
    let s = dir.path().join("s.json");
    let sp = s.to_str().unwrap();

    let out = notify(&["record", "--session", sp, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let sess = SessionFile::load(&s).unwrap();
    assert_eq!(sess.exit_status, ExitStatus::Code(7));
    assert!(sess.error.is_none());

    // --fail-on without a finding keeps the command's status.
    let out = notify(&[
        "record",
        "--session",
        sp,
        "--fail-on",
        "lost",
        "--fail-on",
        "premature",
        "--fail-on",
        "kill",
        "--",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("--fail-on"));

    // A signal: 128 + signal, recorded as the signal.
    let out = notify(&["record", "--session", sp, "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + 15), "{}", show(&out));
    assert_eq!(
        SessionFile::load(&s).unwrap().exit_status,
        ExitStatus::Signal(15)
    );

    // --fail-on kill: the command died of SIGBUS: exit 3, the session still written.
    let out = notify(&[
        "record",
        "--session",
        sp,
        "--fail-on",
        "kill",
        "--",
        "sh",
        "-c",
        "kill -BUS $$",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--fail-on kill: the command was killed by SIGBUS"),
        "{}",
        show(&out)
    );
    assert_eq!(
        SessionFile::load(&s).unwrap().exit_status,
        ExitStatus::Signal(libc::SIGBUS)
    );

    // The command's output is its own: notify writes nothing to stdout.
    let out = notify(&[
        "record",
        "--session",
        sp,
        "--",
        "echo",
        "hello from the command",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the command\n"
    );

    // A program that does not exist: 127 like a shell, and still a session saying why.
    let out = notify(&["record", "--session", sp, "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(127), "{}", show(&out));
    let sess = SessionFile::load(&s).unwrap();
    assert_eq!(sess.exit_status, ExitStatus::Code(127));
    assert!(
        sess.error
            .as_deref()
            .unwrap_or("")
            .contains("/nonexistent/program"),
        "{:?}",
        sess.error
    );
    // report reads it.
    let rep = notify(&["report", sp]);
    assert!(rep.status.success(), "{}", show(&rep));
    assert!(String::from_utf8_lossy(&rep.stdout).contains("exit code 127"));

    // No session directory: refused before anything runs (exit 78, EX_CONFIG: the command not
    // run, no probe loaded).
    let marker = dir.path().join("ran");
    let out = notify(&[
        "record",
        "--session",
        "/nonexistent-dir/s.json",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(78), "{}", show(&out));
    assert!(!marker.exists(), "the command must not run");
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn sigterm_is_forwarded_to_the_command_and_the_session_written() {
    common::require_root("sigterm_is_forwarded_to_the_command_and_the_session_written");
    let dir = common::TempDir::new("record-term");
    let s = dir.path().join("s.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args([
            "record",
            "--session",
            s.to_str().unwrap(),
            "--",
            "sleep",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the attach summary: the command starts right after it.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("attached") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // SAFETY: a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "sleep was not stopped"
    );
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let sess = SessionFile::load(&s).unwrap();
    assert_eq!(sess.exit_status, ExitStatus::Signal(libc::SIGTERM));
    assert_eq!(sess.command, ["sleep", "60"]);
}

#[test]
fn report_refuses_what_it_cannot_read() {
    // No root needed: report only reads files.
    let dir = common::TempDir::new("report");
    let newer = dir.path().join("newer.json");
    fs::write(
        &newer,
        r#"{"format":"notify-session","version":99,"events":[]}"#,
    )
    .unwrap();
    let out = notify(&["report", newer.to_str().unwrap()]);
    // Bad input (EX_CONFIG), not a failure worth retrying.
    assert_eq!(out.status.code(), Some(78), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(newer.to_str().unwrap()), "{err}");
    assert!(
        err.contains("version 99") && err.contains("reads version 1"),
        "{err}"
    );

    let other = dir.path().join("other.json");
    fs::write(&other, r#"{"format":"something","version":1}"#).unwrap();
    let out = notify(&["report", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a notify session"));

    let cut = dir.path().join("cut.json");
    fs::write(
        &cut,
        "{\n\"format\": \"notify-session\",\n\"version\": 1,\n\"ker",
    )
    .unwrap();
    let out = notify(&["report", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated") && !err.contains("panicked"),
        "{err}"
    );
}
