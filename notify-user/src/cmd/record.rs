//! `notify record`: trace while one command runs, then write a session file.
//!
//! The probes attach first, then the command starts (stdin, stdout and stderr inherited: notify's
//! own messages go to stderr only, prefixed `notify:`), events are consumed as `notify trace`
//! does (the same stream: reorder window and readiness tracker), and when the command
//! exits the ring buffer is read for a short grace period for late events, drained, and the
//! session written. The session is written whatever the command did: failed, killed by a signal,
//! or could not be started at all.

use std::{
    os::fd::{FromRawFd as _, OwnedFd},
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use notify_model::session::{ExitStatus, Lost, ProbeRecord, SessionFile, rfc3339};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    cmd::{
        exit::{Usage, bad_input},
        preflight::{self, file_not_format},
    },
    probe::{AttachMode, Probes},
    session::{
        file::new_session,
        findings::{FailOn, findings},
        log::Collector,
    },
    stream::Stream,
};

/// How long events are still read after the command exited: late commits from other CPUs, and
/// work the kernel defers past the syscall's return (unmount's task_work, kworkers).
pub const DEFAULT_GRACE: Duration = Duration::from_millis(200);

/// notify's exit status when a `--fail-on` finding holds.
pub const FINDING_EXIT: u8 = crate::cmd::exit::FINDING;

#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    /// The session file to write (required; the flag `trace` and `agent` take for theirs too).
    #[arg(
        long,
        value_name = "FILE",
        value_parser = file_not_format,
        required_unless_present = "old_output"
    )]
    pub session: Option<PathBuf>,
    /// The old spelling of --session. Refused with the new one named: `-o` is the output
    /// format in every other command, and one flag must not mean a format here and a file
    /// there.
    #[arg(short = 'o', long = "output", value_name = "SESSION", hide = true)]
    pub old_output: Option<String>,
    #[arg(long, value_enum, default_value = "auto")]
    pub attach: AttachMode,
    /// Exit 3 (after writing the session) if this is seen (repeatable): premature
    /// notifications, lost events, kills (delivered notifications, or the command ended by
    /// SIGBUS).
    #[arg(long = "fail-on", value_enum, value_name = "FINDING")]
    pub fail_on: Vec<FailOn>,
    /// How long to keep reading late events after the command exits, in milliseconds.
    #[arg(long = "grace-ms", default_value = "200")]
    pub grace_ms: u64,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(a: RecordArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(o) = &a.old_output {
        return Err(Usage(format!(
            "record takes the session file as --session {o} (-o is the output format in the \
             other commands)"
        ))
        .into());
    }
    let output = a
        .session
        .ok_or_else(|| bad_input("give the session file: --session FILE"))?;
    let rec = crate::cmd::common::runtime()?.block_on(record(RecordOptions {
        output,
        attach: a.attach,
        fail_on: a.fail_on,
        command: a.command,
        grace: Duration::from_millis(a.grace_ms),
    }))?;
    Ok(std::process::ExitCode::from(rec.exit_code()))
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

/// Records a session around one command.
pub async fn record(opts: RecordOptions) -> anyhow::Result<Recorded> {
    preflight::output_file("--session", &opts.output).map_err(bad_input)?;
    let program = opts
        .command
        .first()
        .context("no command given: notify record --session FILE -- COMMAND...")?;
    let mut probes = Probes::open(opts.attach, notify_common::RING_BYTES)?;
    probes.report_to_stderr();
    let probe_records: Vec<ProbeRecord> = probes.outcomes.iter().map(Into::into).collect();
    let kernel = probes.kernel.release.clone();
    let mut collector = Collector::default();
    let mut stream = Stream::open(&mut probes, vec![&mut collector])?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let started_wall = SystemTime::now();
    let start = Instant::now();
    let mut error = None;
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
                if stream.ring_failed.is_some() {
                    // The ring buffer failed: only wait for the command now.
                    eprintln!("notify: waiting for the command");
                    let st = child.wait()?;
                    break ExitStatus::from_std(st);
                }
                let forward = tokio::select! {
                    _ = stream.wait(cap) => None,
                    _ = exited(&pidfd) => None,
                    _ = sigint.recv() => Some(libc::SIGINT),
                    _ = sigterm.recv() => Some(libc::SIGTERM),
                    _ = sighup.recv() => Some(libc::SIGHUP),
                };
                stream.step()?;
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
    let until = Instant::now() + opts.grace;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.ring_failed.is_some() {
            break;
        }
        stream.wait(left).await;
        stream.step()?;
    }
    if let Some(e) = &stream.ring_failed {
        error = Some(format!("reading the ring buffer failed: {e}"));
    }
    let totals = stream.finish()?;
    let lost = Lost {
        kernel: totals.lost_kernel,
        seq_gaps: totals.seq_gaps,
    };
    let duration_ns = start.elapsed().as_nanos() as u64;
    let file = SessionFile {
        lost,
        command: opts.command.clone(),
        exit_status,
        started_wall: rfc3339(started_wall),
        duration_ns,
        error,
        ..new_session(kernel, opts.attach, probe_records, collector.items)
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
        totals.undecodable,
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
    use notify_model::session::{FORMAT, VERSION};

    fn session(exit: ExitStatus) -> SessionFile {
        SessionFile {
            format: FORMAT.into(),
            version: VERSION,
            kernel: "6.1.0".into(),
            attach: "auto".into(),
            probes: vec![],
            lost: Lost::default(),
            command: vec!["x".into()],
            exit_status: exit,
            started_wall: String::new(),
            duration_ns: 0,
            error: None,
            devices: Default::default(),
            events: vec![],
        }
    }

    #[test]
    fn exit_codes() {
        let r = |exit, findings: Vec<String>| Recorded {
            session: session(exit),
            findings,
        };
        assert_eq!(r(ExitStatus::Code(7), vec![]).exit_code(), 7);
        assert_eq!(r(ExitStatus::Signal(9), vec![]).exit_code(), 137);
        assert_eq!(r(ExitStatus::Code(0), vec!["x".into()]).exit_code(), 3);
        assert_eq!(r(ExitStatus::Code(1), vec!["x".into()]).exit_code(), 3);
    }
}
