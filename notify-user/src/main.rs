//! The `notify` command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use notify::{
    doctor,
    output::Format,
    probes::AttachMode,
    trace::{self, TraceOptions},
};

/// Trace and enforce what happens when persistent memory goes bad under XFS on fsdax.
///
/// When poison is found in pmem, memory_failure() reaches XFS through
/// dax_holder_notify_failure(). XFS drops notifications that arrive while it is still mounting
/// ("filesystem is not ready for notify_failure()!"); notify sees them, keeps them and replays
/// them once the filesystem is ready.
#[derive(Parser, Debug)]
#[command(name = "notify", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach every probe this kernel allows and stream events until interrupted.
    ///
    /// Events come in kernel order (a global sequence number taken in BPF), followed by the
    /// agent's conclusions: holder state changes and one `notification` per memory-failure
    /// notification with its verdict (delivered, premature, no_holder, ...).
    Trace {
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
        /// How to attach function hooks: fentry where BPF trampolines work and the function is
        /// in vmlinux, kprobe otherwise (auto); or force one.
        #[arg(long, value_enum, default_value = "auto")]
        attach: AttachMode,
        /// Append events to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only kernel events, without the agent's derived holder_state/notification events.
        #[arg(long)]
        raw: bool,
    },
    /// Say, for every probe, which attach methods this kernel supports, by trying each.
    Doctor {
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("notify: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Trace {
            format,
            attach,
            output,
            raw,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(trace::run(TraceOptions {
                format,
                attach,
                output,
                derived: !raw,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { format } => {
            let report = doctor::run()?;
            match format {
                Format::Table => print!("{}", report.render()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
