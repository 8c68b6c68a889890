//! Shared helpers for the fsmap / enforce / journal integration tests: a real XFS on a loop
//! device (torn down by Drop even when a test panics) and helper child processes made by
//! re-executing the test binary itself.
#![allow(dead_code)]

use std::{
    ffi::CString,
    fs::{self, File},
    io::{BufRead, BufReader, Write},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// Root, loop devices and mkfs.xfs, or the test fails saying which is missing. The tests that
/// call this are `#[ignore]`d: `cargo test` skips them visibly, and the test command
/// (`cargo xtask test`, as root) runs them with `--include-ignored`.
pub fn require_root(test: &str) {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let loop_ok = Path::new("/dev/loop-control").exists();
    let tools = Command::new("mkfs.xfs").arg("-V").output().is_ok();
    assert!(
        root && loop_ok && tools,
        "{test} needs root ({root}), /dev/loop-control ({loop_ok}) and mkfs.xfs ({tools}): run \
         `sudo -E cargo xtask test`, which installs xfsprogs"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "notify-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A mounted XFS on a loop device over a 512 MiB sparse image (mkfs.xfs refuses < 300 MB).
/// Drop unmounts, detaches and deletes, in that order, whatever state the test left.
pub struct Xfs {
    pub dir: TempDir,
    pub image: PathBuf,
    pub mnt: PathBuf,
    pub loopdev: Option<String>,
    mounted: bool,
}

/// Unmount and detach what a killed test run (timeout, SIGKILL: no Drop) left behind: mounts
/// of our own naming scheme, `<tmp>/notify-xfs-<pid>-<n>/mnt`, whose pid no longer exists.
pub fn reap_stale() {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let tmp = std::env::temp_dir();
    for line in mounts.lines() {
        let mut f = line.split(' ');
        let (Some(src), Some(mnt)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(rest) = Path::new(mnt)
            .strip_prefix(&tmp)
            .ok()
            .and_then(|r| r.to_str())
            .and_then(|r| r.strip_prefix("notify-xfs-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() || !rest.ends_with("/mnt") {
            continue;
        }
        eprintln!("reaping stale test mount {mnt} ({src}) of dead pid {pid}");
        if run(Command::new("umount").arg(mnt)).is_ok() && src.starts_with("/dev/loop") {
            let _ = run(Command::new("losetup").arg("-d").arg(src));
        }
        let _ = fs::remove_dir_all(Path::new(mnt).parent().unwrap());
    }
}

impl Xfs {
    pub fn new(meta: &str) -> Xfs {
        reap_stale();
        let dir = TempDir::new("xfs");
        let image = dir.path().join("img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        File::create(&image).unwrap().set_len(512 << 20).unwrap();
        let mut x = Xfs {
            dir,
            image,
            mnt,
            loopdev: None,
            mounted: false,
        };
        run(Command::new("mkfs.xfs")
            .args(["-q", "-f", "-m", meta])
            .arg(&x.image))
        .unwrap();
        // losetup -f can race with other users of loop devices: retry.
        let mut last = String::new();
        for _ in 0..10 {
            match run(Command::new("losetup").args(["-f", "--show"]).arg(&x.image)) {
                Ok(s) => {
                    x.loopdev = Some(s.trim().to_string());
                    break;
                }
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let dev = x
            .loopdev
            .clone()
            .unwrap_or_else(|| panic!("losetup: {last}"));
        run(Command::new("mount").arg(&dev).arg(&x.mnt)).unwrap();
        x.mounted = true;
        x
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        if self.mounted {
            for _ in 0..20 {
                if run(Command::new("umount").arg(&self.mnt)).is_ok() {
                    self.mounted = false;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.mounted {
                let _ = run(Command::new("umount").arg("-l").arg(&self.mnt));
            }
        }
        if let Some(d) = self.loopdev.take() {
            let _ = run(Command::new("losetup").arg("-d").arg(&d));
        }
    }
}

/// Write `len` bytes of a position-dependent pattern and fsync (so blocks are allocated and
/// FIEMAP/GETFSMAP see real extents, not delayed allocation).
pub fn write_file(path: &Path, len: usize, seed: u8) {
    let mut f = File::create(path).unwrap();
    let buf: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    f.write_all(&buf).unwrap();
    f.sync_all().unwrap();
}

pub fn ino(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().ino()
}

// -------------------------------------------------------------------------------------------
// Child processes: the test binary re-executed with NOTIFY_TEST_CHILD set. Each test file has a
// `#[test] fn __child_entry()` that calls `child_main()`; in a normal run it returns at once.
// -------------------------------------------------------------------------------------------

pub const CHILD_ENV: &str = "NOTIFY_TEST_CHILD";

pub struct Helper {
    pub child: Child,
    /// Lines the child printed with our prefix, read by a thread so that waiting for one can
    /// time out instead of hanging the test.
    msgs: std::sync::mpsc::Receiver<String>,
}

/// How long a child may take to say something before the test fails.
pub const MSG_TIMEOUT: Duration = Duration::from_secs(30);

impl Helper {
    pub fn spawn(mode: &str, args: &[&str]) -> Helper {
        Self::spawn_io(mode, args, Stdio::null())
    }

    /// As `spawn`, with the child's stdin piped (for modes that wait for a command).
    pub fn spawn_piped(mode: &str, args: &[&str]) -> Helper {
        Self::spawn_io(mode, args, Stdio::piped())
    }

    fn spawn_io(mode: &str, args: &[&str], stdin: Stdio) -> Helper {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "__child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, mode)
            .env("NOTIFY_CHILD_ARGS", args.join("\u{1f}"))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, msgs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                // libtest prints "test __child_entry ... " without a newline before running the
                // test, so our prefix can be in the middle of a line.
                if let Some(i) = line.find("NOTIFY:")
                    && tx.send(line[i + 7..].trim_end().to_string()).is_err()
                {
                    break;
                }
            }
        });
        Helper { child, msgs }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Next message the child printed with our "NOTIFY:" prefix; None when the child closed
    /// stdout (exited). Panics after MSG_TIMEOUT.
    pub fn next_msg(&mut self) -> Option<String> {
        match self.msgs.recv_timeout(MSG_TIMEOUT) {
            Ok(m) => Some(m),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("child {} said nothing for {MSG_TIMEOUT:?}", self.pid())
            }
        }
    }

    /// Like next_msg with a short timeout: None if nothing arrives in `t`.
    pub fn try_msg(&mut self, t: Duration) -> Option<String> {
        self.msgs.recv_timeout(t).ok()
    }

    /// Waits for READY, skipping what the child says before it (e.g. where it mapped).
    pub fn skip_to_ready(&mut self) {
        loop {
            match self.next_msg() {
                Some(m) if m == "READY" => return,
                Some(_) => continue,
                None => panic!("child {} died before READY", self.pid()),
            }
        }
    }

    pub fn wait_ready(&mut self) {
        match self.next_msg() {
            Some(m) if m == "READY" => {}
            other => panic!("child {} not ready: {other:?}", self.pid()),
        }
    }

    /// Wait for exit with a timeout; returns the raw wait status.
    pub fn wait_status(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut st = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(self.pid(), &mut st, libc::WNOHANG) };
            if r == self.pid() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Still running (not exited, not a zombie). Does not reap.
    pub fn alive(&self) -> bool {
        match fs::read_to_string(format!("/proc/{}/stat", self.pid())) {
            Ok(s) => {
                let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
                state != 'Z' && state != 'X'
            }
            Err(_) => false,
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn termsig(status: i32) -> Option<i32> {
    if libc::WIFSIGNALED(status) {
        Some(libc::WTERMSIG(status))
    } else {
        None
    }
}

pub fn exit_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    }
}

pub fn child_args() -> Vec<String> {
    std::env::var("NOTIFY_CHILD_ARGS")
        .unwrap_or_default()
        .split('\u{1f}')
        .map(str::to_string)
        .collect()
}

pub fn say(msg: &str) {
    let mut o = std::io::stdout().lock();
    writeln!(o, "NOTIFY:{msg}").unwrap();
    o.flush().unwrap();
}

/// Rename the process. Through /proc/self/comm, which names the thread-group leader: libtest
/// runs the child's code on a worker thread, and PR_SET_NAME would only rename that thread
/// (/proc/PID/stat shows the leader's comm).
pub fn set_comm(name: &str) {
    fs::write("/proc/self/comm", name).unwrap();
}

/// mmap `len` bytes of `path` at file `offset` (MAP_SHARED, read/write) and touch every page.
pub fn map_file(path: &str, offset: u64, len: usize) -> *mut u8 {
    let c = CString::new(Path::new(path).as_os_str().as_bytes()).unwrap();
    // SAFETY: test helper: plain open + mmap, the mapping lives until the process exits.
    unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDWR);
        assert!(fd >= 0, "open {path}");
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        );
        assert!(p != libc::MAP_FAILED, "mmap {path}");
        let p = p as *mut u8;
        let mut sum = 0u8;
        for i in (0..len).step_by(4096) {
            sum = sum.wrapping_add(std::ptr::read_volatile(p.add(i)));
        }
        std::hint::black_box(sum);
        p
    }
}

pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// -------------------------------------------------------------------------------------------
// The child side.
// -------------------------------------------------------------------------------------------

static SIG_GOT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SIG_CODE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static SIG_W16: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static SIG_W24: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Read the raw words: si_code at 8; the union at 16 (si_addr for faults, si_pid|si_uid
    // for kill/queue) and 24 (si_addr_lsb for faults, si_value for SI_QUEUE).
    // SAFETY: the kernel passes a valid 128-byte siginfo.
    unsafe {
        let w = info as *const u8;
        SIG_CODE.store(*(w.add(8) as *const i32), Ordering::SeqCst);
        SIG_W16.store(*(w.add(16) as *const u64), Ordering::SeqCst);
        SIG_W24.store(*(w.add(24) as *const u64), Ordering::SeqCst);
    }
    SIG_GOT.store(true, Ordering::SeqCst);
}

fn install_sigbus_handler() {
    // SAFETY: plain sigaction with an async-signal-safe handler (atomics only).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
    }
}

fn report_siginfo_and_exit() -> ! {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !SIG_GOT.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "no SIGBUS within 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let w16 = SIG_W16.load(Ordering::SeqCst);
    say(&format!(
        "SIGINFO code={} pid={} w16={:#x} w24={:#x}",
        SIG_CODE.load(Ordering::SeqCst),
        w16 as u32 as i32,
        w16,
        SIG_W24.load(Ordering::SeqCst)
    ));
    std::process::exit(42);
}

/// Entry point for re-executed children. Modes (NOTIFY_TEST_CHILD), args in NOTIFY_CHILD_ARGS:
/// - `idle`: do nothing (a bystander);
/// - `open FILE`: keep the file open, no mapping;
/// - `map FILE OFFSET LEN [COMM]`: mmap that file window shared and touch it; SIGBUS at its
///   default disposition (like a C program);
/// - `map-rust ...`: the same, keeping the Rust runtime's SIGBUS handler;
/// - `map-handler FILE OFFSET LEN`: as map, plus a SA_SIGINFO SIGBUS handler that prints what
///   it received and exits 42;
/// - `map-unmap FILE OFFSET LEN`: as map; munmap when a line arrives on stdin;
/// - `self-mceerr`: send itself SIGBUS/BUS_MCEERR_AO through a process pidfd, then through a
///   thread pidfd; print the results and the siginfo received;
/// - `journal-append JOURNAL`: append records forever, printing "STORED id" after each Ok.
/// - `journal-append-batch JOURNAL`: the same by group commit (`append_batch` of 1..=32).
/// - `journal-replay-loop JOURNAL MOUNT ARRIVALS`: the agent's duties against a real XFS, to be
///   killed at any point: journal each arrival (`seq:offset`, comma-separated) not journaled yet
///   ("STORED id seq"), replay each pending record with the SIGKILL policy ("DECISION pid act"
///   per decision) and mark it ("REPLAYED id"), one of each in turn; "DONE" when nothing is left.
///
/// Every mode prints "READY" (with our prefix) once set up, then waits to be killed.
pub fn child_main() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let a = child_args();
    match mode.as_str() {
        "idle" => {
            say("READY");
            sleep_forever()
        }
        "open" => {
            let _f = File::open(&a[0]).unwrap();
            say("READY");
            sleep_forever()
        }
        "map" | "map-rust" => {
            if let Some(c) = a.get(3) {
                set_comm(c);
            }
            if mode == "map" {
                // Behave like a C program: default SIGBUS disposition. The Rust runtime
                // installs its own SIGBUS handler (stack-overflow detection) that swallows the
                // first SIGBUS not caused by a fault; "map-rust" keeps it.
                // SAFETY: resetting a signal disposition.
                unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            }
            let p = map_file(&a[0], a[1].parse().unwrap(), a[2].parse().unwrap());
            say(&format!("MAPPED {:#x}", p as usize));
            say("READY");
            sleep_forever()
        }
        "map-handler" => {
            install_sigbus_handler();
            let p = map_file(&a[0], a[1].parse().unwrap(), a[2].parse().unwrap());
            say(&format!("MAPPED {:#x}", p as usize));
            say("READY");
            report_siginfo_and_exit()
        }
        "map-unmap" => {
            let len: usize = a[2].parse().unwrap();
            let p = map_file(&a[0], a[1].parse().unwrap(), len);
            say("READY");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            // SAFETY: p/len is the mapping made above.
            unsafe { libc::munmap(p as *mut libc::c_void, len) };
            say("UNMAPPED");
            sleep_forever()
        }
        "self-mceerr" => {
            use notify::enforce::pidfd::{
                BUS_MCEERR_AO, RawSiginfo, pidfd_open, pidfd_send_signal,
            };
            use std::os::fd::{AsFd, FromRawFd, OwnedFd};
            install_sigbus_handler();
            say("READY");
            let info = RawSiginfo::mceerr(BUS_MCEERR_AO, 0x7777_0000, 12);
            // 1. A pidfd for the process, used from this (non-leader: libtest's worker) thread.
            let fd = pidfd_open(std::process::id() as i32).unwrap();
            let r = pidfd_send_signal(fd.as_fd(), libc::SIGBUS, Some(&info));
            say(&format!(
                "PROCESS_PIDFD {}",
                match &r {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("errno={}", e.raw_os_error().unwrap_or(0)),
                }
            ));
            if r.is_ok() {
                report_siginfo_and_exit()
            }
            // 2. A pidfd for this very thread (PIDFD_THREAD = O_EXCL, Linux 6.9+).
            // SAFETY: plain syscalls.
            let tid = unsafe { libc::gettid() };
            let tfd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) };
            if tfd < 0 {
                say(&format!(
                    "THREAD_PIDFD open errno={}",
                    std::io::Error::last_os_error()
                ));
                std::process::exit(3)
            }
            // SAFETY: fresh fd.
            let tfd = unsafe { OwnedFd::from_raw_fd(tfd as i32) };
            match pidfd_send_signal(tfd.as_fd(), libc::SIGBUS, Some(&info)) {
                Ok(()) => {
                    say("THREAD_PIDFD ok");
                    report_siginfo_and_exit()
                }
                Err(e) => {
                    say(&format!(
                        "THREAD_PIDFD errno={}",
                        e.raw_os_error().unwrap_or(0)
                    ));
                    std::process::exit(3)
                }
            }
        }
        "fsmap-nocap" => {
            // Drop CAP_SYS_ADMIN from this thread's effective set (capabilities are per
            // thread; GETFSMAP runs on this one), then resolve.
            #[repr(C)]
            struct Hdr {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            #[derive(Clone, Copy, Default)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let mut h = Hdr {
                version: 0x2008_0522,
                pid: 0,
            };
            let mut d = [Data::default(); 2];
            // SAFETY: capget/capset with a v3 header and two data words.
            unsafe {
                assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
                d[0].effective &= !(1 << 21); // CAP_SYS_ADMIN
                assert_eq!(libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()), 0);
            }
            say("READY");
            let fs = notify::resolve::fsmap::Filesystem::open(&a[0]).unwrap();
            let r = fs.resolve(a[1].parse().unwrap(), a[2].parse().unwrap());
            match r {
                Ok(r) => say(&format!("OK {}", r.hits.len())),
                Err(e) => say(&format!("ERR {e}")),
            }
            std::process::exit(0)
        }
        "journal-append" => {
            use notify::agent::journal::Journal;
            let (mut j, _) = Journal::open(&a[0]).unwrap();
            say("READY");
            for seq in 0u64.. {
                let id = j
                    .append(premature(("pmem0", 259, 0), seq * 4096, seq))
                    .unwrap();
                say(&format!("STORED {id} {seq}"));
            }
            unreachable!()
        }
        "journal-append-batch" => {
            // Group commit: batches of 1..=32 records, "STORED id seq" for each record of a
            // batch only after `append_batch` returned (the acknowledgement).
            use notify::agent::journal::Journal;
            use notify_model::journal::Damage as Notification;
            let (mut j, _) = Journal::open(&a[0]).unwrap();
            say("READY");
            let mut seq = 0u64;
            for round in 0u64.. {
                let n = 1 + (round * 7) % 32;
                let batch: Vec<Notification> = (seq..seq + n)
                    .map(|s| premature(("pmem0", 259, 0), s * 4096, s))
                    .collect();
                let ids = j.append_batch(batch).unwrap();
                for (i, id) in ids.into_iter().enumerate() {
                    say(&format!("STORED {id} {}", seq + i as u64));
                }
                seq += n;
            }
            unreachable!()
        }
        "journal-replay-loop" => journal_replay_loop(&a),
        m => panic!("unknown child mode {m}"),
    }
}

/// The `journal-replay-loop` child (see `child_main`).
fn journal_replay_loop(a: &[String]) -> ! {
    use notify::{
        agent::{journal::Journal, replay},
        enforce::Config,
        resolve::site,
    };
    use notify_model::decision::Policy;
    let (mut j, _) = Journal::open(&a[0]).unwrap();
    let site = site::site_of_mount(Path::new(&a[1])).unwrap();
    let mut arrivals: Vec<(u64, u64)> = a[2]
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| {
            let (s, o) = x.split_once(':').unwrap();
            (s.parse().unwrap(), o.parse().unwrap())
        })
        .collect();
    let cfg = Config {
        policy: Policy::Sigkill,
        ..Config::default()
    };
    say("READY");
    loop {
        // What an earlier life stored is not stored again.
        arrivals.retain(|(seq, _)| !j.list().iter().any(|r| r.damage.kernel_seq == *seq));
        if let Some(&(seq, offset)) = arrivals.first() {
            let id = j.append(premature(("loop", 7, 0), offset, seq)).unwrap();
            say(&format!("STORED {id} {seq}"));
        }
        let next = j.pending().first().map(|r| (r.id, r.damage.dax_offset));
        if let Some((id, offset)) = next {
            let report = replay::replay(&cfg, &site, offset, 4096);
            assert!(report.error.is_none(), "{report:?}");
            for d in &report.decisions {
                say(&format!("DECISION {} {:?}", d.pid, d.action));
            }
            j.mark_replayed(id, &report.summary()).unwrap();
            say(&format!("REPLAYED {id}"));
        }
        if next.is_none() && arrivals.is_empty() {
            say("DONE");
            sleep_forever()
        }
    }
}

/// GET over HTTP/1.0: (status, body). For the agent's metrics and health endpoints.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::{io::Read, net::TcpStream};
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// A premature notification of `len` 4096 at `dax_offset` of disk `name` (`major:minor`),
/// numbered `seq` (kernel sequence and ktime alike): the record the journal tests store.
pub fn premature(
    (name, major, minor): (&str, u32, u32),
    dax_offset: u64,
    seq: u64,
) -> notify_model::journal::Damage {
    use notify_model::journal::{Damage, DaxDevice};
    Damage {
        dax: DaxDevice {
            name: name.into(),
            major,
            minor,
        },
        dax_offset,
        len: 4096,
        mf_flags: 0x20,
        kernel_seq: seq,
        ktime_ns: seq,
        wall_ns: notify::agent::journal::now_ns(),
        reason: notify_model::journal::Reason::Premature,
        namespace: None,
    }
}

/// A journal with one pending notification for a pmem disk that is not on this host (so it
/// stays pending), optionally with a torn tail (garbage after the last frame).
pub fn seed_journal(path: &Path, torn_tail: bool) {
    {
        let (mut j, _) = notify::agent::journal::Journal::open(path).unwrap();
        j.append(premature(("pmem7", 259, 70), 1 << 20, 1)).unwrap();
    }
    if torn_tail {
        let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(b"\x17\x00\x00\x00torn-tail").unwrap();
    }
}
