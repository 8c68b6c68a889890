//! Deciding and acting for one mapper: pin it with a pidfd, check it is the process scanned,
//! apply the protection rules, then report, dry-run or signal. Every path returns a
//! [`Decision`] with its class and reason.

use std::{io, os::fd::AsFd, path::Path};

use notify_model::decision::{Act, Decision, Why, signal_name};

use crate::{
    enforce::{
        pidfd::{RawSiginfo, SI_USER, pidfd_open, pidfd_send_signal, wait_pidfd},
        policy::{Allowlist, Config, Refusal, SigbusInfo, parse_cgroup, refusal},
    },
    resolve::mappers::{self, Mapper},
};

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
        action: Act::Refused,
        class: Why::Other,
        reason: String::new(),
        policy: cfg.policy,
        signal: sig.map(|s| signal_name(s).to_string()),
        si_code: None,
        dry_run: cfg.dry_run,
        addr,
        exited: None,
    };
    let done = |mut d: Decision, action: Act, class: Why, reason: String| {
        d.action = action;
        d.class = class;
        d.reason = reason;
        d
    };
    let refused = |d: Decision, r: Refusal| {
        let class = r.class();
        done(d, Act::Refused, class, r.to_string())
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
        return refused(d, r);
    }
    if cfg.spare.contains(&m.pid) {
        return refused(d, Refusal::KernelSignalled);
    }

    // Pin the process, then check it is the one we scanned.
    let pidfd = match pidfd_open(m.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            return done(
                d,
                Act::Gone,
                Why::ExitedBefore,
                "exited before the signal (no such process)".into(),
            );
        }
        Err(e) => {
            return done(
                d,
                Act::Failed,
                Why::PidfdOpen,
                format!("pidfd_open: {}", errno_str(&e)),
            );
        }
    };
    let st = match mappers::read_stat(&cfg.proc_root, m.pid) {
        Ok(st) => st,
        Err(e) => {
            return done(
                d,
                Act::Gone,
                Why::ExitedBefore,
                format!("exited before the signal (stat: {e})"),
            );
        }
    };
    if st.start_time != m.start_time {
        return refused(
            d,
            Refusal::PidReused {
                scanned: m.start_time,
                now: st.start_time,
                comm: st.comm.clone(),
            },
        );
    }
    if st.is_dead() {
        return done(
            d,
            Act::Gone,
            Why::ExitedBefore,
            format!("exited before the signal (state {})", st.state),
        );
    }
    if st.is_kernel_thread() {
        return refused(d, Refusal::KernelThread);
    }
    d.comm = st.comm.clone();
    let cgroups = std::fs::read_to_string(cfg.proc_root.join(m.pid.to_string()).join("cgroup"))
        .map(|t| parse_cgroup(&t))
        .unwrap_or_default();
    if let Some(r) = refusal(m.pid, &st.comm, &cgroups, self_pid, &cfg.allow) {
        return refused(d, r);
    }
    if cfg.recheck_mapping {
        let targets: Vec<_> = m.hits.iter().map(|h| h.target).collect();
        match mappers::hits_of(&cfg.proc_root, m.pid, &targets) {
            Ok(h) if h.is_empty() => {
                return done(
                    d,
                    Act::NotMapping,
                    Why::Unmapped,
                    "no longer maps the damaged range".into(),
                );
            }
            Ok(h) => d.addr = h.first().map(|h| h.addr_lo),
            Err(e) => {
                return done(
                    d,
                    Act::Gone,
                    Why::ExitedBefore,
                    format!("exited before the signal (maps: {e})"),
                );
            }
        }
    }

    let Some(sig) = sig else {
        return done(
            d,
            Act::Reported,
            Why::PolicyReport,
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
            Act::WouldSignal,
            Why::DryRun,
            format!(
                "maps the damaged range; dry run, {} not sent",
                signal_name(sig)
            ),
        );
    }
    match pidfd_send_signal(pidfd.as_fd(), sig, info.as_ref()) {
        Ok(()) => {
            d.si_code = Some(si_code);
            let mut reason = "maps the damaged range".to_string();
            let mut class = Why::Sent;
            if let Some(t) = cfg.wait_exit {
                let exited = wait_pidfd(pidfd.as_fd(), t);
                d.exited = Some(exited);
                class = if exited { Why::Exited } else { Why::Survived };
                if !exited {
                    reason = format!(
                        "maps the damaged range; still running {t:?} after {} (handled or \
                         blocked it)",
                        signal_name(sig)
                    );
                }
            }
            done(d, Act::Signalled, class, reason)
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => done(
            d,
            Act::Gone,
            Why::ExitedBefore,
            "exited before the signal (ESRCH)".into(),
        ),
        Err(e) => done(
            d,
            Act::Failed,
            Why::PidfdSendSignal,
            format!("pidfd_send_signal: {}", errno_str(&e)),
        ),
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
