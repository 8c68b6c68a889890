//! `notify record`: trace while one command runs, then write a session file.
//!
//! The probes attach first, then the command starts (stdin, stdout and stderr inherited: notify's
//! own messages go to stderr only, prefixed `notify:`), events are consumed as `notify trace`
//! does (the same [`Pipeline`]: reorder window and readiness tracker), and when the command
//! exits the ring buffer is read for a short grace period for late events, drained, and the
//! session written. The session is written whatever the command did: failed, killed by a signal,
//! or could not be started at all.

use std::{
    collections::BTreeSet,
    os::fd::{FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    event::{Dev, EventData, TraceEvent},
    probes::AttachMode,
    session::Session,
    session_file::{self, ExitStatus, Lost, ProbeRecord, SessionFile},
    trace::{Pipeline, Ring},
};

/// How long events are still read after the command exited: late commits from other CPUs, and
/// work the kernel defers past the syscall's return (unmount's task_work, kworkers).
pub const DEFAULT_GRACE: Duration = Duration::from_millis(200);

/// notify's exit status when a `--fail-on` finding holds.
pub const FINDING_EXIT: u8 = 3;

/// Findings that `--fail-on` turns into exit status 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// A notification with verdict `premature` (XFS dropped it: not ready yet).
    Premature,
    /// Events lost in the kernel (ring buffer full) or sequence gaps.
    Lost,
    /// A kill by the kernel: a `delivered` notification (XFS walked the owners and killed the
    /// processes mapping the range), or the command itself ended by SIGBUS.
    Kill,
}

pub struct RecordOptions {
    pub output: PathBuf,
    pub attach: AttachMode,
    pub fail_on: Vec<FailOn>,
    pub command: Vec<String>,
    pub grace: Duration,
}

/// What a recording produced.
pub struct Recorded {
    pub session: SessionFile,
    /// One line per `--fail-on` finding that holds.
    pub findings: Vec<String>,
}

impl Recorded {
    /// notify's exit status: 3 when a finding holds, else the command's (128 + signal when a
    /// signal ended it; 127/126 when it could not be started).
    pub fn exit_code(&self) -> u8 {
        if !self.findings.is_empty() {
            FINDING_EXIT
        } else {
            self.session.exit_status.shell_code().clamp(0, 255) as u8
        }
    }
}

/// The `--fail-on` findings of a session, one line each.
pub fn findings(s: &SessionFile, fail_on: &[FailOn]) -> Vec<String> {
    let seqs = |evs: Vec<&TraceEvent>| {
        evs.iter()
            .map(|e| e.seq.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for f in fail_on {
        if !seen.insert(*f as u8) {
            continue;
        }
        match f {
            FailOn::Premature => {
                let p = s.premature();
                if !p.is_empty() {
                    out.push(format!(
                        "premature: {} notification(s) dropped by a holder that was not ready \
                         (seq {})",
                        p.len(),
                        seqs(p)
                    ));
                }
            }
            FailOn::Lost => {
                if s.lost.any() {
                    out.push(format!(
                        "lost: {} event(s) lost in the kernel (ring buffer full), {} sequence \
                         gap(s)",
                        s.lost.kernel, s.lost.seq_gaps
                    ));
                }
            }
            FailOn::Kill => {
                let d = s.delivered();
                if !d.is_empty() {
                    out.push(format!(
                        "kill: {} notification(s) delivered: XFS killed the processes mapping \
                         the range (seq {})",
                        d.len(),
                        seqs(d)
                    ));
                }
                if s.exit_status == ExitStatus::Signal(libc::SIGBUS) {
                    out.push("kill: the command was killed by SIGBUS".to_string());
                }
            }
        }
    }
    out
}

/// Block-device names from sysfs for every device the events name ("259:0" -> "pmem0").
pub fn device_names(events: &[TraceEvent]) -> std::collections::BTreeMap<String, String> {
    let mut devs = BTreeSet::new();
    for e in events {
        let d = match &e.data {
            EventData::HolderGet { dev, .. } | EventData::XfsTracepoint { dev, .. } => *dev,
            EventData::FillSuperEnter(s)
            | EventData::FillSuperExit(s)
            | EventData::MountfsEnter(s)
            | EventData::MountfsExit(s)
            | EventData::LogRecoverEnter(s)
            | EventData::LogRecoverExit(s)
            | EventData::LogRecoverFinishEnter(s)
            | EventData::LogRecoverFinishExit(s)
            | EventData::GetTreeExit(s)
            | EventData::PutSuper(s) => s.dev,
            EventData::HolderState(t) => t.dev,
            EventData::Notification(n) => n.dev,
            _ => Dev(0),
        };
        if d.is_known() {
            devs.insert(d);
        }
    }
    devs.into_iter()
        .filter_map(|d| {
            let uevent = std::fs::read_to_string(format!("/sys/dev/block/{d}/uevent")).ok()?;
            let name = uevent
                .lines()
                .find_map(|l| l.strip_prefix("DEVNAME="))?
                .to_string();
            Some((d.to_string(), name))
        })
        .collect()
}

/// The ring buffer of an open session and what has been read from it.
struct Stream {
    ring: Ring,
    pipe: Pipeline,
    events: Vec<TraceEvent>,
}

impl Stream {
    fn open(session: &mut Session) -> anyhow::Result<Stream> {
        Ok(Stream {
            ring: Ring::open(session)?,
            // Derived events always: the session keeps the verdicts.
            pipe: Pipeline::new(true),
            events: Vec::new(),
        })
    }

    /// Waits for data or until `cap` passes (and the reorder deadline), reads what is there.
    /// Cancel-safe: nothing is read across an await point.
    async fn wait(&mut self, cap: Duration) -> std::io::Result<()> {
        let now = Instant::now();
        let sleep = self.pipe.reorder.deadline(now).unwrap_or(cap).min(cap);
        tokio::select! {
            r = self.ring.read_into(&mut self.pipe) => r?,
            _ = tokio::time::sleep(sleep) => {}
        }
        let evs = self.pipe.ready(Instant::now(), false);
        self.events.extend(evs);
        Ok(())
    }

    /// Reads what the kernel committed and flushes the reorder window.
    fn drain(&mut self) -> Lost {
        self.ring.drain_into(&mut self.pipe);
        let evs = self.pipe.ready(Instant::now(), true);
        self.events.extend(evs);
        self.pipe.totals.lost_kernel = self.ring.lost_in_kernel();
        Lost {
            kernel: self.pipe.totals.lost_kernel,
            seq_gaps: self.pipe.totals.seq_gaps,
        }
    }
}

/// A pidfd for the child, readable once it exits (Linux 5.3+); None where that is missing.
fn pidfd(child: &Child) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd < 0 {
        log::debug!(
            "pidfd_open: {}: polling for the command's exit",
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the fd, which stays open while registered.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}

async fn exited(fd: &Option<AsyncFd<OwnedFd>>) {
    match fd {
        Some(fd) => {
            // Readable means exited; an error means we cannot tell: fall back to polling.
            if fd.readable().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Refuses an output path whose directory does not exist, before anything runs.
pub(crate) fn check_output(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write the session to {}: {} is not a directory",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!("{} is a directory: give a file name", path.display());
    }
    Ok(())
}

/// Records a session around one command.
pub async fn record(opts: RecordOptions) -> anyhow::Result<Recorded> {
    check_output(&opts.output)?;
    let program = opts
        .command
        .first()
        .context("no command given: notify record -o SESSION -- COMMAND...")?;
    let mut session = Session::open(opts.attach)?;
    session.report_to_stderr();
    let probes: Vec<ProbeRecord> = session.probes.outcomes.iter().map(Into::into).collect();
    let kernel = session.kernel.release.clone();
    let mut stream = Stream::open(&mut session)?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let started_wall = SystemTime::now();
    let start = Instant::now();
    let mut error = None;
    let mut ring_failed = false;
    let exit_status = match Command::new(program).args(&opts.command[1..]).spawn() {
        Err(e) => {
            eprintln!("notify: cannot run {program}: {e}");
            error = Some(format!("cannot run {program}: {e}"));
            // What a shell reports: 126 found but not executable, 127 not found.
            ExitStatus::Code(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            })
        }
        Ok(mut child) => {
            let pid = child.id() as libc::pid_t;
            let pidfd = pidfd(&child);
            // Without a pidfd, look every 50 ms.
            let cap = if pidfd.is_some() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(50)
            };
            loop {
                if let Some(st) = child.try_wait()? {
                    break ExitStatus::from_std(st);
                }
                if ring_failed {
                    // The ring buffer failed: only wait for the command now.
                    let st = child.wait()?;
                    break ExitStatus::from_std(st);
                }
                let forward = tokio::select! {
                    r = stream.wait(cap) => {
                        if let Err(e) = r {
                            eprintln!("notify: reading the ring buffer: {e}; waiting for the command");
                            error = Some(format!("reading the ring buffer failed: {e}"));
                            ring_failed = true;
                        }
                        None
                    }
                    _ = exited(&pidfd) => None,
                    _ = sigint.recv() => Some(libc::SIGINT),
                    _ = sigterm.recv() => Some(libc::SIGTERM),
                    _ = sighup.recv() => Some(libc::SIGHUP),
                };
                if let Some(sig) = forward {
                    // The command decides when to stop; notify writes the session after it.
                    log::info!("forwarding signal {sig} to {pid}");
                    // SAFETY: kill with a pid we spawned and have not reaped.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
    };
    // Late events: other CPUs' commits, and work deferred past the command's last syscall.
    if !ring_failed {
        let until = Instant::now() + opts.grace;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left.is_zero() || stream.wait(left).await.is_err() {
                break;
            }
        }
    }
    let lost = stream.drain();
    let duration_ns = start.elapsed().as_nanos() as u64;
    let undecodable = stream.pipe.totals.undecodable;
    let events = std::mem::take(&mut stream.events);
    let file = SessionFile {
        lost,
        command: opts.command.clone(),
        exit_status,
        started_wall: session_file::rfc3339(started_wall),
        duration_ns,
        error,
        ..SessionFile::new(kernel, opts.attach, probes, events)
    };
    file.save(&opts.output).with_context(|| {
        format!(
            "cannot write the session to {} (the command's exit status was {})",
            opts.output.display(),
            exit_status.shell_code()
        )
    })?;
    eprintln!(
        "notify: session {}: {} events, {} lost in the kernel, {} sequence gaps, {} undecodable; \
         command exit {}",
        opts.output.display(),
        file.events.len(),
        lost.kernel,
        lost.seq_gaps,
        undecodable,
        match exit_status {
            ExitStatus::Code(c) => format!("code {c}"),
            ExitStatus::Signal(s) => format!("signal {s}"),
        }
    );
    let findings = findings(&file, &opts.fail_on);
    for f in &findings {
        eprintln!("notify: --fail-on {f}");
    }
    Ok(Recorded {
        session: file,
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_file::{FORMAT, VERSION};

    fn fixture(name: &str) -> Vec<TraceEvent> {
        let p = format!(
            "{}/../xtask/tests/fixtures/{name}/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn session(events: Vec<TraceEvent>, exit: ExitStatus, lost: Lost) -> SessionFile {
        SessionFile {
            format: FORMAT.into(),
            version: VERSION,
            kernel: "6.1.0".into(),
            attach: "auto".into(),
            probes: vec![],
            lost,
            command: vec!["x".into()],
            exit_status: exit,
            started_wall: String::new(),
            duration_ns: 0,
            error: None,
            devices: Default::default(),
            events,
        }
    }

    const ALL: [FailOn; 3] = [FailOn::Premature, FailOn::Lost, FailOn::Kill];

    #[test]
    fn fail_on_findings_from_real_fixtures() {
        let ok = Lost::default();
        let s = session(fixture("6.12-kprobe/premature"), ExitStatus::Code(0), ok);
        let f = findings(&s, &ALL);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("premature: 1 ") && f[0].contains("seq 9"),
            "{f:?}"
        );
        assert!(findings(&s, &[FailOn::Lost, FailOn::Kill]).is_empty());

        let s = session(fixture("6.12-kprobe/mounted"), ExitStatus::Code(0), ok);
        let f = findings(&s, &ALL);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("kill: 1 notification(s) delivered"),
            "{f:?}"
        );

        // no_holder is neither premature nor a kill.
        let s = session(fixture("6.1-fentry/no_holder"), ExitStatus::Code(0), ok);
        assert!(findings(&s, &ALL).is_empty());

        let lost = Lost {
            kernel: 0,
            seq_gaps: 2,
        };
        let s = session(vec![], ExitStatus::Signal(libc::SIGBUS), lost);
        let f = findings(&s, &[FailOn::Lost, FailOn::Kill, FailOn::Lost]);
        assert_eq!(f.len(), 2, "repeats count once: {f:?}");
        assert!(f[0].contains("2 sequence gap(s)"));
        assert!(f[1].contains("SIGBUS"));
    }

    #[test]
    fn exit_codes() {
        let ok = Lost::default();
        let r = |exit, findings: Vec<String>| Recorded {
            session: session(vec![], exit, ok),
            findings,
        };
        assert_eq!(r(ExitStatus::Code(7), vec![]).exit_code(), 7);
        assert_eq!(r(ExitStatus::Signal(9), vec![]).exit_code(), 137);
        assert_eq!(r(ExitStatus::Code(0), vec!["x".into()]).exit_code(), 3);
        assert_eq!(r(ExitStatus::Code(1), vec!["x".into()]).exit_code(), 3);
    }

    #[test]
    fn output_path_checked_before_running() {
        assert!(check_output(Path::new("/nonexistent-dir/s.json")).is_err());
        assert!(check_output(Path::new("/tmp")).is_err());
        assert!(check_output(Path::new("s.json")).is_ok());
    }
}
