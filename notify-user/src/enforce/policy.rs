//! The policy: what to do with mappers, who is never signalled, and the protection rules that
//! refuse a signal (pure, tested below).

use std::{collections::BTreeSet, fmt, path::PathBuf, time::Duration};

use notify_model::decision::{Policy, Why};
use serde::Serialize;

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
    /// Threads the kernel already sent a memory-error SIGBUS (XFS's own kill, a DAX fault on a
    /// listed sector): never signalled again. Filled in by the agent from the stream.
    pub spare: BTreeSet<i32>,
    /// How the mappers are found (by default /proc, or the kernel's VMA iterator once /proc
    /// scans have paid for its load: see `mappers::Method::Auto`).
    pub scan: crate::resolve::mappers::Method,
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
            spare: BTreeSet::new(),
            scan: crate::resolve::mappers::Method::Auto,
        }
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

/// Why a process must not be signalled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    InvalidPid(i32),
    Pid1,
    Agent,
    AllowPid(i32),
    AllowComm(String),
    AllowCgroup {
        cgroup: String,
        prefix: String,
    },
    PidReused {
        scanned: u64,
        now: u64,
        comm: String,
    },
    KernelThread,
    /// The kernel already sent it a memory-error SIGBUS.
    KernelSignalled,
}

impl Refusal {
    pub fn class(&self) -> Why {
        match self {
            Refusal::InvalidPid(_) => Why::InvalidPid,
            Refusal::Pid1 => Why::Pid1,
            Refusal::Agent => Why::Agent,
            Refusal::AllowPid(_) => Why::AllowPid,
            Refusal::AllowComm(_) => Why::AllowComm,
            Refusal::AllowCgroup { .. } => Why::AllowCgroup,
            Refusal::PidReused { .. } => Why::PidReused,
            Refusal::KernelThread => Why::KernelThread,
            Refusal::KernelSignalled => Why::KernelSignalled,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InvalidPid(pid) => write!(f, "invalid pid {pid}"),
            Refusal::Pid1 => {
                f.write_str("pid 1 (init) is never signalled: killing it panics the system")
            }
            Refusal::Agent => f.write_str("the notify agent itself is never signalled"),
            Refusal::AllowPid(pid) => write!(f, "pid {pid} is allowlisted"),
            Refusal::AllowComm(comm) => write!(f, "comm {comm:?} is allowlisted"),
            Refusal::AllowCgroup { cgroup, prefix } => {
                write!(f, "cgroup {cgroup} is allowlisted (prefix {prefix})")
            }
            Refusal::PidReused { scanned, now, comm } => write!(
                f,
                "pid reused: start time {now} differs from {scanned} seen at scan time; a \
                 different process ({comm}) now holds this pid"
            ),
            Refusal::KernelThread => f.write_str("kernel thread"),
            Refusal::KernelSignalled => f.write_str(
                "the kernel already sent it SIGBUS for this memory error: not signalled twice",
            ),
        }
    }
}

/// The protection rules, pure: `Some(refusal)` when the process must not be signalled.
/// Checked in order: pid 1, the agent, pid allowlist, comm allowlist, cgroup allowlist.
pub fn refusal(
    pid: i32,
    comm: &str,
    cgroups: &[String],
    self_pid: i32,
    allow: &Allowlist,
) -> Option<Refusal> {
    if pid <= 0 {
        return Some(Refusal::InvalidPid(pid));
    }
    if pid == 1 {
        return Some(Refusal::Pid1);
    }
    if pid == self_pid {
        return Some(Refusal::Agent);
    }
    if allow.pids.contains(&pid) {
        return Some(Refusal::AllowPid(pid));
    }
    if allow.comms.iter().any(|c| c == comm) {
        return Some(Refusal::AllowComm(comm.to_string()));
    }
    for cg in cgroups {
        if let Some(p) = allow.cgroup_prefixes.iter().find(|p| prefix_matches(cg, p)) {
            return Some(Refusal::AllowCgroup {
                cgroup: cg.clone(),
                prefix: p.clone(),
            });
        }
    }
    None
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
            refusal(pid, comm, &cg, 1000, &allow).map(|r| r.to_string())
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
}
