//! The wall-clock time and host name every JSON line carries beside the kernel's `ktime_ns`, so
//! that lines from a fleet can be joined with other logs (Tetragon's export does the same).
//!
//! Kernel events are stamped with the time they happened, not the time they were written: their
//! `ktime_ns` (CLOCK_MONOTONIC, `bpf_ktime_get_ns`) plus the current offset between
//! CLOCK_REALTIME and CLOCK_MONOTONIC. The offset is read again for every line, so a clock step
//! (NTP, an operator's `date -s`) moves the stamps of later lines with it. Agent records are
//! stamped when they are written.

use notify_model::civil::civil_from_days;

/// What is stamped on every JSON line.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// The host name, JSON-quoted once (it never changes while notify runs).
    host_json: String,
}

impl Stamp {
    pub fn new() -> Self {
        Stamp::with_host(&host_name())
    }

    pub fn with_host(host: &str) -> Self {
        Stamp {
            host_json: serde_json::to_string(host).unwrap_or_else(|_| "\"\"".into()),
        }
    }

    /// The `"time":…,"host":…` members (no trailing comma) that open a JSON object, for an
    /// event of this ktime (None: now), appended to `out`: what every JSON line pays, so no
    /// formatting machinery and no allocation (`format!` of the time was 40% of a line's cost, measured
    /// with callgrind on the lab's mount events).
    pub fn write_fields(&self, out: &mut Vec<u8>, ktime_ns: Option<u64>) {
        let wall = match ktime_ns {
            Some(k) => wall_of_ktime(k),
            None => clock_ns(libc::CLOCK_REALTIME),
        };
        out.extend_from_slice(b"\"time\":\"");
        match rfc3339_bytes(wall) {
            Some(t) => out.extend_from_slice(&t),
            None => out.extend_from_slice(rfc3339(wall).as_bytes()),
        }
        out.extend_from_slice(b"\",\"host\":");
        out.extend_from_slice(self.host_json.as_bytes());
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Stamp::new()
    }
}

/// Nanoseconds of a clock since its epoch (0 if the clock cannot be read, which Linux never
/// does for these two).
fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid one given.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// The wall-clock time of a CLOCK_MONOTONIC instant, in ns since the Unix epoch.
pub fn wall_of_ktime(ktime_ns: u64) -> i128 {
    let real = clock_ns(libc::CLOCK_REALTIME);
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    real - mono + i128::from(ktime_ns)
}

/// The host name (uname's nodename), "" if it cannot be read.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// RFC 3339 in UTC with nanoseconds: "2026-12-01T15:54:50.123456789Z". Years 0 to 9999 are
/// [`rfc3339_bytes`]; others are written with more digits or a sign.
pub fn rfc3339(ns_since_epoch: i128) -> String {
    if let Some(b) = rfc3339_bytes(ns_since_epoch) {
        return b.iter().map(|&c| char::from(c)).collect();
    }
    let (y, m, d, sod, nanos) = utc_fields(ns_since_epoch);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// [`rfc3339`] as its 30 bytes, for years 0 to 9999 (None outside them: [`rfc3339`] writes
/// those, with more digits or a sign).
pub fn rfc3339_bytes(ns_since_epoch: i128) -> Option<[u8; 30]> {
    let (y, m, d, sod, nanos) = utc_fields(ns_since_epoch);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u32);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 9, nanos);
    Some(b)
}

/// An instant's UTC (year, month, day, second of the day, nanosecond). A day count beyond
/// i64 (some 10^16 years away) wraps, as [`rfc3339`] always had it.
fn utc_fields(ns_since_epoch: i128) -> (i64, u32, u32, u32, u32) {
    let secs = ns_since_epoch.div_euclid(1_000_000_000);
    let nanos = ns_since_epoch.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days as i64);
    (y, m, d, sod, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // `date -u -d @1796140490` = Tue Dec  1 15:54:50 UTC 2026
        assert_eq!(
            rfc3339(1_796_140_490_123_456_789),
            "2026-12-01T15:54:50.123456789Z"
        );
        // A leap day, and the end of a century that is not a leap year's February.
        assert_eq!(
            rfc3339(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(4_107_542_399 * 1_000_000_000 + 999_999_999),
            "2100-02-28T23:59:59.999999999Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn rfc3339_agrees_with_date_over_many_days() {
        // GNU date is the reference: one instant per ~97 days over 300 years.
        let instants: Vec<i64> = (0..1200).map(|i| -2_208_988_800 + i * 8_380_417).collect();
        let args: Vec<String> = instants.iter().map(|s| format!("@{s}")).collect();
        let mut want = Vec::new();
        for chunk in args.chunks(200) {
            let mut script = String::new();
            for a in chunk {
                script.push_str(&format!("date -u -d {a} +%Y-%m-%dT%H:%M:%S.000000000Z\n"));
            }
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .expect("run date");
            assert!(out.status.success(), "date failed");
            want.extend(
                String::from_utf8(out.stdout)
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
        for (s, w) in instants.iter().zip(&want) {
            assert_eq!(&rfc3339(i128::from(*s) * 1_000_000_000), w, "instant {s}");
        }
    }

    #[test]
    fn the_byte_writer_agrees_with_the_formatter() {
        // Every field at its widest and narrowest, a day boundary, before the epoch.
        let at = [
            0i128,
            -1,
            1_796_140_490_123_456_789,
            951_782_400 * 1_000_000_000,
            4_107_542_399 * 1_000_000_000 + 999_999_999,
            253_402_300_799 * 1_000_000_000 + 999_999_999, // 9999-12-31T23:59:59.999999999Z
            -62_167_219_200 * 1_000_000_000,               // 0000-01-01T00:00:00Z
        ];
        for ns in at {
            let b = rfc3339_bytes(ns).expect("a four-digit year");
            assert_eq!(std::str::from_utf8(&b).unwrap(), rfc3339(ns), "{ns}");
        }
        // Five-digit years and negative ones are the formatter's.
        assert_eq!(rfc3339_bytes(253_402_300_800 * 1_000_000_000), None);
        assert_eq!(rfc3339_bytes(-62_167_219_201 * 1_000_000_000), None);
        let mut v = Vec::new();
        Stamp::with_host("h").write_fields(&mut v, None);
        assert!(v.starts_with(b"\"time\":\"") && v.ends_with(b"Z\",\"host\":\"h\""));
    }

    #[test]
    fn a_kernel_instant_maps_to_now() {
        let mono = clock_ns(libc::CLOCK_MONOTONIC) as u64;
        let real = clock_ns(libc::CLOCK_REALTIME);
        let wall = wall_of_ktime(mono);
        assert!((wall - real).abs() < 1_000_000_000, "{wall} vs {real}");
    }

    #[test]
    fn fields_are_json_object_members() {
        let s = Stamp::with_host("h\"1");
        let mut members = Vec::new();
        s.write_fields(&mut members, Some(5));
        let obj = format!("{{{},\"kind\":\"x\"}}", String::from_utf8(members).unwrap());
        let v: serde_json::Value = serde_json::from_str(&obj).expect(&obj);
        assert_eq!(v["host"], "h\"1");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
