//! Acting on the mappers of a damaged range: report, SIGBUS or SIGKILL, through pidfds.
//!
//! Every candidate yields one [`Decision`] — signalled, would-signal (dry run), reported,
//! refused (with the rule that refused it), gone, or failed — that the caller logs as an event.
//!
//! Identity: a pid is only a number. Between the scan of /proc and the signal the process can
//! exit and its pid be reused. So we open a pidfd first (it pins *that* process: a signal
//! through it can never reach a later holder of the number), and only then re-read
//! /proc/PID/stat and compare the start time recorded at scan time. If the numbers differ, the
//! pidfd is for a newer process and we refuse. If the original process dies after the check,
//! `pidfd_send_signal` fails with ESRCH and we report it gone.
//!
//! What SIGBUS looks like to the victim (each point tested in tests/enforce.rs, kernel 6.18):
//! - The kernel's own memory-failure kill sends SIGBUS with si_code BUS_MCEERR_AO (action
//!   optional, early kill) or BUS_MCEERR_AR (on access), si_addr = the poisoned address and
//!   si_addr_lsb = page shift.
//! - Userspace cannot forge that for another process: `pidfd_send_signal()` (like
//!   `rt_sigqueueinfo()`) returns EPERM unless the target is the caller or si_code is negative
//!   and not SI_TKILL ("Only allow sending arbitrary signals to yourself", kernel/signal.c).
//!   BUS_MCEERR_AO is 5: EPERM for other processes. "The caller" is the calling *thread*
//!   (`task_pid(current) == pid`): even a process's own pidfd is refused from a non-leader
//!   thread; only a PIDFD_THREAD pidfd of the calling thread itself gets it through, and then
//!   si_code and si_addr arrive as sent.
//! - What we can send: no siginfo (the kernel fills SI_USER, si_pid = us, like kill(2)) — the
//!   default — or a negative si_code such as SI_QUEUE, whose payload we choose: with
//!   [`SigbusInfo::Queue`] the victim gets si_code SI_QUEUE and the first damaged virtual
//!   address in si_value. A handler that only understands BUS_MCEERR_* sees a plain user
//!   SIGBUS either way.
//! - A SIGBUS is fatal only under the default disposition. Processes with a SIGBUS handler may
//!   survive it. Notably every Rust program: the runtime's stack-overflow handler resets SIGBUS
//!   to SIG_DFL and returns when si_addr is not its guard page — a real fault re-faults and
//!   dies, but a sent SIGBUS (ours, or the kernel's BUS_MCEERR_AO early kill) has nothing to
//!   re-trigger, so the first one is swallowed and only a second is fatal. Set
//!   [`Config::wait_exit`] to record whether the process really exited
//!   ([`Decision::exited`]); use policy `sigkill` when mappers must be gone.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::mappers::{self, Mapper};

// ---------------------------------------------------------------------------------------------
// Syscalls
// ---------------------------------------------------------------------------------------------

/// `siginfo_t` as the kernel copies it in (x86_64/aarch64 layout, 128 bytes): the three ints,
/// padding, then the union at offset 16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSiginfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    _pad: i32,
    /// The union: `_rt` is {pid i32, uid u32, sigval u64}; `_sigfault` is {addr u64,
    /// addr_lsb i16, ...}.
    pub fields: [u64; 14],
}

const _: () = assert!(std::mem::size_of::<RawSiginfo>() == 128);

pub const SI_USER: i32 = 0;
pub const SI_QUEUE: i32 = -1;
pub const BUS_MCEERR_AR: i32 = 4;
pub const BUS_MCEERR_AO: i32 = 5;

impl RawSiginfo {
    /// SI_QUEUE with our pid/uid and `value` in si_value: allowed for any target we may signal.
    pub fn queue(sig: i32, value: u64) -> Self {
        // SAFETY: getpid/getuid cannot fail.
        let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
        let mut fields = [0u64; 14];
        fields[0] = (pid as u32 as u64) | ((uid as u64) << 32);
        fields[1] = value;
        RawSiginfo {
            signo: sig,
            errno: 0,
            code: SI_QUEUE,
            _pad: 0,
            fields,
        }
    }

    /// What the kernel's memory-failure kill sends: SIGBUS, `code` BUS_MCEERR_AO/AR, si_addr
    /// and si_addr_lsb. The kernel accepts this from userspace only for the caller itself.
    pub fn mceerr(code: i32, addr: u64, addr_lsb: u16) -> Self {
        let mut fields = [0u64; 14];
        fields[0] = addr;
        fields[1] = addr_lsb as u64;
        RawSiginfo {
            signo: libc::SIGBUS,
            errno: 0,
            code,
            _pad: 0,
            fields,
        }
    }
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the return value is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: i32,
    info: Option<&RawSiginfo>,
) -> io::Result<()> {
    let info_ptr = info.map_or(std::ptr::null(), |i| i as *const RawSiginfo);
    // SAFETY: info_ptr is null or points to a 128-byte siginfo that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            info_ptr,
            0u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Policy and decisions
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Record who maps the damage; signal nobody.
    Report,
    /// SIGBUS, what the kernel would have sent (see the module docs for the si_code).
    Sigbus,
    /// SIGKILL: for processes that catch SIGBUS and carry on.
    Sigkill,
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "report" => Ok(Self::Report),
            "sigbus" => Ok(Self::Sigbus),
            "sigkill" => Ok(Self::Sigkill),
            _ => Err(format!(
                "unknown policy {s:?}: expected report, sigbus or sigkill"
            )),
        }
    }
}

impl Policy {
    pub fn signal(self) -> Option<i32> {
        match self {
            Self::Report => None,
            Self::Sigbus => Some(libc::SIGBUS),
            Self::Sigkill => Some(libc::SIGKILL),
        }
    }
}

/// The siginfo a SIGBUS carries (SIGKILL never carries one: it cannot be caught).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SigbusInfo {
    /// No siginfo: si_code SI_USER, si_pid = the agent, as kill(2).
    #[default]
    Kill,
    /// si_code SI_QUEUE, si_value = first damaged virtual address in the victim.
    Queue,
}

/// Processes that are never signalled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Allowlist {
    pub pids: Vec<i32>,
    /// Exact `comm` (as in /proc/PID/stat, at most 15 bytes).
    pub comms: Vec<String>,
    /// cgroup path prefixes, matched per path component ("/system.slice/db" covers
    /// "/system.slice/db/x" but not "/system.slice/dbx").
    pub cgroup_prefixes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    pub policy: Policy,
    pub dry_run: bool,
    pub allow: Allowlist,
    pub sigbus_info: SigbusInfo,
    /// Re-read the candidate's maps after opening the pidfd and skip it when it no longer maps
    /// the damaged range (it unmapped or exec'd since the scan).
    pub recheck_mapping: bool,
    /// After a signal, wait up to this long for the process to exit (pidfd becomes readable)
    /// and record the outcome in `Decision::exited`. A SIGBUS is not always fatal: a process
    /// with a SIGBUS handler may survive it (see the module docs), and the caller may want to
    /// know, or escalate with policy sigkill.
    pub wait_exit: Option<Duration>,
    pub proc_root: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::Report,
            dry_run: false,
            allow: Allowlist::default(),
            sigbus_info: SigbusInfo::Kill,
            recheck_mapping: true,
            wait_exit: None,
            proc_root: PathBuf::from("/proc"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The signal was delivered to the process.
    Signalled,
    /// Dry run: everything checked, the signal below would have been sent.
    WouldSignal,
    /// Policy `report`: identified, not signalled.
    Reported,
    /// A rule forbids signalling this process (reason says which).
    Refused,
    /// The process no longer maps the damaged range.
    NotMapping,
    /// The process exited (or is a zombie) before the signal: nothing was sent.
    Gone,
    /// A syscall failed (reason has the errno).
    Failed,
}

/// One structured record per candidate and per outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub pid: i32,
    pub comm: String,
    pub action: Action,
    pub reason: String,
    pub policy: Policy,
    /// Signal sent or that would be sent ("SIGBUS"/"SIGKILL").
    pub signal: Option<&'static str>,
    /// si_code the victim sees for a sent signal.
    pub si_code: Option<i32>,
    pub dry_run: bool,
    /// First damaged virtual address in the process, when known.
    pub addr: Option<u64>,
    /// With `Config::wait_exit`: whether the process exited within that time after the signal.
    pub exited: Option<bool>,
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        _ => "signal",
    }
}

/// cgroup paths of a process from /proc/PID/cgroup ("0::/a/b" for v2, "N:ctrl:/a/b" for v1).
pub fn parse_cgroup(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(str::to_string)
        .collect()
}

fn prefix_matches(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The protection rules, pure: `Some(reason)` when the process must not be signalled.
/// Checked in order: pid 1, the agent, pid allowlist, comm allowlist, cgroup allowlist.
pub fn refusal(
    pid: i32,
    comm: &str,
    cgroups: &[String],
    self_pid: i32,
    allow: &Allowlist,
) -> Option<String> {
    if pid <= 0 {
        return Some(format!("invalid pid {pid}"));
    }
    if pid == 1 {
        return Some("pid 1 (init) is never signalled: killing it panics the system".into());
    }
    if pid == self_pid {
        return Some("the notify agent itself is never signalled".into());
    }
    if allow.pids.contains(&pid) {
        return Some(format!("pid {pid} is allowlisted"));
    }
    if allow.comms.iter().any(|c| c == comm) {
        return Some(format!("comm {comm:?} is allowlisted"));
    }
    for cg in cgroups {
        if let Some(p) = allow.cgroup_prefixes.iter().find(|p| prefix_matches(cg, p)) {
            return Some(format!("cgroup {cg} is allowlisted (prefix {p})"));
        }
    }
    None
}

fn errno_str(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{e} (errno {n})"),
        None => e.to_string(),
    }
}

/// Decide and act for one mapper. Never panics; every path returns a decision.
pub fn enforce(cfg: &Config, m: &Mapper) -> Decision {
    let sig = cfg.policy.signal();
    let addr = m.hits.first().map(|h| h.addr_lo);
    let mut d = Decision {
        pid: m.pid,
        comm: m.comm.clone(),
        action: Action::Refused,
        reason: String::new(),
        policy: cfg.policy,
        signal: sig.map(signal_name),
        si_code: None,
        dry_run: cfg.dry_run,
        addr,
        exited: None,
    };
    let done = |mut d: Decision, action: Action, reason: String| {
        d.action = action;
        d.reason = reason;
        d
    };
    // SAFETY: getpid cannot fail.
    let self_pid = unsafe { libc::getpid() };
    // Rules that need no /proc: refuse before touching the process at all.
    if let Some(r) = refusal(
        m.pid,
        "",
        &[],
        self_pid,
        &Allowlist {
            pids: cfg.allow.pids.clone(),
            ..Default::default()
        },
    ) {
        return done(d, Action::Refused, r);
    }

    // Pin the process, then check it is the one we scanned.
    let pidfd = match pidfd_open(m.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            return done(
                d,
                Action::Gone,
                "exited before the signal (no such process)".into(),
            );
        }
        Err(e) => return done(d, Action::Failed, format!("pidfd_open: {}", errno_str(&e))),
    };
    let st = match mappers::read_stat(&cfg.proc_root, m.pid) {
        Ok(st) => st,
        Err(e) => {
            return done(
                d,
                Action::Gone,
                format!("exited before the signal (stat: {e})"),
            );
        }
    };
    if st.start_time != m.start_time {
        return done(
            d,
            Action::Refused,
            format!(
                "pid reused: start time {} differs from {} seen at scan time; a different \
                 process ({}) now holds this pid",
                st.start_time, m.start_time, st.comm
            ),
        );
    }
    if st.is_dead() {
        return done(
            d,
            Action::Gone,
            format!("exited before the signal (state {})", st.state),
        );
    }
    if st.is_kernel_thread() {
        return done(d, Action::Refused, "kernel thread".into());
    }
    d.comm = st.comm.clone();
    let cgroups = std::fs::read_to_string(cfg.proc_root.join(m.pid.to_string()).join("cgroup"))
        .map(|t| parse_cgroup(&t))
        .unwrap_or_default();
    if let Some(r) = refusal(m.pid, &st.comm, &cgroups, self_pid, &cfg.allow) {
        return done(d, Action::Refused, r);
    }
    if cfg.recheck_mapping {
        let targets: Vec<_> = m.hits.iter().map(|h| h.target).collect();
        match mappers::hits_of(&cfg.proc_root, m.pid, &targets) {
            Ok(h) if h.is_empty() => {
                return done(
                    d,
                    Action::NotMapping,
                    "no longer maps the damaged range".into(),
                );
            }
            Ok(h) => d.addr = h.first().map(|h| h.addr_lo),
            Err(e) => {
                return done(
                    d,
                    Action::Gone,
                    format!("exited before the signal (maps: {e})"),
                );
            }
        }
    }

    let Some(sig) = sig else {
        return done(
            d,
            Action::Reported,
            "maps the damaged range; policy is report".into(),
        );
    };
    let info = match (sig, cfg.sigbus_info) {
        (libc::SIGBUS, SigbusInfo::Queue) => Some(RawSiginfo::queue(sig, d.addr.unwrap_or(0))),
        _ => None,
    };
    let si_code = info.map_or(SI_USER, |i| i.code);
    if cfg.dry_run {
        d.si_code = Some(si_code);
        return done(
            d,
            Action::WouldSignal,
            format!(
                "maps the damaged range; dry run, {} not sent",
                signal_name(sig)
            ),
        );
    }
    use std::os::fd::AsFd;
    match pidfd_send_signal(pidfd.as_fd(), sig, info.as_ref()) {
        Ok(()) => {
            d.si_code = Some(si_code);
            let mut reason = "maps the damaged range".to_string();
            if let Some(t) = cfg.wait_exit {
                let exited = wait_pidfd(pidfd.as_fd(), t);
                d.exited = Some(exited);
                if !exited {
                    reason = format!(
                        "maps the damaged range; still running {t:?} after {} (handled or \
                         blocked it)",
                        signal_name(sig)
                    );
                }
            }
            done(d, Action::Signalled, reason)
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            done(d, Action::Gone, "exited before the signal (ESRCH)".into())
        }
        Err(e) => done(
            d,
            Action::Failed,
            format!("pidfd_send_signal: {}", errno_str(&e)),
        ),
    }
}

/// Wait until the process behind `pidfd` has exited (the pidfd polls readable), up to `t`.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>, t: Duration) -> bool {
    let deadline = Instant::now() + t;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// [`enforce`] for every mapper, in order.
pub fn enforce_all(cfg: &Config, mappers: &[Mapper]) -> Vec<Decision> {
    mappers.iter().map(|m| enforce(cfg, m)).collect()
}

/// Convenience for callers that only have a pid: the stat fields a [`Mapper`] needs.
pub fn mapper_for_pid(
    proc_root: &Path,
    pid: i32,
    targets: &[mappers::Target],
) -> io::Result<Mapper> {
    let st = mappers::read_stat(proc_root, pid)?;
    Ok(Mapper {
        pid,
        comm: st.comm,
        start_time: st.start_time,
        hits: mappers::hits_of(proc_root, pid, targets)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_rules_in_order() {
        let allow = Allowlist {
            pids: vec![4242],
            comms: vec!["postgres".into()],
            cgroup_prefixes: vec!["/system.slice/db".into(), "/keep/".into()],
        };
        let r = |pid, comm, cg: &[&str]| {
            let cg: Vec<String> = cg.iter().map(|s| s.to_string()).collect();
            refusal(pid, comm, &cg, 1000, &allow)
        };
        assert!(r(1, "init", &[]).unwrap().contains("pid 1"));
        assert!(r(1000, "notify", &[]).unwrap().contains("agent itself"));
        assert!(r(0, "x", &[]).unwrap().contains("invalid"));
        assert!(r(4242, "x", &[]).unwrap().contains("allowlisted"));
        assert!(r(7, "postgres", &[]).unwrap().contains("comm"));
        assert!(r(7, "postgres2", &[]).is_none());
        assert!(r(7, "x", &["/system.slice/db"]).unwrap().contains("cgroup"));
        assert!(r(7, "x", &["/system.slice/db/child"]).is_some());
        assert!(
            r(7, "x", &["/system.slice/dbx"]).is_none(),
            "component-wise prefix"
        );
        assert!(r(7, "x", &["/keep/a"]).is_some());
        assert!(r(7, "x", &["/user.slice"]).is_none());
    }

    #[test]
    fn cgroup_file_parses_v1_and_v2() {
        let t = "12:pids:/user.slice/a\n0::/system.slice/db.service\n";
        assert_eq!(
            parse_cgroup(t),
            vec![
                "/user.slice/a".to_string(),
                "/system.slice/db.service".to_string()
            ]
        );
    }

    #[test]
    fn policy_parses() {
        assert_eq!("sigbus".parse::<Policy>().unwrap(), Policy::Sigbus);
        assert!("nuke".parse::<Policy>().is_err());
        assert_eq!(Policy::Report.signal(), None);
        assert_eq!(Policy::Sigkill.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn siginfo_layout() {
        let q = RawSiginfo::queue(libc::SIGBUS, 0xdead_b000);
        assert_eq!(q.code, SI_QUEUE);
        assert_eq!(q.fields[1], 0xdead_b000);
        let m = RawSiginfo::mceerr(BUS_MCEERR_AO, 0x1000, 12);
        // si_addr sits at offset 16 of siginfo_t.
        let bytes: [u8; 128] = unsafe { std::mem::transmute(m) };
        assert_eq!(
            u64::from_ne_bytes(bytes[16..24].try_into().unwrap()),
            0x1000
        );
        assert_eq!(
            i32::from_ne_bytes(bytes[8..12].try_into().unwrap()),
            BUS_MCEERR_AO
        );
    }
}
