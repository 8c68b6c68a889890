//! Start-up phase timings: `NOTIFY_TIMINGS=1` prints, on stderr, how long each phase of the
//! start (kernel facts, kallsyms, BTF, object load, each attach, the replay) took, the CPU the
//! process spent in it, and when it ended since the process started. Start-up latency decides
//! whether a boot-time pmem mount is covered, so where it goes must be cheap to see on any
//! machine (`cargo xtask bench startup` reads these lines); off, a phase costs a clock read and
//! a getrusage.

use std::{
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

struct Clock {
    start: Instant,
    /// Wall time and process CPU time (user + system) at the last mark.
    last: Mutex<(Instant, Duration)>,
    on: bool,
}

/// User + system CPU time of the whole process (every thread): on a shared machine the wall
/// time of a phase includes waiting for a CPU, this does not.
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes into the valid, zeroed struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: zero-initialised and filled by the kernel.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One phase: its wall time, the CPU time the process spent in it, when it ended.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub took: Duration,
    pub cpu: Duration,
    pub at: Duration,
}

impl Clock {
    fn new(on: bool) -> Clock {
        let now = Instant::now();
        Clock {
            start: now,
            last: Mutex::new((now, cpu_time())),
            on,
        }
    }

    fn mark(&self) -> Mark {
        let now = Instant::now();
        let cpu = cpu_time();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let m = Mark {
            took: now - last.0,
            cpu: cpu.saturating_sub(last.1),
            at: now - self.start,
        };
        *last = (now, cpu);
        m
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        Clock::new(std::env::var_os("NOTIFY_TIMINGS").is_some_and(|v| v != "0" && !v.is_empty()))
    })
}

/// Starts the clock (call first thing in `main`; later calls do nothing).
pub fn start() {
    clock();
}

/// Marks the end of phase `name`: with NOTIFY_TIMINGS set, prints its length, the process's
/// CPU time in it and the time since start.
pub fn done(name: &str) -> Mark {
    let c = clock();
    let m = c.mark();
    if c.on {
        eprintln!("{}", line(name, &m));
    }
    m
}

/// "notify: timing: kallsyms 12.3 ms cpu 10.1 ms at 45.6 ms" (`cargo xtask bench startup`
/// parses these lines).
fn line(name: &str, m: &Mark) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "notify: timing: {name} {:.1} ms cpu {:.1} ms at {:.1} ms",
        ms(m.took),
        ms(m.cpu),
        ms(m.at)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_timed_from_the_previous_mark() {
        let c = Clock::new(false);
        std::thread::sleep(Duration::from_millis(20));
        let a = c.mark();
        assert!(a.took >= Duration::from_millis(20), "{a:?}");
        // Sleeping takes no CPU.
        assert!(a.cpu < Duration::from_millis(10), "{a:?}");
        // Spin until this process has used 20 ms of CPU (the machine is shared: wall time says
        // little about how much CPU a spin got).
        let (t, c0) = (Instant::now(), cpu_time());
        while cpu_time() - c0 < Duration::from_millis(20) && t.elapsed() < Duration::from_secs(10) {
            std::hint::black_box(t.elapsed());
        }
        let b = c.mark();
        assert!(b.cpu >= Duration::from_millis(20), "{b:?}");
        // One thread: its CPU time cannot exceed the wall time (clock granularity aside).
        assert!(b.took + Duration::from_millis(5) >= b.cpu, "{b:?}");
        assert!(b.at >= a.at + b.took, "{a:?} {b:?}");
        let m = Mark {
            took: Duration::from_micros(1500),
            cpu: Duration::from_micros(1200),
            at: Duration::from_millis(3),
        };
        assert_eq!(
            line("x", &m),
            "notify: timing: x 1.5 ms cpu 1.2 ms at 3.0 ms"
        );
    }
}
