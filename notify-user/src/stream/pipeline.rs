//! Raw records in, typed items out, in true kernel order: decode, reorder by the BPF sequence
//! number, and derive holder states and notification verdicts (each derived item follows the
//! kernel event that caused it).

use std::time::{Duration, Instant};

use notify_model::{Derived, EventData, Item, TraceEvent};

use crate::{
    probe::{offsets::Symbols, ring::RawSink},
    stream::{
        decode,
        holders::{Conclusion, Tracker},
        reorder::Reorder,
    },
};

/// How long a record waits for a smaller sequence number before that number is declared lost.
/// Ring-buffer commits from two CPUs are microseconds apart; this is generous.
pub const REORDER_WINDOW: Duration = Duration::from_millis(100);

/// Counters printed at the end and exported as metrics.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub events: u64,
    /// Sum of the per-CPU LOST counters: reservations that failed in the kernel.
    pub lost_kernel: u64,
    /// Sequence numbers that never arrived.
    pub seq_gaps: u64,
    pub undecodable: u64,
}

/// Decodes, reorders and derives.
pub struct Pipeline {
    pub reorder: Reorder<TraceEvent>,
    pub tracker: Tracker,
    pub totals: Totals,
    /// Names for the memory-failure tracepoint's values.
    pub symbols: Symbols,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new()
    }
}

impl Pipeline {
    pub fn new() -> Self {
        Pipeline {
            reorder: Reorder::new(1, REORDER_WINDOW),
            tracker: Tracker::new(),
            totals: Totals::default(),
            symbols: Symbols::default(),
        }
    }

    /// Items now in order: each kernel event, followed by what the tracker concluded from it.
    pub fn ready(&mut self, now: Instant, flush: bool) -> Vec<Item> {
        let evs = if flush {
            self.reorder.flush()
        } else {
            self.reorder.pop_ready(now)
        };
        self.totals.seq_gaps = self.reorder.lost();
        let mut out = Vec::with_capacity(evs.len());
        for ev in evs {
            self.totals.events += 1;
            let conclusions = self.tracker.apply(&ev);
            derive_into(ev, conclusions, &mut out);
        }
        out
    }

    /// How long until the reorder window releases something on its own.
    pub fn deadline(&self, now: Instant) -> Option<Duration> {
        self.reorder.deadline(now)
    }
}

impl RawSink for Pipeline {
    fn push_raw(&mut self, bytes: &[u8], now: Instant) {
        match decode::decode(bytes) {
            Ok(mut ev) => {
                name_values(&mut ev, &self.symbols);
                log::trace!("raw event seq {} kind {}", ev.seq, ev.data.kind_name());
                self.reorder.push(ev, now)
            }
            Err(e) => {
                self.totals.undecodable += 1;
                log::warn!("{e}");
            }
        }
    }
}

/// Page type and action result of a memory-failure tracepoint by name.
fn name_values(ev: &mut TraceEvent, symbols: &Symbols) {
    if let EventData::MfEvent {
        mf_type,
        result,
        type_name,
        result_name,
        ..
    } = &mut ev.data
    {
        *type_name = symbols.mf_type.get(&i64::from(*mf_type)).cloned();
        *result_name = symbols.mf_result.get(&i64::from(*result)).cloned();
    }
}

/// The kernel event as an item, then its conclusions as items carrying its header.
fn derive_into(ev: TraceEvent, conclusions: Vec<Conclusion>, out: &mut Vec<Item>) {
    let header = (!conclusions.is_empty()).then(|| ev.header());
    out.push(Item::Kernel(ev));
    for c in conclusions {
        let at = header.clone().unwrap_or_default();
        out.push(match c {
            Conclusion::Transition(data) => Item::HolderState(Derived { at, data }),
            Conclusion::Notification(data) => Item::Notification(Derived { at, data }),
        });
    }
}

/// The items of a recording without derived items (a raw trace), derived the way a live run
/// derives them: each kernel event followed by its conclusions; XFS's reports kept where they
/// are; agent records left out.
pub fn derive(items: impl IntoIterator<Item = Item>) -> Vec<Item> {
    let mut tracker = Tracker::new();
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Kernel(ev) => {
                let conclusions = tracker.apply(&ev);
                derive_into(ev, conclusions, &mut out);
            }
            Item::FsError(_) | Item::Health(_) => out.push(item),
            Item::HolderState(_) | Item::Notification(_) | Item::Record(_) => {}
        }
    }
    out
}
