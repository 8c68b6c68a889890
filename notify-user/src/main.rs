//! The `notify` command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, parser::ValueSource};
use notify::{
    agent::{Agent, AgentOptions},
    agent_config::{self, Layer, Loaded, MetricsAddr},
    doctor,
    enforce::{self, Allowlist, Policy},
    output::{Format, Sink},
    probes::AttachMode,
    replay,
    trace::{self, TraceOptions},
};

/// Where the agent keeps notifications awaiting replay.
const DEFAULT_JOURNAL: &str = "/var/lib/notify/journal";

/// What to do with the processes that map a damaged range.
#[derive(clap::Args, Debug, Clone)]
struct EnforceArgs {
    /// report: log the processes only; sigbus: send SIGBUS (what the kernel would have sent);
    /// sigkill: send SIGKILL.
    #[arg(long, value_enum, default_value = "report")]
    policy: PolicyArg,
    /// Decide and log, but send no signal.
    #[arg(long)]
    dry_run: bool,
    /// Never signal this pid (repeatable).
    #[arg(long = "allow-pid", value_name = "PID")]
    allow_pids: Vec<i32>,
    /// Never signal processes with this comm (repeatable).
    #[arg(long = "allow-comm", value_name = "COMM")]
    allow_comms: Vec<String>,
    /// Never signal processes in cgroups under this path, e.g. /system.slice/db.service
    /// (repeatable).
    #[arg(long = "allow-cgroup", value_name = "PATH")]
    allow_cgroups: Vec<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum PolicyArg {
    Report,
    Sigbus,
    Sigkill,
}

impl EnforceArgs {
    fn config(&self) -> enforce::Config {
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
        /// Also write a session file for `notify report` when the trace ends (SIGINT/SIGTERM):
        /// all events, derived ones included, kept in memory until then.
        #[arg(long, value_name = "FILE")]
        session: Option<PathBuf>,
    },
    /// Trace, journal every notification the kernel dropped (premature, no holder), and replay
    /// it once its filesystem is ready: resolve owners with GETFSMAP, find the processes that
    /// map them, act by policy.
    ///
    /// Meant to run for good on every host (packaging/notify-agent.service), writing JSON lines
    /// (docs/EVENTS.md) to standard output or to a rotating file, and serving Prometheus
    /// metrics and a health check (docs/AGENT.md).
    #[command(after_long_help = AGENT_MORE)]
    Agent {
        /// Read settings from this TOML file (default: /etc/notify/agent.toml if it exists).
        /// Flags given on the command line win over the file. Keys: docs/AGENT.md.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Output format: json for pipelines (journald, Fluent Bit, Vector), table for people.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
        /// How to attach function hooks: fentry where BPF trampolines work and the function is
        /// in vmlinux, kprobe otherwise (auto); or force one.
        #[arg(long, value_enum, default_value = "auto")]
        attach: AttachMode,
        /// Append events to this file instead of standard output; it is rotated by size
        /// (--rotate-size, --rotate-keep).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Rotate the --output file before it would grow past this size (bytes, or with a
        /// K/M/G suffix); 0 never rotates. [default: 64M]
        #[arg(long, value_name = "SIZE", value_parser = agent_config::parse_size)]
        rotate_size: Option<u64>,
        /// How many rotated files to keep: FILE.1 (newest) ... FILE.N. [default: 5]
        #[arg(long, value_name = "N")]
        rotate_keep: Option<usize>,
        /// Serve /metrics (Prometheus) and /healthz at this IP:PORT (port 0: any free port, as
        /// logged), or "off". [default: 127.0.0.1:9464]
        #[arg(long, value_name = "ADDR", value_parser = agent_config::parse_metrics_addr)]
        metrics_addr: Option<MetricsAddr>,
        /// The durable journal of notifications awaiting replay.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_JOURNAL)]
        journal: PathBuf,
        /// Also print the derived holder_state and notification events (kernel events and the
        /// agent's own records are always printed).
        #[arg(long)]
        verbose: bool,
        /// Also write a session file for `notify report` when the agent stops: every event of
        /// the run, kept in memory until then (for tests and bounded runs, not a fleet agent).
        #[arg(long, value_name = "FILE")]
        session: Option<PathBuf>,
        #[command(flatten)]
        enforce: EnforceArgs,
    },
    /// Show who owns a damaged range and which processes map it, without acting.
    Resolve {
        /// A mounted XFS: --offset is a byte offset on its data device.
        #[arg(long, conflicts_with = "device", required_unless_present = "device")]
        mount: Option<PathBuf>,
        /// A pmem disk (/dev/pmemN): --offset is a byte offset on the dax device, as in a
        /// notification; the filesystem mounted on it (or on its partition) is found.
        #[arg(long)]
        device: Option<PathBuf>,
        /// Byte offset.
        #[arg(long, value_parser = parse_number)]
        offset: u64,
        /// Length in bytes.
        #[arg(long, value_parser = parse_number, default_value = "4096")]
        len: u64,
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
    },
    /// Inspect or act on the journal of notifications awaiting replay.
    Journal {
        /// The journal file (the agent's --journal).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_JOURNAL)]
        journal: PathBuf,
        #[command(subcommand)]
        action: JournalCmd,
    },
    /// Say, for every probe, which attach methods this kernel supports, by trying each.
    Doctor {
        /// Output format.
        #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
        format: Format,
    },
    /// Trace while one command runs (a mount test), then write a session file for `notify
    /// report` (docs/SESSIONS.md).
    ///
    /// Exit status: the command's (128 + signal if a signal ended it, 127 if it could not be
    /// started); 3 if a --fail-on finding holds; 1 if notify itself failed (no session written).
    Record {
        /// The session file to write.
        #[arg(short = 'o', long = "output", value_name = "SESSION")]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        attach: AttachMode,
        /// Exit 3 (after writing the session) if this is seen (repeatable): premature
        /// notifications, lost events, kills (delivered notifications, or the command ended by
        /// SIGBUS).
        #[arg(long = "fail-on", value_enum, value_name = "FINDING")]
        fail_on: Vec<notify::record::FailOn>,
        /// How long to keep reading late events after the command exits, in milliseconds.
        #[arg(long = "grace-ms", default_value = "200")]
        grace_ms: u64,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Print a recorded session as a timeline per device; optionally draw it (SVG, PNG).
    Report {
        /// A session file written by `notify record`.
        session: PathBuf,
        /// Also write an SVG picture: one swimlane per device, states as bands, notifications as
        /// markers coloured by verdict.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Also write a PNG of that picture (needs rsvg-convert, Debian package librsvg2-bin).
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
    /// Print a shell completion script: `notify completions bash > /etc/bash_completion.d/notify`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const AGENT_MORE: &str = "\
CONFIGURATION:
    A flat TOML file (--config, default /etc/notify/agent.toml when it exists). Every key is a
    long flag's name with '_' (lists take the plural: --allow-pid -> allow_pids). Precedence:
    defaults < file < command line. The file is validated at start; an error names the file,
    line, key and fix, and the agent does not start.

SIGNALS:
    SIGHUP   re-read the file: policy, dry_run, allow_* and rotate_* apply at once; the log says
             which changed keys need a restart (format, attach, journal, verbose, output,
             metrics_addr) and which are pinned by a flag. An invalid file is reported and the
             running settings stay. The output file is also re-opened by name.
    SIGTERM, SIGINT
             drain the ring buffer, write and flush what is left, close the journal and the
             event log, detach every probe, exit 0.

ENDPOINTS (--metrics-addr, default 127.0.0.1:9464):
    /metrics  Prometheus/OpenMetrics text; metric list in docs/AGENT.md
    /healthz  200 and a JSON body when every required probe is attached, else 503 naming them

FILES:
    /etc/notify/agent.toml     configuration
    /var/lib/notify/journal    notifications awaiting replay (kept across restarts)

EXIT STATUS:
    0 after SIGTERM/SIGINT; 1 on a configuration, journal, BPF or bind error (on stderr).
";

#[derive(Subcommand, Debug)]
enum JournalCmd {
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
    /// Remove every record (pending ones are lost: they will not be replayed).
    Clear {
        /// Required: clearing drops pending notifications.
        #[arg(long)]
        yes: bool,
    },
}

/// Accepts decimal, 0x-hex, and k/m/g suffixes.
fn parse_number(s: &str) -> Result<u64, String> {
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // Which agent flags were given on the command line (they win over the config file).
    let given: Vec<String> = matches
        .subcommand_matches("agent")
        .map(|m| {
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.to_string())
                .collect()
        })
        .unwrap_or_default();
    match run(cli, &given) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("notify: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, given: &[String]) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Trace {
            format,
            attach,
            output,
            raw,
            session,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(trace::run(TraceOptions {
                format,
                attach,
                output,
                derived: !raw,
                agent: None,
                fleet: None,
                session,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agent {
            config,
            format,
            attach,
            output,
            rotate_size,
            rotate_keep,
            metrics_addr,
            journal,
            verbose,
            session,
            enforce,
        } => {
            let on = |id: &str| given.iter().any(|g| g == id);
            let cwd = std::env::current_dir()?;
            let flags = Layer {
                format: on("format").then_some(format),
                attach: on("attach").then_some(attach),
                journal: on("journal").then(|| cwd.join(&journal)),
                verbose: on("verbose").then_some(verbose),
                output: output.map(|p| Some(cwd.join(p))),
                rotate_size,
                rotate_keep,
                metrics_addr,
                policy: on("policy").then(|| enforce.config().policy),
                dry_run: on("dry_run").then_some(enforce.dry_run),
                allow_pids: on("allow_pids").then(|| enforce.allow_pids.clone()),
                allow_comms: on("allow_comms").then(|| enforce.allow_comms.clone()),
                allow_cgroups: on("allow_cgroups").then(|| enforce.allow_cgroups.clone()),
            };
            agent_config::validate_flags(&flags).map_err(anyhow::Error::msg)?;
            let loaded = Loaded::load(agent_config::config_path(config.as_deref()), flags)?;
            if let Some(f) = &loaded.file {
                eprintln!(
                    "notify: configuration {} (keys set: {}; on the command line: {})",
                    f.display(),
                    none_if_empty(loaded.file_layer.keys()),
                    none_if_empty(loaded.flags.keys())
                );
            }
            let s = loaded.settings.clone();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(trace::run(TraceOptions {
                format: s.format,
                attach: s.attach,
                output: None,
                derived: s.verbose,
                agent: Some(AgentOptions {
                    journal: s.journal,
                    enforce: s.enforce,
                }),
                fleet: Some(notify::fleet::Fleet::new(loaded)),
                session: session.map(|p| cwd.join(p)),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "notify", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolve {
            mount,
            device,
            offset,
            len,
            format,
        } => {
            let (site, dax_offset) = match (mount, device) {
                (Some(m), _) => {
                    let site = replay::site_of_mount(&m).map_err(|e| {
                        anyhow::anyhow!("{}: {e}: give the mount point of an XFS", m.display())
                    })?;
                    // --offset is on the filesystem's device: as a dax offset it is shifted
                    // by the partition start.
                    let off = offset + site.part_start;
                    (site, off)
                }
                (None, Some(dev)) => {
                    let name = dev
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let site = replay::find_site(&name, offset)?.ok_or_else(|| {
                        anyhow::anyhow!(
                            "no XFS filesystem is mounted on {} (or on a partition of it \
                             covering offset {offset:#x}): mount it, or use --mount",
                            dev.display()
                        )
                    })?;
                    (site, offset)
                }
                (None, None) => unreachable!("clap requires one"),
            };
            let cfg = enforce::Config {
                policy: Policy::Report,
                dry_run: true,
                ..enforce::Config::default()
            };
            let report = replay::replay(&cfg, &site, dax_offset, len);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Table => print!("{}", replay::render(&report)),
            }
            Ok(if report.error.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Journal { journal, action } => run_journal(journal, action),
        Command::Record {
            output,
            attach,
            fail_on,
            grace_ms,
            command,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let rec = rt.block_on(notify::record::record(notify::record::RecordOptions {
                output,
                attach,
                fail_on,
                command,
                grace: std::time::Duration::from_millis(grace_ms),
            }))?;
            Ok(ExitCode::from(rec.exit_code()))
        }
        Command::Report { session, svg, png } => {
            notify::report::run(&session, svg.as_deref(), png.as_deref())?;
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

fn none_if_empty(v: Vec<&str>) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn run_journal(path: PathBuf, action: JournalCmd) -> anyhow::Result<ExitCode> {
    if !path.exists() {
        anyhow::bail!(
            "no journal at {}: the agent creates it on first start (or pass --journal)",
            path.display()
        );
    }
    match action {
        JournalCmd::List { format } => {
            // A snapshot, not an open: the agent holds the journal's lock while it runs.
            let snap = notify::journal::snapshot(&path)?;
            for c in &snap.cuts {
                eprintln!(
                    "notify: journal {}: {} byte(s) at offset {} unreadable ({}); left for the \
                     agent to repair on its next start (a cut at the end may be an append in \
                     progress)",
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
                        let n = &r.notification;
                        println!(
                            "{:>5} {:<9} {:<11} {:<8} {:>#14x} {:>8}  {}",
                            r.id,
                            format!("{:?}", r.state).to_lowercase(),
                            serde_json::to_value(n.reason)?.as_str().unwrap_or("?"),
                            n.dax.name,
                            n.dax_offset,
                            n.len,
                            r.note.as_deref().unwrap_or("")
                        );
                    }
                }
            }
        }
        JournalCmd::Replay { enforce } => {
            let (mut agent, _) = Agent::open(AgentOptions {
                journal: path,
                enforce: enforce.config(),
            })?;
            let mut sink = Sink::stdout(Format::Json);
            let actions = agent.replay_mounted();
            for a in &actions {
                sink.write_action(a)?;
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
                anyhow::bail!("clearing drops pending notifications for good: add --yes");
            }
            let (mut j, _) = notify::journal::Journal::open(&path)?;
            let n = j.clear()?;
            eprintln!("notify: cleared {n} record(s) from {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
