//! `notify trace`: attach, stream events in kernel order with the stream's conclusions, and on
//! SIGINT/SIGTERM drain what is left, report losses and exit cleanly.

use std::{path::PathBuf, process::ExitCode};

use notify_common::RING_BYTES;

use crate::{
    cmd::{
        common::{
            Signals, end_of_startup, exec_without_tcache, parse_ring_size, runtime, trim_heap,
            until_signal,
        },
        exit::bad_input,
        preflight::{self, file_not_format},
    },
    export::sink::{Format, Sink},
    probe::{AttachMode, Probes},
    session::log::SessionLog,
    stream::{Listener, Stream, Totals},
};

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// Output format.
    #[arg(short = 'o', long = "format", value_enum, default_value = "table")]
    pub format: Format,
    /// How to attach function hooks: fentry where BPF trampolines work and the function is
    /// in vmlinux, kprobe otherwise (auto); or force one.
    #[arg(long, value_enum, default_value = "auto")]
    pub attach: AttachMode,
    /// Size of the ring buffer the probes write into: a power of two from 64K to 1G (K/M/G
    /// suffixes). Each record takes ~112 bytes; a poisoned page makes ~6. While records are
    /// read the ring costs twice its size in RSS (its data pages are mapped twice); idle, none.
    /// [default: 1M]
    #[arg(long, value_name = "SIZE", value_parser = parse_ring_size)]
    pub ring_size: Option<u32>,
    /// Append events to this file instead of standard output (-o is the format).
    #[arg(long, value_name = "FILE", value_parser = file_not_format)]
    pub output: Option<PathBuf>,
    /// Only kernel events, without the agent's derived holder_state/notification events.
    #[arg(long)]
    pub raw: bool,
    /// Also write a session file for `notify report` when the trace ends (SIGINT/SIGTERM):
    /// all events, derived ones included, kept in memory until then.
    #[arg(long, value_name = "FILE", value_parser = file_not_format)]
    pub session: Option<PathBuf>,
    /// Hold the health monitor of every XFS watched (Linux 7.0+) where no other client holds
    /// it, and stream its records. Off by default: a filesystem has one monitor, and
    /// xfs_healer takes it where it runs.
    #[arg(long)]
    pub healthmon: bool,
}

pub fn run(a: TraceArgs) -> anyhow::Result<ExitCode> {
    // Before the runtime: no other thread may exist yet.
    exec_without_tcache();
    runtime()?.block_on(trace(a))?;
    Ok(ExitCode::SUCCESS)
}

async fn trace(a: TraceArgs) -> anyhow::Result<Totals> {
    // Everything the user named is checked (and the output opened) before any probe loads.
    if let Some(p) = &a.session {
        preflight::output_file("--session", p).map_err(bad_input)?;
    }
    let mut sink = match &a.output {
        Some(p) => {
            preflight::output_file("--output", p).map_err(bad_input)?;
            Sink::file(a.format, p)
                .map_err(|e| bad_input(format!("--output {}: cannot open it: {e}", p.display())))?
        }
        None => Sink::stdout(a.format),
    };
    let mut signals = Signals::catch(false)?;
    let mut probes = Probes::open(a.attach, a.ring_size.unwrap_or(RING_BYTES))?;
    probes.report_to_stderr();
    let mut session = a.session.map(|p| SessionLog::new(p, &probes));
    sink.derived = !a.raw;
    trim_heap();
    let mut listeners: Vec<&mut dyn Listener> = Vec::new();
    if let Some(s) = session.as_mut() {
        listeners.push(s);
    }
    listeners.push(&mut sink);
    let mut stream = Stream::open(&mut probes, listeners)?;
    if a.healthmon {
        stream.hold_health_monitors();
    }
    stream.start()?;
    // One line that means "everything is watching": the probes and XFS's own channels (the
    // "attached" line comes before the fserror marks and health monitors are set up).
    eprintln!("notify: ready");
    end_of_startup();
    until_signal(&mut stream, &mut signals).await?;
    let totals = stream.finish()?;
    print_totals(&totals);
    Ok(totals)
}

/// The closing line of a run on stderr.
pub fn print_totals(t: &Totals) {
    eprintln!(
        "notify: {} events, {} lost in the kernel (ring buffer full), {} sequence gaps, {} undecodable",
        t.events, t.lost_kernel, t.seq_gaps, t.undecodable
    );
}
