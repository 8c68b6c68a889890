//! What several subcommands share: the enforcement flags, number parsing, the runtime and the
//! signal loop around the stream.

use notify_model::decision::Policy;

use crate::{
    enforce::{self, Allowlist},
    stream::Stream,
};

/// Where the agent keeps notifications awaiting replay.
pub const DEFAULT_JOURNAL: &str = "/var/lib/notify/journal";

/// What to do with the processes that map a damaged range.
#[derive(clap::Args, Debug, Clone)]
pub struct EnforceArgs {
    /// report: log the processes only; sigbus: send SIGBUS (what the kernel would have sent);
    /// sigkill: send SIGKILL.
    #[arg(long, value_enum, default_value = "report")]
    pub policy: PolicyArg,
    /// Decide and log, but send no signal.
    #[arg(long)]
    pub dry_run: bool,
    /// Never signal this pid (repeatable).
    #[arg(long = "allow-pid", value_name = "PID")]
    pub allow_pids: Vec<i32>,
    /// Never signal processes with this comm (repeatable).
    #[arg(long = "allow-comm", value_name = "COMM")]
    pub allow_comms: Vec<String>,
    /// Never signal processes in cgroups under this path, e.g. /system.slice/db.service
    /// (repeatable).
    #[arg(long = "allow-cgroup", value_name = "PATH")]
    pub allow_cgroups: Vec<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum PolicyArg {
    Report,
    Sigbus,
    Sigkill,
}

impl EnforceArgs {
    pub fn config(&self) -> enforce::Config {
        enforce::Config {
            policy: match self.policy {
                PolicyArg::Report => Policy::Report,
                PolicyArg::Sigbus => Policy::Sigbus,
                PolicyArg::Sigkill => Policy::Sigkill,
            },
            dry_run: self.dry_run,
            allow: Allowlist {
                pids: self.allow_pids.clone(),
                comms: self.allow_comms.clone(),
                cgroup_prefixes: self.allow_cgroups.clone(),
            },
            ..enforce::Config::default()
        }
    }
}

/// Accepts decimal, 0x-hex, and k/m/g suffixes.
pub fn parse_number(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (digits, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    let v = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => digits.parse(),
    }
    .map_err(|_| format!("{s:?} is not a number (decimal, 0x-hex, optional k/m/g suffix)"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A single-threaded runtime: the agent has one event loop and no idle wakeups.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// SIGINT, SIGTERM and (where asked) SIGHUP, caught from the moment this is made: made before
/// the slow start-up (attaching, the start-up replay), so that a stop asked for meanwhile (the
/// service manager's SIGTERM right after READY=1) ends the run cleanly instead of killing the
/// process by the default action.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// `hangup`: SIGHUP goes to the stream's listeners (elsewhere it keeps its default action).
    pub fn catch(hangup: bool) -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: match hangup {
                true => Some(signal(SignalKind::hangup())?),
                false => None,
            },
        })
    }
}

/// Runs `stream` until SIGINT or SIGTERM; SIGHUP goes to its listeners when caught.
pub async fn until_signal(stream: &mut Stream<'_>, signals: &mut Signals) -> anyhow::Result<()> {
    loop {
        let hup = tokio::select! {
            _ = stream.wait(std::time::Duration::MAX) => false,
            _ = signals.int.recv() => break,
            _ = signals.term.recv() => break,
            _ = recv(&mut signals.hup) => true,
        };
        if hup {
            stream.hangup();
        }
        stream.step()?;
    }
    Ok(())
}

/// Resolves when the signal arrives; never when it is not handled.
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Memory settings made first thing in main, before any thread starts. Both are about what the
/// agent keeps for weeks after a start-up that allocates tens of MiB (BTF, kallsyms, the BPF
/// object) on several threads.
///
/// - One malloc arena (mallopt M_ARENA_MAX=1). glibc gives each thread that allocates its
///   own arena; the start-up threads (kallsyms, the BPF loader, the program preloads) leave
///   theirs behind, and malloc_trim did not give back their free pages: on the host, `notify
///   trace` sat at 18.0 MiB RSS with 9.8 MiB of it anonymous, 9 MiB in two thread arenas; with
///   one arena 9.5 MiB, 1.2 MiB anonymous. The threads run once, at start: sharing one arena
///   costs them a lock.
/// - No transparent huge pages (prctl PR_SET_THP_DISABLE). Where THP is "always" (Debian's
///   kernels), khugepaged turns any 2 MiB-aligned stretch of anonymous memory holding one
///   page into a whole huge page, without the process running: the footprint bench saw the
///   idle agent grow from ~17 to ~25 MiB RSS in a 30 s window in which it was not scheduled
///   once. The heap stays a sparse mapping after malloc_trim, just what khugepaged fills in.
///   notify's data is small and rarely touched: huge pages buy it nothing.
///
/// The long-running commands (`agent`, `trace`) also run without glibc's per-thread malloc
/// cache: see [`exec_without_tcache`].
///
/// Failures are only logged: none is needed for correctness.
pub fn process_memory_setup() {
    // SAFETY: mallopt takes two ints; called before any other thread exists.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) } != 1 {
        log::debug!("mallopt(M_ARENA_MAX, 1) refused");
    }
    // SAFETY: plain prctl on the calling process, no pointers.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        log::debug!(
            "prctl(PR_SET_THP_DISABLE) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The environment variable that marks the one re-exec of [`exec_without_tcache`] and holds
/// what GLIBC_TUNABLES was before it ("" unset, "=value" set).
const TUNABLES_WERE: &str = "NOTIFY_GLIBC_TUNABLES_WERE";
const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";

/// No per-thread malloc cache in the long-running commands: glibc's tcache keeps up to 7 freed
/// chunks of every small size per thread, which malloc_trim counts as in use and never gives
/// back, so the start-up's small frees pinned pages all over the heap: on the host, `notify
/// trace` idle had 864 kB of heap RSS with the tcache, 384 kB without. glibc only takes that
/// setting from the environment at exec (`GLIBC_TUNABLES=glibc.malloc.tcache_count=0`).
///
/// So this execs the same binary again (/proc/self/exe), same pid, arguments, name and fds,
/// with `glibc.malloc.tcache_count=0` added to GLIBC_TUNABLES, once. In the re-executed process
/// (or when the tunable was already set by the user, or the exec fails) it does nothing but
/// put GLIBC_TUNABLES back as it was, so nothing notify starts inherits the setting. Called
/// first thing in `agent`'s and `trace`'s run, once clap has parsed their command line, and
/// before any other thread exists (main starts none before it).
pub fn exec_without_tcache() {
    use std::{ffi::OsString, os::unix::process::CommandExt as _};
    if let Some(was) = std::env::var_os(TUNABLES_WERE) {
        let was = was.to_string_lossy().into_owned();
        // SAFETY: before any other thread exists (see above).
        unsafe {
            std::env::remove_var(TUNABLES_WERE);
            match was.strip_prefix('=') {
                Some(v) => std::env::set_var("GLIBC_TUNABLES", v),
                None => std::env::remove_var("GLIBC_TUNABLES"),
            }
        }
        // The exec was of /proc/self/exe (the binary even if replaced on disk since), which
        // names the process "exe": give it back its own name (ps, top, pidof, journald).
        if let Some(name) = std::env::args_os()
            .next()
            .as_deref()
            .map(std::path::Path::new)
            .and_then(std::path::Path::file_name)
        {
            use std::os::unix::ffi::OsStrExt as _;
            let mut b = name.as_bytes().to_vec();
            b.truncate(15);
            b.push(0);
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
            unsafe { libc::prctl(libc::PR_SET_NAME, b.as_ptr()) };
        }
        return;
    }
    if !cfg!(target_env = "gnu") {
        return;
    }
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "notify".into());
    let was = std::env::var_os("GLIBC_TUNABLES");
    if was
        .as_ref()
        .is_some_and(|w| w.to_string_lossy().contains("tcache_count"))
    {
        return;
    }
    let (tunables, mark) = match &was {
        Some(w) if !w.is_empty() => {
            let mut t = w.clone();
            t.push(":");
            t.push(NO_TCACHE);
            let mut m = OsString::from("=");
            m.push(w);
            (t, m)
        }
        Some(_) => (OsString::from(NO_TCACHE), OsString::from("=")),
        None => (OsString::from(NO_TCACHE), OsString::new()),
    };
    let e = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(TUNABLES_WERE, mark)
        .exec();
    log::debug!("re-exec without glibc's tcache failed: {e}; running with it");
}

/// Parses `--ring-size`: bytes or K/M/G (binary multiples), a power of two from 64K to 1G.
pub fn parse_ring_size(s: &str) -> Result<u32, String> {
    crate::probe::ring::ring_size_ok(crate::cmd::agent::config::parse_size(s)?)
}

/// Gives back the heap that loading (BTF, the BPF object) used: freed by now, but kept by
/// malloc. The agent runs for weeks.
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the heap.
    unsafe { libc::malloc_trim(0) };
}

/// Once start-up is over ("ready"): [`trim_heap`] again, and [`drop_startup_pages`].
pub fn end_of_startup() {
    trim_heap();
    drop_startup_pages();
}

/// Start-up runs code and reads data of the binary that the running agent never touches
/// again: BTF and kallsyms parsing, aya's loader, the embedded BPF object (~650 KiB of
/// read-only data, read once by the loader), the command-line parser. Those pages stay mapped,
/// and counted in RSS, for the life of the process. This unmaps them (MADV_DONTNEED) from
/// every mapping of the binary that is not writable and holds no anonymous (copied-on-write)
/// page, that is its code and read-only data as they are on disk: the page cache keeps them
/// (clean, unmapped, reclaimable), contents cannot change (a private file mapping with no
/// private copy reads the file again), and whatever the agent runs from then on faults back
/// in from the page cache at first use and counts in RSS again. Mappings with a private copy
/// (RELRO, .data) are never touched. Not for other files (glibc is shared with every other
/// process). Best effort: any failure leaves the mappings as they are.
pub fn drop_startup_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in droppable_mappings(&smaps, &exe.to_string_lossy()) {
        // SAFETY: the range is a whole mapping of the binary, not writable, with no private
        // page: dropping it only removes page-table entries that fault back to the same file
        // contents. No Rust reference can be invalidated by that.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Mappings (start, end) in /proc/PID/smaps text of the file `path`, not writable, with
/// `Anonymous: 0 kB`.
pub fn droppable_mappings(smaps: &str, path: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let (Some(first), Some(second)) = (f.next(), f.next()) else {
            continue;
        };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            // "start-end perms offset dev inode path": ours if the path is the binary's (a
            // path with spaces or " (deleted)" does not match: left alone).
            let name = f.nth(3);
            cur = (name == Some(path) && f.next().is_none() && !second.contains('w'))
                .then_some((a, b));
        } else if first == "Anonymous:"
            && let Some(m) = cur.take()
            && second == "0"
        {
            out.push(m);
        }
    }
    out
}

/// "a, b" or "none".
pub fn none_if_empty(v: Vec<&str>) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which mappings the start-up release would drop, read from this test process's own
    /// smaps: only non-writable mappings of the test binary with no private page, and its code
    /// among them.
    #[test]
    fn only_the_binarys_clean_read_only_mappings_are_droppable() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let picked = droppable_mappings(&smaps, &exe);
        assert!(!picked.is_empty(), "the test binary's code is droppable");
        let line_of = |(a, b): (usize, usize)| {
            let range = format!("{a:x}-{b:x} ");
            maps.lines()
                .find(|l| l.starts_with(&range))
                .unwrap_or_else(|| panic!("{range} not in maps"))
                .to_string()
        };
        let mut code = false;
        for m in &picked {
            let l = line_of(*m);
            let perms = l.split_whitespace().nth(1).unwrap();
            assert!(!perms.contains('w'), "{l}");
            assert!(l.ends_with(&*exe), "{l}");
            code |= perms.contains('x');
        }
        assert!(code, "the code mapping is among {picked:x?}");
        // The writable mappings of the binary (.data, .bss) are never picked.
        for l in maps.lines().filter(|l| l.ends_with(&*exe)) {
            let perms = l.split_whitespace().nth(1).unwrap();
            if perms.contains('w') {
                let (a, b) = l
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .split_once('-')
                    .unwrap();
                let m = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                assert!(!picked.contains(&m), "{l}");
            }
        }
        // Dropping them leaves the process running the same code and reading the same data.
        let before = parse_ring_size("256K");
        drop_startup_pages();
        assert_eq!(parse_ring_size("256K"), before);
        assert_eq!(before, Ok(256 << 10));
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_size("64K"), Ok(64 << 10));
        assert_eq!(parse_ring_size("1M"), Ok(1 << 20));
        assert_eq!(parse_ring_size("1G"), Ok(1 << 30));
        assert_eq!(parse_ring_size("4194304"), Ok(4 << 20));
        for bad in ["100K", "32K", "4096", "2G", "0", "3M"] {
            let e = parse_ring_size(bad).unwrap_err();
            assert!(e.contains("power of two from 64K to 1G"), "{bad}: {e}");
        }
        assert!(parse_ring_size("big").unwrap_err().contains("not a size"));
        // Past u64: not a size at all; huge but representable: not a ring size.
        assert!(
            parse_ring_size("99999999999G")
                .unwrap_err()
                .contains("not a size")
        );
        assert!(
            parse_ring_size("99999999G")
                .unwrap_err()
                .contains("power of two")
        );
    }
}
