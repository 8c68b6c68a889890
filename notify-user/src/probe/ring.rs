//! The ring buffer the probes write into, as an async source of raw records, and the kernel's
//! count of records it had no room for.
//!
//! The ring's pages are mapped into the process only while there is something to read: the
//! map's fd is waited on in epoll without any mapping (the kernel's ringbuf poll compares the
//! producer and consumer positions itself), the consumer page and the data pages are mapped
//! when it is readable, and unmapped again [`LINGER`] after the last read (one timer after
//! activity, none while idle). The ring's kernel memory is the same mapped or not; what the
//! mapping costs is 2 pages of page tables and, in RSS, the data pages twice (the kernel maps
//! them twice so that a record that wraps is contiguous), all present from mmap time.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray};
use notify_common::{MAP_EVENTS, MAP_LOST, RING_BYTES_MAX, RING_BYTES_MIN};
use tokio::io::unix::AsyncFd;

use crate::{kernel::facts::page_size, probe::open::Probes};

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

/// How long the ring stays mapped after a read found records: a storm's reads come ms apart
/// and keep one mapping; a quiet ring is unmapped once, this long after its last record.
pub const LINGER: Duration = Duration::from_millis(200);

/// The kernel's record header (`BPF_RINGBUF_HDR_SZ`): a u32 length with these two flag bits,
/// and a u32 page offset the reader does not need.
const HDR: usize = 8;
const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;

/// The ring buffer map, owned; its fd is what epoll waits on.
struct RingFd(MapData);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd().as_fd().as_raw_fd()
    }
}

/// The probes' ring buffer, registered with the async runtime, and its lost-event counters.
pub struct Ring {
    fd: AsyncFd<RingFd>,
    /// Data bytes (max_entries: a power of two, a multiple of the page size).
    size: usize,
    /// Mapped while there is something to read, and for [`LINGER`] after.
    view: Option<View>,
    /// When an unused mapping goes (set after every read).
    unmap_at: Option<tokio::time::Instant>,
    lost: PerCpuArray<MapData, u64>,
}

impl Ring {
    /// Takes the ring buffer and LOST maps out of the probes' object.
    pub fn open(probes: &mut Probes) -> anyhow::Result<Ring> {
        let ebpf = &mut probes.ebpf;
        let map = ebpf
            .take_map(MAP_EVENTS)
            .context("ring buffer map missing from the BPF object")?;
        let Map::RingBuf(data) = map else {
            anyhow::bail!("the {MAP_EVENTS} map of the BPF object is not a ring buffer");
        };
        let size = data
            .info()
            .context("asking the kernel for the ring buffer's size")?
            .max_entries() as usize;
        if !size.is_power_of_two() || size < page_size() {
            anyhow::bail!("the kernel's ring buffer has {size} bytes: not a ring buffer size");
        }
        let lost = PerCpuArray::try_from(
            ebpf.take_map(MAP_LOST)
                .context("lost-event map missing from the BPF object")?,
        )?;
        // SAFETY: the AsyncFd owns the map, which owns its fd: the fd stays open and the same
        // for as long as it is registered.
        let fd =
            unsafe { AsyncFd::register_with_interest(RingFd(data), tokio::io::Interest::READABLE) }
                .map_err(|e| anyhow::anyhow!("registering the ring buffer with epoll: {e}"))?;
        Ok(Ring {
            fd,
            size,
            view: None,
            unmap_at: None,
            lost,
        })
    }

    /// Waits until the kernel has committed records, reading none (the readiness stays for
    /// the next [`Ring::read_into`]). Cancel-safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.fd.readable().await.map(|mut g| g.retain_ready())
    }

    /// Waits until the kernel commits records, then hands them all to `pipe`; returns how many.
    /// Cancel-safe: nothing is read before the await completes (an unmap at [`LINGER`] is all
    /// that happens while waiting). A failed mmap is an error, not a panic.
    pub async fn read_into(&mut self, pipe: &mut impl RawSink) -> io::Result<usize> {
        loop {
            let guard = match self.unmap_at.filter(|_| self.view.is_some()) {
                Some(at) => tokio::select! {
                    g = self.fd.readable() => Some(g?),
                    _ = tokio::time::sleep_until(at) => None,
                },
                None => Some(self.fd.readable().await?),
            };
            let Some(mut guard) = guard else {
                self.view = None;
                self.unmap_at = None;
                continue;
            };
            let view = match &self.view {
                Some(v) => v,
                None => self
                    .view
                    .insert(View::map(guard.get_ref().as_raw_fd(), self.size)?),
            };
            let n = view.drain(pipe, Instant::now());
            guard.clear_ready();
            self.unmap_at = Some(tokio::time::Instant::now() + LINGER);
            return Ok(n);
        }
    }

    /// Hands `pipe` whatever is committed now, without waiting (at shutdown). A ring that
    /// cannot be mapped is said on stderr; its records are then not read.
    pub fn drain_into(&mut self, pipe: &mut impl RawSink) {
        let view = match self.view.take() {
            Some(v) => v,
            None => match View::map(self.fd.get_ref().as_raw_fd(), self.size) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("notify: reading the ring buffer at the end: {e}");
                    return;
                }
            },
        };
        view.drain(pipe, Instant::now());
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

/// One mapping of the kernel's ring: the consumer page (read-write, offset 0) and the producer
/// page followed by the data pages twice (read-only, offset one page).
struct View {
    consumer: NonNull<libc::c_void>,
    producer: NonNull<libc::c_void>,
    page: usize,
    size: usize,
}

/// mmap of `len` bytes of `fd` at `off`, or an error that says what was mapped.
fn map(
    fd: RawFd,
    len: usize,
    prot: libc::c_int,
    off: usize,
    what: &str,
) -> io::Result<NonNull<libc::c_void>> {
    // SAFETY: a new shared mapping of the map's fd; nothing else is at the address the kernel
    // picks.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mapping the ring buffer's {what} ({} KiB): {e}", len / 1024),
        ));
    }
    NonNull::new(p)
        .ok_or_else(|| io::Error::other(format!("mmap of the ring buffer's {what} gave NULL")))
}

impl View {
    fn map(fd: RawFd, size: usize) -> io::Result<View> {
        let page = page_size();
        let consumer = map(
            fd,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            0,
            "consumer page",
        )?;
        let producer = match map(fd, page + 2 * size, libc::PROT_READ, page, "data pages") {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: the mapping made just above, not referenced anywhere.
                unsafe { libc::munmap(consumer.as_ptr(), page) };
                return Err(e);
            }
        };
        Ok(View {
            consumer,
            producer,
            page,
            size,
        })
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page is mapped for as long as self, page-aligned; the kernel
        // reads the position there and only the reader writes it.
        unsafe { self.consumer.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> &AtomicUsize {
        // SAFETY: the producer page is mapped for as long as self, page-aligned; the kernel
        // writes the position there.
        unsafe { self.producer.cast::<AtomicUsize>().as_ref() }
    }

    /// The data pages, twice over (2 × size bytes).
    fn data(&self) -> *const u8 {
        // SAFETY: the producer mapping is page + 2 × size bytes long.
        unsafe { self.producer.cast::<u8>().as_ptr().add(self.page) }
    }

    /// Every committed record, in order, to `pipe`; stops at the first record still being
    /// written (its commit wakes the poll again, as the consumer position is then its own) or
    /// when the producer has nothing newer. As libbpf's reader: the consumer position is
    /// stored after each record, and the producer's is read again until it has not moved.
    fn drain(&self, pipe: &mut impl RawSink, now: Instant) -> usize {
        let mask = self.size - 1;
        let data = self.data();
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        let mut n = 0;
        loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            let mut got = false;
            while cons < prod {
                let off = cons & mask;
                // SAFETY: off < size and the data is mapped 2 × size bytes; the header is
                // 8-byte aligned (every record is).
                let hdr = unsafe { &*data.add(off).cast::<AtomicU32>() }.load(Ordering::Acquire);
                if hdr & BUSY != 0 {
                    return n;
                }
                let len = (hdr & !(BUSY | DISCARD)) as usize;
                if len > self.size - HDR {
                    // Not a record the kernel writes: leave the ring as it is rather than read
                    // outside it.
                    eprintln!("notify: ring buffer record of {len} bytes at {cons}: not read");
                    return n;
                }
                if hdr & DISCARD == 0 {
                    // SAFETY: off + HDR + len <= size + size - HDR + HDR = 2 × size, inside
                    // the doubled data mapping; the kernel does not write a committed record
                    // until the consumer position passes it.
                    let rec = unsafe { std::slice::from_raw_parts(data.add(off + HDR), len) };
                    pipe.push_raw(rec, now);
                    n += 1;
                }
                cons += (HDR + len).next_multiple_of(8);
                self.consumer_pos().store(cons, Ordering::Release);
                got = true;
            }
            if !got {
                return n;
            }
            // The consumer store before the producer load (a commit reads the consumer
            // position after writing its header to decide whether to wake us).
            fence(Ordering::SeqCst);
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        // SAFETY: the two mappings made by View::map; no reference into them outlives self.
        unsafe {
            libc::munmap(self.consumer.as_ptr(), self.page);
            libc::munmap(self.producer.as_ptr(), self.page + 2 * self.size);
        }
    }
}
