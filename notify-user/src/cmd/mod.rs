//! The command line: one file per subcommand (as bpfman does), each with its flags and its
//! run function; what several share is in `common`. `src/main.rs` only parses and dispatches.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub mod agent;
pub mod common;
pub mod completions;
pub mod doctor;
pub mod exit;
pub mod journal;
pub mod journal_summary;
pub mod logging;
pub mod manpages;
pub mod preflight;
pub mod record;
pub mod report;
pub mod resolve;
pub mod trace;

/// Trace and enforce what happens when persistent memory goes bad under XFS on fsdax.
///
/// When poison is found in pmem, memory_failure() reaches XFS through
/// dax_holder_notify_failure(). XFS drops notifications that arrive while it is still mounting
/// ("filesystem is not ready for notify_failure()!"); notify sees them, keeps them and replays
/// them once the filesystem is ready.
#[derive(Parser, Debug)]
#[command(name = "notify", version, about, long_about, after_long_help = EXIT_STATUS)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The statuses of `cmd::exit`, for `notify --help`.
const EXIT_STATUS: &str = "\
EXIT STATUS:
    0   success
    1   notify failed at run time (BPF, ring buffer, I/O)
    2   the command line is wrong (a flag, a value)
    3   record: a --fail-on finding holds (the session was written)
    4   doctor: a required hook cannot attach on this kernel (named on stderr)
    78  bad input found before anything was loaded (configuration, journal, output paths,
        metrics address); fix it and start again: systemd does not restart on it
    record otherwise exits with its command's status.

FLAGS THAT MEAN THE SAME EVERYWHERE:
    -o, --format FORMAT   the output format (table or json)
    --output FILE         the event log file (trace, agent)
    --session FILE        the session file for `notify report` (trace, agent, record)
    --journal FILE        the journal (agent, journal: before or after its action)
";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach every probe this kernel allows and stream events until interrupted.
    ///
    /// Events come in kernel order (a global sequence number taken in BPF), followed by the
    /// agent's conclusions: holder state changes and one `notification` per memory-failure
    /// notification with its verdict (delivered, premature, no_holder, ...).
    Trace(trace::TraceArgs),
    /// Trace, journal every notification the kernel dropped (premature, no holder), and replay
    /// it once its filesystem is ready: resolve owners with GETFSMAP, find the processes that
    /// map them, act by policy.
    ///
    /// Meant to run for good on every host (packaging/notify-agent.service), writing JSON lines
    /// (docs/EVENTS.md) to standard output or to a rotating file, and serving Prometheus
    /// metrics and a health check (docs/AGENT.md).
    #[command(after_long_help = agent::AGENT_MORE)]
    Agent(agent::AgentArgs),
    /// Show who owns a damaged range and which processes map it, without acting.
    Resolve(resolve::ResolveArgs),
    /// Inspect or act on the journal of notifications awaiting replay.
    Journal(journal::JournalArgs),
    /// Say, for every probe, which attach methods this kernel supports, by trying each.
    Doctor(doctor::DoctorArgs),
    /// Trace while one command runs (a mount test), then write a session file for `notify
    /// report` (docs/SESSIONS.md).
    ///
    /// Exit status: the command's (128 + signal if a signal ended it, 127 if it could not be
    /// started); 3 if a --fail-on finding holds; 78 on bad input found before the probes load
    /// (nothing run); 1 if notify itself failed (no session written).
    Record(record::RecordArgs),
    /// Print a recorded session as a timeline per device; optionally draw it (SVG, PNG).
    Report(report::ReportArgs),
    /// Print a shell completion script: `notify completions bash > /etc/bash_completion.d/notify`.
    Completions(completions::CompletionsArgs),
    /// Write the man pages (notify.1, one per subcommand) into a directory.
    #[command(hide = true)]
    Manpages(manpages::ManpagesArgs),
}

/// Runs a parsed command line. `given` names the agent flags given on the command line (they
/// win over the configuration file).
pub fn run(cli: Cli, given: &[String]) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Trace(a) => trace::run(a),
        Command::Agent(a) => agent::run(a, given),
        Command::Resolve(a) => resolve::run(a),
        Command::Journal(a) => journal::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Record(a) => record::run(a),
        Command::Report(a) => report::run(a),
        Command::Completions(a) => completions::run(a, Cli::command()),
        Command::Manpages(a) => manpages::run(a, Cli::command()),
    }
}
