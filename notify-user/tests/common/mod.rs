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
    process::{Child, ChildStdout, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// Root and loop support, or a loud skip.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let loop_ok = Path::new("/dev/loop-control").exists();
    let tools = Command::new("mkfs.xfs").arg("-V").output().is_ok();
    if !(root && loop_ok && tools) {
        eprintln!(
            "\n!!!!!!!! SKIPPING {test}: needs root ({root}), /dev/loop-control ({loop_ok}) and \
             mkfs.xfs ({tools}) !!!!!!!!\n"
        );
        return false;
    }
    true
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

impl Xfs {
    pub fn new(meta: &str) -> Xfs {
        let dir = TempDir::new("xfs");
        let image = dir.path().join("img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        File::create(&image)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
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
        let dev = x.loopdev.clone().unwrap_or_else(|| panic!("losetup: {last}"));
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
    let buf: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
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
    pub out: BufReader<ChildStdout>,
}

impl Helper {
    pub fn spawn(mode: &str, args: &[&str]) -> Helper {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args(["__child_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, mode)
            .env("NOTIFY_CHILD_ARGS", args.join("\u{1f}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Helper { child, out }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Next line the child printed with our "NOTIFY:" prefix (libtest prints its own lines).
    pub fn next_msg(&mut self) -> Option<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.out.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(m) = line.trim_end().strip_prefix("NOTIFY:") {
                return Some(m.to_string());
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

pub fn set_comm(name: &str) {
    let c = CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
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
