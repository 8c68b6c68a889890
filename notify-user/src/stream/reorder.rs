//! Puts events back into kernel sequence order.
//!
//! The BPF side numbers events with a global atomic counter *before* reserving ring-buffer
//! space, so two CPUs can commit their records in the opposite order of their numbers. The
//! readiness logic must see events in true order (a notification numbered before the ready edge
//! is premature even if its record lands after it), so records wait here until every smaller
//! number has arrived. A number that never arrives is an event the ring buffer had no room for:
//! after `window` it is counted as lost and skipped, so one drop cannot stall the stream.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// Anything with a sequence number.
pub trait Sequenced {
    fn seq(&self) -> u64;
}

impl Sequenced for notify_model::TraceEvent {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// The reorder buffer.
#[derive(Debug)]
pub struct Reorder<T> {
    /// The next sequence number to release.
    next: u64,
    /// Released, in order, not taken yet. A record that arrives in order (nearly all of them:
    /// the reorder buffer exists for the rare commit race between CPUs) goes straight here,
    /// without a visit to `pending`.
    ready: Vec<T>,
    /// Arrived ahead of a missing predecessor: always a gap before the first.
    pending: BTreeMap<u64, (T, Instant)>,
    window: Duration,
    lost: u64,
    duplicates: u64,
}

impl<T: Sequenced> Reorder<T> {
    /// `first` is the first sequence number the kernel will hand out (1 for a fresh object).
    pub fn new(first: u64, window: Duration) -> Self {
        Reorder {
            next: first,
            ready: Vec::new(),
            pending: BTreeMap::new(),
            window,
            lost: 0,
            duplicates: 0,
        }
    }

    /// Takes one event that arrived at `now`.
    pub fn push(&mut self, ev: T, now: Instant) {
        let seq = ev.seq();
        if seq < self.next || self.pending.contains_key(&seq) {
            // Already released or skipped as lost: a late arrival after its gap timed out.
            self.duplicates += 1;
            return;
        }
        if seq == self.next {
            self.release(ev);
        } else {
            self.pending.insert(seq, (ev, now));
        }
    }

    /// `ev` is the next number: released, with every waiting event it was the gap of.
    fn release(&mut self, ev: T) {
        self.next = ev.seq() + 1;
        self.ready.push(ev);
        while let Some(entry) = self.pending.first_entry()
            && *entry.key() == self.next
        {
            let (ev, _) = entry.remove();
            self.next += 1;
            self.ready.push(ev);
        }
    }

    /// Releases, in order, every event whose predecessors have all arrived, and skips gaps
    /// older than the window (counting them as lost).
    pub fn pop_ready(&mut self, now: Instant) -> Vec<T> {
        // Every waiting event has a gap before it: wait for the gap until the oldest waiting
        // event is older than the window.
        while let Some(entry) = self.pending.first_entry()
            && now.saturating_duration_since(entry.get().1) >= self.window
        {
            self.lost += *entry.key() - self.next;
            let (ev, _) = entry.remove();
            self.release(ev);
        }
        std::mem::take(&mut self.ready)
    }

    /// Releases everything still waiting (at shutdown), counting the gaps as lost.
    pub fn flush(&mut self) -> Vec<T> {
        let mut out = std::mem::take(&mut self.ready);
        while let Some((seq, (ev, _))) = self.pending.pop_first() {
            self.lost += seq - self.next;
            self.next = seq + 1;
            out.push(ev);
        }
        out
    }

    /// Sequence numbers that never arrived.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Records that arrived after their number was already released or skipped.
    pub fn late(&self) -> u64 {
        self.duplicates
    }

    /// Events waiting for a predecessor.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// The time until the oldest waiting event's gap times out, if any is waiting: how long the
    /// caller may sleep without polling.
    pub fn deadline(&self, now: Instant) -> Option<Duration> {
        self.pending
            .first_key_value()
            .map(|(_, (_, arrived))| (*arrived + self.window).saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sequenced for u64 {
        fn seq(&self) -> u64 {
            *self
        }
    }

    const W: Duration = Duration::from_millis(50);

    #[test]
    fn in_order_events_pass_straight_through() {
        let t = Instant::now();
        let mut r = Reorder::new(1, W);
        r.push(1u64, t);
        r.push(2, t);
        assert_eq!(r.pop_ready(t), [1, 2]);
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn swapped_events_from_two_cpus_come_out_in_sequence_order() {
        let t = Instant::now();
        let mut r = Reorder::new(1, W);
        r.push(2u64, t);
        assert!(r.pop_ready(t).is_empty(), "2 must wait for 1");
        assert_eq!(r.waiting(), 1);
        r.push(1, t);
        r.push(3, t);
        assert_eq!(r.pop_ready(t), [1, 2, 3]);
    }

    #[test]
    fn a_gap_is_skipped_and_counted_after_the_window() {
        let t = Instant::now();
        let mut r = Reorder::new(1, W);
        r.push(1u64, t);
        r.push(4, t);
        assert_eq!(r.pop_ready(t), [1]);
        assert_eq!(r.deadline(t), Some(W));
        assert_eq!(r.pop_ready(t + W), [4]);
        assert_eq!(r.lost(), 2);
        // A straggler for a skipped number is counted, not replayed out of order.
        r.push(2, t + W);
        assert!(r.pop_ready(t + W).is_empty());
        assert_eq!(r.late(), 1);
    }

    #[test]
    fn a_late_predecessor_releases_the_run_waiting_behind_it() {
        let t = Instant::now();
        let mut r = Reorder::new(1, W);
        r.push(3u64, t);
        r.push(2, t);
        assert_eq!(r.waiting(), 2);
        r.push(1, t);
        assert_eq!(r.waiting(), 0);
        r.push(4, t);
        assert_eq!(r.pop_ready(t), [1, 2, 3, 4]);
        assert_eq!((r.lost(), r.late()), (0, 0));
    }

    #[test]
    fn every_timed_out_gap_is_skipped_in_one_pop() {
        let t = Instant::now();
        let mut r = Reorder::new(1, W);
        r.push(1u64, t);
        r.push(3, t);
        r.push(5, t + W / 2);
        r.push(6, t + W);
        assert_eq!(r.pop_ready(t + W), [1, 3], "5 has waited half the window");
        assert_eq!(r.deadline(t + W), Some(W / 2));
        assert_eq!(r.pop_ready(t + W + W / 2), [5, 6]);
        assert_eq!(r.lost(), 2);
    }

    #[test]
    fn flush_releases_everything_and_counts_gaps() {
        let t = Instant::now();
        let mut r = Reorder::new(1, W);
        r.push(3u64, t);
        r.push(5, t);
        assert_eq!(r.flush(), [3, 5]);
        assert_eq!(r.lost(), 3);
    }
}
