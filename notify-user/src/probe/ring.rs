//! The ring buffer the probes write into, as an async source of raw records, and the kernel's
//! count of records it had no room for.

use std::time::Instant;

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use notify_common::{MAP_EVENTS, MAP_LOST, RING_BYTES_MAX, RING_BYTES_MIN};
use tokio::io::unix::AsyncFd;

use crate::probe::open::Probes;

/// Checks a ring buffer size in bytes: a power of two from 64K to 1G (the kernel wants a
/// power-of-two multiple of the page size; below 64K a burst of a few hundred records fills it).
pub fn ring_size_ok(n: u64) -> Result<u32, String> {
    let (min, max) = (u64::from(RING_BYTES_MIN), u64::from(RING_BYTES_MAX));
    if n < min || n > max || !n.is_power_of_two() {
        return Err(format!(
            "{n} bytes is not a ring buffer size: use a power of two from 64K to 1G, e.g. 256K, \
             1M (the default), 4M; each record takes ~112 bytes"
        ));
    }
    Ok(n as u32)
}

/// Where raw records go: the stream's pipeline.
pub trait RawSink {
    fn push_raw(&mut self, bytes: &[u8], now: Instant);
}

/// The probes' ring buffer, registered with the async runtime, and its lost-event counters.
pub struct Ring {
    ring: AsyncFd<RingBuf<MapData>>,
    lost: PerCpuArray<MapData, u64>,
}

impl Ring {
    /// Takes the ring buffer and LOST maps out of the probes' object.
    pub fn open(probes: &mut Probes) -> anyhow::Result<Ring> {
        let ebpf = &mut probes.ebpf;
        let ring = RingBuf::try_from(
            ebpf.take_map(MAP_EVENTS)
                .context("ring buffer map missing from the BPF object")?,
        )?;
        let lost = PerCpuArray::try_from(
            ebpf.take_map(MAP_LOST)
                .context("lost-event map missing from the BPF object")?,
        )?;
        // SAFETY: the AsyncFd owns the ring buffer, which owns its fd: the fd stays open and the
        // same for as long as it is registered.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("registering the ring buffer with epoll: {e}"))?;
        Ok(Ring { ring, lost })
    }

    /// Waits until the kernel commits records, then hands them all to `pipe`; returns how many.
    /// Cancel-safe: nothing is read before the await completes.
    pub async fn read_into(&mut self, pipe: &mut impl RawSink) -> std::io::Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let rb = guard.get_inner_mut();
        let now = Instant::now();
        let mut n = 0;
        while let Some(item) = rb.next() {
            pipe.push_raw(&item, now);
            n += 1;
        }
        guard.clear_ready();
        Ok(n)
    }

    /// Waits until the kernel has committed records, reading none (the readiness stays for
    /// the next [`Ring::read_into`]). Cancel-safe.
    pub async fn readable(&self) -> std::io::Result<()> {
        self.ring.readable().await.map(|mut g| g.retain_ready())
    }

    /// Hands `pipe` whatever is committed now, without waiting (at shutdown).
    pub fn drain_into(&mut self, pipe: &mut impl RawSink) {
        let rb = self.ring.get_mut();
        let now = Instant::now();
        while let Some(item) = rb.next() {
            pipe.push_raw(&item, now);
        }
    }

    /// Sum of the per-CPU counters of records the ring buffer had no room for.
    pub fn lost_in_kernel(&self) -> u64 {
        lost_in_kernel(&self.lost)
    }
}

/// Sum of the per-CPU lost-event counters.
pub fn lost_in_kernel(lost: &PerCpuArray<MapData, u64>) -> u64 {
    lost.get(&0, 0).map(|vals| vals.iter().sum()).unwrap_or(0)
}
