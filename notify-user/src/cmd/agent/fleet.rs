//! What `notify agent` adds for a fleet: the configuration file and its SIGHUP reload, the
//! rotating event log, and the Prometheus endpoint. The agent command's listener calls in here
//! (probes opened, each item, after each batch, SIGHUP).

use std::{io::Write, net::SocketAddr, os::fd::AsFd, sync::Arc};

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray};
use notify_common::MAP_LOST;

use notify_model::Item;

use crate::{
    agent::Agent,
    cmd::agent::config::{Loaded, MetricsAddr},
    enforce,
    export::{
        metrics::{self, Metrics},
        rotate::{RotateControl, RotatingWriter},
    },
    probe::Probes,
    stream::Totals,
};

pub struct Fleet {
    pub loaded: Loaded,
    pub metrics: Arc<Metrics>,
    rotate: Option<Arc<RotateControl>>,
    /// Where the endpoint listens, once bound.
    pub metrics_bound: Option<SocketAddr>,
    listener: Option<tokio::net::TcpListener>,
}

impl Fleet {
    pub fn new(loaded: Loaded) -> Fleet {
        Fleet {
            loaded,
            metrics: Arc::new(Metrics::new()),
            rotate: None,
            metrics_bound: None,
            listener: None,
        }
    }

    /// The event log as a rotating file, when `output` is set (None: standard output).
    pub fn open_output(&mut self) -> anyhow::Result<Option<Box<dyn Write + Send>>> {
        let s = &self.loaded.settings;
        let Some(path) = &s.output else {
            return Ok(None);
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        }
        let ctl = RotateControl::new(s.rotate_size, s.rotate_keep);
        let w = RotatingWriter::open(path, ctl.clone())
            .with_context(|| format!("cannot open output file {}", path.display()))?;
        self.rotate = Some(ctl);
        Ok(Some(Box::new(w)))
    }

    /// Binds the metrics endpoint's port, before any probe loads (a taken port is bad input,
    /// found at once). Runs inside the runtime.
    pub async fn listen(&mut self) -> anyhow::Result<()> {
        let MetricsAddr::At(addr) = self.loaded.settings.metrics_addr else {
            return Ok(());
        };
        let listener = metrics::bind(addr).await.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "the port is taken: is another agent running? choose another port, or \"off\""
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "no interface of this host has that address: use 127.0.0.1:PORT, \
                     0.0.0.0:PORT, or \"off\""
                }
                _ => "choose another address, or \"off\"",
            };
            anyhow::anyhow!(
                "cannot listen on {addr} for metrics (metrics_addr / --metrics-addr): {e}: {hint}"
            )
        })?;
        self.metrics_bound = Some(listener.local_addr()?);
        self.listener = Some(listener);
        Ok(())
    }

    /// The probes are attached: record what attached, keep a handle on the kernel's LOST
    /// counters for scrapes, and serve the endpoint bound by [`Fleet::listen`].
    pub async fn start(&mut self, probes: &Probes) -> anyhow::Result<()> {
        self.metrics
            .set_session(&probes.outcomes, &probes.kernel.release);
        match lost_map(probes) {
            Ok(m) => self.metrics.set_lost_map(m),
            Err(e) => log::warn!("metrics: no handle on the LOST map ({e:#}): not exported"),
        }
        let (Some(listener), Some(bound)) = (self.listener.take(), self.metrics_bound) else {
            eprintln!("notify: metrics endpoint off");
            return Ok(());
        };
        eprintln!("notify: metrics on http://{bound}/metrics, health on http://{bound}/healthz");
        let h = self.metrics.health();
        if !h.ok() {
            log::warn!(
                "health: required probes missing: {} (/healthz answers 503)",
                h.missing_required.join(", ")
            );
        }
        tokio::spawn(metrics::serve(listener, self.metrics.clone()));
        Ok(())
    }

    pub fn on_item(&self, item: &Item) {
        self.metrics.on_item(item);
    }

    /// After each batch: running totals and the journal's pending depth.
    pub fn after_batch(&self, totals: &Totals, agent: Option<&Agent>) {
        self.metrics.on_totals(totals);
        if let Some(a) = agent {
            self.metrics.set_journal_pending(a.journal.pending().len());
        }
    }

    /// SIGHUP: re-reads the configuration file. Returns the enforcement settings to apply when
    /// the reload succeeded; on error the running settings stay and the error is logged.
    pub fn reload(&mut self) -> Option<enforce::Config> {
        let Some(file) = self.loaded.file.clone() else {
            eprintln!("notify: SIGHUP: no configuration file in use; nothing to reload");
            if let Some(r) = &self.rotate {
                r.reopen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return None;
        };
        match self.loaded.reload() {
            Ok((next, what)) => {
                eprintln!(
                    "notify: SIGHUP: reloaded {}: {}",
                    file.display(),
                    what.describe()
                );
                let s = &next.settings;
                if let Some(r) = &self.rotate {
                    r.set(s.rotate_size, s.rotate_keep);
                    // Also re-open the log by name, for an external logrotate.
                    r.reopen.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let cfg = s.enforce.clone();
                self.loaded = next;
                self.metrics.on_reload(true);
                Some(cfg)
            }
            Err(e) => {
                log::error!("SIGHUP: {e}; keeping the running configuration");
                self.metrics.on_reload(false);
                None
            }
        }
    }
}

/// A second handle on the LOST per-CPU map (the pipeline keeps its own).
fn lost_map(probes: &Probes) -> anyhow::Result<PerCpuArray<MapData, u64>> {
    let map = probes
        .ebpf
        .map(MAP_LOST)
        .context("LOST map missing from the BPF object")?;
    let Map::PerCpuArray(md) = map else {
        anyhow::bail!("LOST map is not a per-CPU array");
    };
    let fd = md.fd().as_fd().try_clone_to_owned()?;
    let md = MapData::from_fd(fd)?;
    Ok(PerCpuArray::try_from(Map::PerCpuArray(md))?)
}
