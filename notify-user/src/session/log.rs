//! Keeping a run's kernel and derived items for a session file: the collector `notify record`
//! uses, and `trace`/`agent --session FILE`, which writes the file when the run ends.

use std::{
    path::PathBuf,
    time::{Instant, SystemTime},
};

use anyhow::Context as _;
use notify_model::{
    Item,
    session::{Lost, ProbeRecord, SessionFile, rfc3339},
};

use crate::{
    probe::{AttachMode, Probes},
    session::file::new_session,
    stream::{Listener, Totals},
};

/// Every kernel and derived item of a run, in order (agent records are not part of a session).
#[derive(Default)]
pub struct Collector {
    pub items: Vec<Item>,
}

impl Listener for Collector {
    fn on_item(&mut self, item: &Item, _emit: &mut Vec<Item>) -> anyhow::Result<()> {
        if !matches!(item, Item::Record(_)) {
            self.items.push(item.clone());
        }
        Ok(())
    }
}

/// `--session FILE`: collects the run and writes the session file when it ends. Kept in memory
/// until then, so meant for bounded runs (a test, a lab scenario), not a fleet agent that runs
/// for weeks.
pub struct SessionLog {
    path: PathBuf,
    kernel: String,
    attach: AttachMode,
    probes: Vec<ProbeRecord>,
    started_wall: SystemTime,
    start: Instant,
    collector: Collector,
}

impl SessionLog {
    pub fn new(path: PathBuf, probes: &Probes) -> SessionLog {
        SessionLog {
            path,
            kernel: probes.kernel.release.clone(),
            attach: probes.mode,
            probes: probes.outcomes.iter().map(Into::into).collect(),
            started_wall: SystemTime::now(),
            start: Instant::now(),
            collector: Collector::default(),
        }
    }
}

impl Listener for SessionLog {
    fn on_item(&mut self, item: &Item, emit: &mut Vec<Item>) -> anyhow::Result<()> {
        self.collector.on_item(item, emit)
    }

    /// Writes the session file: `command` is notify's own command line, the exit status 0 (the
    /// run ended on a signal, as asked).
    fn finish(&mut self, totals: &Totals) -> anyhow::Result<()> {
        let events = std::mem::take(&mut self.collector.items);
        let file = SessionFile {
            lost: Lost {
                kernel: totals.lost_kernel,
                seq_gaps: totals.seq_gaps,
            },
            command: std::env::args().collect(),
            started_wall: rfc3339(self.started_wall),
            duration_ns: self.start.elapsed().as_nanos() as u64,
            ..new_session(
                self.kernel.clone(),
                self.attach,
                std::mem::take(&mut self.probes),
                events,
            )
        };
        file.save(&self.path)
            .with_context(|| format!("cannot write the session to {}", self.path.display()))?;
        eprintln!(
            "notify: session {}: {} events",
            self.path.display(),
            file.events.len()
        );
        Ok(())
    }
}
