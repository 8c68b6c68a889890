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

/// Gives back the heap that loading (BTF, the BPF object) used: freed by now, but kept by
/// malloc. The agent runs for weeks.
pub fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the heap.
    unsafe { libc::malloc_trim(0) };
}

/// "a, b" or "none".
pub fn none_if_empty(v: Vec<&str>) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
