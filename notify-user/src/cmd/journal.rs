//! `notify journal list|summary|replay|clear`: inspect or act on the journal of notifications awaiting
//! replay.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use notify_model::Item;

use crate::{
    agent::{
        Agent, AgentOptions, journal,
        tell::{self, TellError},
    },
    cmd::{
        common::{DEFAULT_JOURNAL, EnforceArgs},
        exit::bad_input,
        journal_summary, preflight,
    },
    export::sink::{Format, Sink},
    kernel::{
        channels::{Channel, Channels},
        mountinfo,
    },
};

#[derive(clap::Args, Debug)]
pub struct JournalArgs {
    /// The journal file (the agent's --journal); before or after the action.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_JOURNAL, global = true)]
    pub journal: PathBuf,
    #[command(subcommand)]
    pub action: JournalCmd,
}

#[derive(Subcommand, Debug)]
pub enum JournalCmd {
    /// List every record with its state.
    List {
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
    },
    /// Replay pending records whose filesystem is mounted now.
    Replay {
        #[command(flatten)]
        enforce: EnforceArgs,
    },
    /// Count the journal's history: records by reason, disk and outcome, the processes acted
    /// on, and the files hit most often (as `ras-mc-ctl --summary` does for rasdaemon).
    Summary {
        /// Only records received since then: a duration back from now (90s, 30m, 24h, 7d, 2w)
        /// or a UTC date or time (2026-12-01, 2026-12-01T15:00:00Z).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
    },
    /// Remove every record (pending ones are lost: they will not be replayed).
    Clear {
        /// Required: clearing drops pending notifications.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(a: JournalArgs) -> anyhow::Result<ExitCode> {
    let (path, action) = (a.journal, a.action);
    // The flags first: a --since that means nothing is said before the journal is looked at.
    let since = match &action {
        JournalCmd::Summary { since: Some(v), .. } => {
            Some(journal_summary::parse_since(v, journal::now_ns()).map_err(bad_input)?)
        }
        _ => None,
    };
    if !path.exists() {
        return Err(bad_input(format!(
            "no journal at {}: the agent creates it on first start (or pass --journal)",
            path.display()
        )));
    }
    if path.is_dir() {
        return Err(bad_input(format!(
            "--journal {} is a directory: give the journal file, e.g. {}/journal",
            path.display(),
            path.display()
        )));
    }
    preflight::journal_header(&path).map_err(bad_input)?;
    match action {
        JournalCmd::List { format } => {
            // A snapshot, not an open: the agent holds the journal's lock while it runs.
            let snap = journal::snapshot(&path)?;
            for c in &snap.cuts {
                log::warn!(
                    "journal {}: {} byte(s) at offset {} unreadable ({}); left for the agent to \
                     repair on its next start (a cut at the end may be an append in progress)",
                    path.display(),
                    c.len,
                    c.offset,
                    c.reason
                );
            }
            match format {
                Format::Json => {
                    for r in &snap.records {
                        println!("{}", serde_json::to_string(r)?);
                    }
                }
                Format::Table => {
                    println!(
                        "{:>5} {:<9} {:<11} {:<8} {:>14} {:>8}  NOTE",
                        "ID", "STATE", "REASON", "DISK", "DAX_OFFSET", "LEN"
                    );
                    for r in &snap.records {
                        let n = &r.damage;
                        println!(
                            "{:>5} {:<9} {:<11} {:<8} {:>#14x} {:>8}  {}",
                            r.id,
                            format!("{:?}", r.state).to_lowercase(),
                            n.reason.name(),
                            n.dax.name,
                            n.dax_offset,
                            n.len,
                            r.note.as_deref().unwrap_or("")
                        );
                    }
                }
            }
        }
        JournalCmd::Summary { format, .. } => {
            let snap = journal::snapshot(&path)?;
            if !snap.cuts.is_empty() {
                log::warn!(
                    "journal {}: {} unreadable region(s) left out (the agent repairs them on \
                     its next start)",
                    path.display(),
                    snap.cuts.len()
                );
            }
            let s = journal_summary::summarize(&snap.records, since);
            match format {
                Format::Json => println!("{}", serde_json::to_string(&s)?),
                Format::Table => print!("{}", journal_summary::render(&s)),
            }
        }
        JournalCmd::Replay { enforce } => {
            let (mut agent, _) = Agent::open(AgentOptions {
                journal: path,
                enforce: enforce.config(),
                channels: Channels::without_symbols(verify_media()),
                rescan: None,
                redrive: false,
                metadata_shutdown: false,
            })?;
            let mut sink = Sink::stdout(Format::Json);
            let actions = agent.replay_mounted();
            for a in actions.iter().cloned() {
                sink.write(&Item::Record(a))?;
            }
            sink.flush()?;
            eprintln!(
                "notify: {} action(s); {} record(s) still pending (filesystem not mounted)",
                actions.len(),
                agent.journal.pending().len()
            );
        }
        JournalCmd::Clear { yes } => {
            if !yes {
                return Err(bad_input(
                    "clearing drops pending notifications for good: add --yes",
                ));
            }
            let (mut j, _) = journal::Journal::open(&path)?;
            let n = j.clear()?;
            eprintln!("notify: cleared {n} record(s) from {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether this kernel's XFS takes verify-media, asked of the first XFS mounted (one XFS module
/// serves them all). A replay acts only on mounted filesystems: with none, nothing is told.
fn verify_media() -> Channel {
    let mounts = mountinfo::read().unwrap_or_default();
    let Some(m) = mounts.iter().find(|m| m.fstype == "xfs") else {
        return Channel::of(None, "no XFS mounted: nothing to tell");
    };
    match tell::answers(&m.mount_point) {
        Ok(()) => Channel::of(
            Some(true),
            format!(
                "XFS media verification: XFS_IOC_VERIFY_MEDIA answered on {}",
                m.mount_point.display()
            ),
        ),
        Err(TellError::NotOnThisKernel) => Channel::of(
            Some(false),
            "not on this kernel: XFS has no XFS_IOC_VERIFY_MEDIA (ENOTTY; XFS 7.0 or later has it)",
        ),
        Err(e) => Channel::of(None, format!("{e} (asked on {})", m.mount_point.display())),
    }
}
