//! `notify agent`: the enforcing agent as a fleet runs it: the configuration file, the journal
//! and replay, the rotating event log and the metrics endpoint, over the one stream.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use notify_model::Item;

use crate::{
    agent::{Agent, AgentOptions},
    cmd::{
        common::{
            DEFAULT_JOURNAL, EnforceArgs, Signals, end_of_startup, exec_without_tcache,
            none_if_empty, runtime, trim_heap, until_signal,
        },
        exit::bad_input,
        preflight::{self, file_not_format},
        trace::print_totals,
    },
    export::{
        sd_notify::Notifier,
        sink::{Format, Sink},
    },
    probe::{AttachMode, Probes, bbnotify::BadblocksNotify, phases},
    session::log::SessionLog,
    stream::{Listener, Stream, Totals},
};

pub mod config;
pub mod fleet;

use config::{Layer, Loaded, MetricsAddr};
use fleet::Fleet;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Read settings from this TOML file (default: /etc/notify/agent.toml if it exists).
    /// Flags given on the command line win over the file. Keys: docs/AGENT.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format: json for pipelines (journald, Fluent Bit, Vector), table for people.
    #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
    pub format: Format,
    /// How to attach function hooks: fentry where BPF trampolines work and the function is
    /// in vmlinux, kprobe otherwise (auto); or force one.
    #[arg(long, value_enum, default_value = "auto")]
    pub attach: AttachMode,
    /// Append events to this file instead of standard output; it is rotated by size
    /// (--rotate-size, --rotate-keep).
    #[arg(long, value_name = "FILE", value_parser = file_not_format)]
    pub output: Option<PathBuf>,
    /// Rotate the --output file before it would grow past this size (bytes, or with a
    /// K/M/G suffix); 0 never rotates. [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = config::parse_size)]
    pub rotate_size: Option<u64>,
    /// How many rotated files to keep: FILE.1 (newest) ... FILE.N. [default: 5]
    #[arg(long, value_name = "N")]
    pub rotate_keep: Option<usize>,
    /// Seconds between extra reads of the pmem bad-block lists (ranges listed there are
    /// journaled and replayed; additions are never signalled). The lists are read at start, at
    /// each mount and whenever the pmem driver notifies a change (its background scan, a
    /// cleared range); a list written by hand through sysfs is not announced, and only a timer
    /// finds it between mounts. 0: no timer. [default: 0]
    #[arg(long, value_name = "SECONDS")]
    pub badblocks_rescan: Option<u64>,
    /// Size of the ring buffer the probes write into: a power of two from 64K to 1G (K/M/G
    /// suffixes). Each record takes ~112 bytes; a poisoned page makes ~6. While records are
    /// read the ring costs twice its size in RSS (its data pages are mapped twice); idle, none.
    /// [default: 1M]
    #[arg(long, value_name = "SIZE", value_parser = crate::cmd::common::parse_ring_size)]
    pub ring_size: Option<u32>,
    /// Serve /metrics (Prometheus) and /healthz at this IP:PORT (port 0: any free port, as
    /// logged), or "off". [default: 127.0.0.1:9464]
    #[arg(long, value_name = "ADDR", value_parser = config::parse_metrics_addr)]
    pub metrics_addr: Option<MetricsAddr>,
    /// The durable journal of notifications awaiting replay.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_JOURNAL)]
    pub journal: PathBuf,
    /// Also print the derived holder_state and notification events (kernel events and the
    /// agent's own records are always printed).
    #[arg(long)]
    pub verbose: bool,
    /// Also write a session file for `notify report` when the agent stops: every event of
    /// the run, kept in memory until then (for tests and bounded runs, not a fleet agent).
    #[arg(long, value_name = "FILE", value_parser = file_not_format)]
    pub session: Option<PathBuf>,
    /// Hold the health monitor of every XFS watched (Linux 7.0+) where no other client holds
    /// it, and stream its records. Off by default: a filesystem has one monitor, and
    /// xfs_healer takes it where it runs.
    #[arg(long)]
    pub healthmon: bool,
    /// Re-drive each pending range into the ready XFS through
    /// /sys/devices/system/memory/hard_offline_page, for XFS's own kill semantics. A testing
    /// interface: every write is a new hardware error, a metadata owner shuts the filesystem
    /// down; refused unless the pages are in the namespace's data area and its bad-block list,
    /// are file data, and were not re-driven on this mount. --dry-run says what it would write.
    #[arg(long)]
    pub redrive: bool,
    /// When a replayed range hits filesystem metadata, shut the filesystem down
    /// (XFS_IOC_GOINGDOWN without log flush: what XFS does itself for on-disk corruption).
    /// Default: report it, with the repair advice. --dry-run says what it would do.
    #[arg(long)]
    pub metadata_shutdown: bool,
    #[command(flatten)]
    pub enforce: EnforceArgs,
}

pub const AGENT_MORE: &str = "\
CONFIGURATION:
    A flat TOML file (--config, default /etc/notify/agent.toml when it exists). Every key is a
    long flag's name with '_' (lists take the plural: --allow-pid -> allow_pids). Precedence:
    defaults < file < command line. The file is validated at start; an error names the file,
    line, key and fix, and the agent does not start.

SIGNALS:
    SIGHUP   re-read the file: policy, dry_run, allow_* and rotate_* apply at once; the log says
             which changed keys need a restart (format, attach, journal, verbose, output,
             ring_size, metrics_addr) and which are pinned by a flag. An invalid file is
             reported and the running settings stay. The output file is also re-opened by name.
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
    0   after SIGTERM/SIGINT
    78  bad input found before any probe is loaded: the configuration file or a flag, the
        journal path, an output path, the metrics address (systemd does not restart on it:
        RestartPreventExitStatus=78)
    1   a failure at run time: BPF, the journal, the ring buffer (on stderr)
    2   the command line does not parse
";

pub fn run(a: AgentArgs, given: &[String]) -> anyhow::Result<ExitCode> {
    // Before anything else (the configuration, the runtime): no other thread may exist yet.
    exec_without_tcache();
    let on = |id: &str| given.iter().any(|g| g == id);
    let cwd = std::env::current_dir()?;
    let enforce = &a.enforce;
    let flags = Layer {
        format: on("format").then_some(a.format),
        attach: on("attach").then_some(a.attach),
        journal: on("journal").then(|| cwd.join(&a.journal)),
        verbose: on("verbose").then_some(a.verbose),
        output: a.output.map(|p| Some(cwd.join(p))),
        rotate_size: a.rotate_size,
        rotate_keep: a.rotate_keep,
        badblocks_rescan: a.badblocks_rescan,
        ring_size: a.ring_size,
        metrics_addr: a.metrics_addr,
        policy: on("policy").then(|| enforce.config().policy),
        dry_run: on("dry_run").then_some(enforce.dry_run),
        allow_pids: on("allow_pids").then(|| enforce.allow_pids.clone()),
        allow_comms: on("allow_comms").then(|| enforce.allow_comms.clone()),
        allow_cgroups: on("allow_cgroups").then(|| enforce.allow_cgroups.clone()),
    };
    config::validate_flags(&flags).map_err(bad_input)?;
    let loaded =
        Loaded::load(config::config_path(a.config.as_deref()), flags).map_err(bad_input)?;
    if let Some(f) = &loaded.file {
        eprintln!(
            "notify: configuration {} (keys set: {}; on the command line: {})",
            f.display(),
            none_if_empty(loaded.file_layer.keys()),
            none_if_empty(loaded.flags.keys())
        );
    }
    let session = a.session.map(|p| cwd.join(p));
    // Fail fast: what needs no kernel is checked before any probe loads (the event log is
    // opened and the metrics port bound in `agent`, also before). A path is named as the user
    // gave it: the flag, or the file and its key (a flag wins over the file).
    let from = |flag: &str, key: &str, in_file: bool| match (&loaded.file, in_file) {
        (Some(f), true) if !loaded.flags.keys().contains(&key) => {
            format!("{}: {key}", f.display())
        }
        _ => flag.to_string(),
    };
    if let Some(p) = &loaded.settings.output {
        let what = from("--output", "output", loaded.file_layer.output.is_some());
        preflight::log_file(&what, p).map_err(bad_input)?;
    }
    if let Some(p) = &session {
        preflight::output_file("--session", p).map_err(bad_input)?;
    }
    let what = from("--journal", "journal", loaded.file_layer.journal.is_some());
    preflight::journal(&what, &loaded.settings.journal).map_err(bad_input)?;
    preflight::journal_header(&loaded.settings.journal).map_err(bad_input)?;
    preflight::journal_free(&what, &loaded.settings.journal).map_err(bad_input)?;
    runtime()?.block_on(agent(
        loaded,
        session,
        Opt {
            healthmon: a.healthmon,
            redrive: a.redrive,
            metadata_shutdown: a.metadata_shutdown,
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The agent's opt-in actions.
struct Opt {
    healthmon: bool,
    redrive: bool,
    metadata_shutdown: bool,
}

async fn agent(loaded: Loaded, session: Option<PathBuf>, opt: Opt) -> anyhow::Result<Totals> {
    let Opt {
        healthmon,
        redrive,
        metadata_shutdown,
    } = opt;
    let s = loaded.settings.clone();
    let mut signals = Signals::catch(true)?;
    let mut systemd = Notifier::from_env();
    let mut fleet = Fleet::new(loaded);
    // The event log is opened and the metrics port bound before any probe loads: a bad path
    // or a taken port is bad input, said at once.
    let mut sink = match fleet
        .open_output()
        .map_err(|e| bad_input(format!("{e:#}")))?
    {
        Some(w) => Sink::new(s.format, w),
        None => Sink::stdout(s.format),
    };
    fleet
        .listen()
        .await
        .map_err(|e| bad_input(format!("{e:#}")))?;
    phases::done("agent set-up (config, event log, metrics)");
    systemd.status("attaching probes");
    let mut probes = Probes::open(s.attach, s.ring_size)?;
    probes.report_to_stderr();
    let attached = format!(
        "{}/{} probes attached",
        probes.attached().count(),
        probes.outcomes.len()
    );
    systemd.status(&format!("{attached}; opening the journal"));
    let mut session = session.map(|p| SessionLog::new(p, &probes));
    fleet.start(&probes).await?;
    phases::done("report, metrics start");
    sink.derived = s.verbose;
    trim_heap();
    let (agent, _) = Agent::open(AgentOptions {
        journal: s.journal,
        enforce: s.enforce,
        channels: probes.channels.clone(),
        rescan: s.badblocks_rescan,
        redrive,
        metadata_shutdown,
    })?;
    let pending = agent.pending_count();
    phases::done("journal open");
    let mut fa = FleetAgent { agent, fleet };
    let mut listeners: Vec<&mut dyn Listener> = Vec::new();
    if let Some(s) = session.as_mut() {
        listeners.push(s);
    }
    listeners.push(&mut sink);
    listeners.push(&mut fa);
    let mut stream = Stream::open(&mut probes, listeners)?;
    // The pmem driver's notifications of changed bad-block lists: waited for, not polled.
    stream.badblocks = match BadblocksNotify::new() {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("notify: badblocks: cannot wait for notifications (epoll: {e})");
            None
        }
    };
    phases::done("stream open (rings, fanotify)");
    if healthmon {
        stream.hold_health_monitors();
    }
    systemd.status(&format!(
        "{attached}; replaying {pending} pending record(s) of the journal"
    ));
    // The start-up replay (and, on 7.x, telling XFS) happens here: only then is the agent
    // what a unit ordered after it expects.
    stream.start()?;
    phases::done("start-up replay");
    let ready = format!("{attached}; start-up replay done ({pending} pending record(s) at start)");
    eprintln!("notify: ready: {ready}");
    systemd.ready(&ready);
    end_of_startup();
    until_signal(&mut stream, &mut signals).await?;
    systemd.stopping();
    let totals = stream.finish()?;
    print_totals(&totals);
    Ok(totals)
}

/// The agent and its fleet extras as one listener: the metrics count every item (the agent's
/// records included, which come back through the stream), the journal's depth is published
/// after each batch, and SIGHUP's reloaded policy goes to the agent.
struct FleetAgent {
    agent: Agent,
    fleet: Fleet,
}

impl Listener for FleetAgent {
    fn on_start(&mut self, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        self.agent.on_start(emit)
    }

    fn before_items(&mut self, items: &[Item]) -> anyhow::Result<()> {
        self.agent.before_items(items)
    }

    fn on_item(&mut self, item: &Item, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        self.fleet.on_item(item);
        Listener::on_item(&mut self.agent, item, emit)
    }

    fn on_tick(&mut self, now: Instant, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        self.agent.on_tick(now, emit)
    }

    fn next_wakeup(&self) -> Option<Duration> {
        Listener::next_wakeup(&self.agent)
    }

    fn badblock_lists(&self) -> Vec<(String, std::path::PathBuf)> {
        self.agent.badblock_lists()
    }

    fn on_badblocks_changed(
        &mut self,
        disks: &[String],
        emit: &mut Vec<Item>,
    ) -> anyhow::Result<()> {
        self.agent.on_badblocks_changed(disks, emit)
    }

    fn on_batch(&mut self, totals: &Totals) -> anyhow::Result<()> {
        self.fleet.after_batch(totals, Some(&self.agent));
        Ok(())
    }

    fn finish(&mut self, totals: &Totals) -> anyhow::Result<()> {
        self.agent.finish(totals)
    }

    fn on_hangup(&mut self) {
        if let Some(cfg) = self.fleet.reload() {
            self.agent.set_enforce(cfg);
        }
    }
}
