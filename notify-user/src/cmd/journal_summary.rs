//! `notify journal summary`: the journal's history counted, as rasdaemon's `ras-mc-ctl
//! --summary` counts its error database: records by reason, by disk, by outcome, the processes
//! acted on, and the files hit most often. Pure: records in, counts out.

use std::collections::BTreeMap;

use notify_model::journal::{Record, Status};
use serde::Serialize;

use crate::export::stamp::rfc3339;

/// Counts over the records a summary covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records covered (received at or after `since_wall_ns`).
    pub records: usize,
    /// Records left out as older than `--since`.
    pub older: usize,
    pub since_wall_ns: Option<u64>,
    pub by_reason: BTreeMap<String, usize>,
    pub by_disk: BTreeMap<String, usize>,
    /// pending, replayed, closed; and "told XFS" for records XFS itself was told of.
    pub by_outcome: BTreeMap<String, usize>,
    /// Processes by decision over every replay ("signalled", "reported", ...).
    pub processes: BTreeMap<String, u32>,
    /// Damaged files, most often hit first (ties by name): (path, records).
    pub worst_files: Vec<(String, usize)>,
    /// Metadata owners hit: (owner, records).
    pub metadata: Vec<(String, usize)>,
    /// Damaged bytes over the records covered.
    pub bytes: u64,
    /// Replayed records whose findings the journal does not have (replayed by a notify that
    /// did not keep them): their files are not in `worst_files`.
    pub replayed_without_findings: usize,
}

/// How many files `worst_files` names at most.
pub const WORST: usize = 10;

pub fn summarize(records: &[Record], since_wall_ns: Option<u64>) -> Summary {
    let mut s = Summary {
        since_wall_ns,
        ..Default::default()
    };
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    let mut meta: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        if since_wall_ns.is_some_and(|t| r.damage.wall_ns < t) {
            s.older += 1;
            continue;
        }
        s.records += 1;
        s.bytes = s.bytes.saturating_add(r.damage.len);
        *s.by_reason
            .entry(r.damage.reason.name().to_string())
            .or_default() += 1;
        *s.by_disk.entry(r.damage.dax.name.clone()).or_default() += 1;
        let state = match r.state {
            Status::Pending => "pending",
            Status::Replayed => "replayed",
            Status::Closed => "closed",
        };
        *s.by_outcome.entry(state.to_string()).or_default() += 1;
        if !r.told.is_empty() {
            *s.by_outcome.entry("told XFS".to_string()).or_default() += 1;
        }
        match &r.outcome {
            Some(o) => {
                // A file twice in one record (two extents) counts once for it.
                let mut seen: Vec<&str> = o.files.iter().map(String::as_str).collect();
                seen.sort_unstable();
                seen.dedup();
                for f in seen {
                    *files.entry(f).or_default() += 1;
                }
                let mut m: Vec<&str> = o.metadata.iter().map(String::as_str).collect();
                m.sort_unstable();
                m.dedup();
                for k in m {
                    *meta.entry(k).or_default() += 1;
                }
                for (act, n) in &o.processes {
                    *s.processes.entry(act.clone()).or_default() += n;
                }
            }
            None if r.state == Status::Replayed => s.replayed_without_findings += 1,
            None => {}
        }
    }
    let mut worst: Vec<(String, usize)> = files.into_iter().map(|(f, n)| (f.into(), n)).collect();
    worst.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    worst.truncate(WORST);
    s.worst_files = worst;
    s.metadata = meta.into_iter().map(|(k, n)| (k.into(), n)).collect();
    s
}

/// The summary for people.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let since = match s.since_wall_ns {
        // Whole seconds: "since 2026-12-01T15:54:50Z".
        Some(t) => {
            let full = rfc3339(i128::from(t / 1_000_000_000 * 1_000_000_000));
            format!(" since {}Z", &full[..19])
        }
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "{} record(s){since}, {} byte(s) damaged{}",
        s.records,
        s.bytes,
        if s.older > 0 {
            format!(" ({} older left out)", s.older)
        } else {
            String::new()
        }
    );
    let section = |out: &mut String, title: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "\n{title}:");
        if rows.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for (k, v) in rows {
            let _ = writeln!(out, "  {v:>6}  {k}");
        }
    };
    let counts = |m: &BTreeMap<String, usize>| -> Vec<(String, String)> {
        m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
    };
    section(&mut out, "by reason", counts(&s.by_reason));
    section(&mut out, "by disk", counts(&s.by_disk));
    section(&mut out, "by outcome", counts(&s.by_outcome));
    section(
        &mut out,
        "processes",
        s.processes
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    );
    section(
        &mut out,
        "worst files (records that hit them)",
        s.worst_files
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    );
    if !s.metadata.is_empty() {
        section(
            &mut out,
            "metadata hit (records)",
            s.metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        );
    }
    if s.replayed_without_findings > 0 {
        let _ = writeln!(
            out,
            "\n{} replayed record(s) carry no findings (replayed before notify kept them): \
             their files are not counted",
            s.replayed_without_findings
        );
    }
    out
}

/// `--since`: a duration back from `now_ns` ("90s", "30m", "24h", "7d", "2w") or a UTC date
/// or time ("2026-12-01", "2026-12-01T15:00:00Z"). Unix ns, or an error saying what is accepted.
pub fn parse_since(v: &str, now_ns: u64) -> Result<u64, String> {
    let bad = || {
        format!(
            "--since {v:?}: give a duration back from now (90s, 30m, 24h, 7d, 2w) or a UTC \
             date or time (2026-12-01, 2026-12-01T15:00:00Z)"
        )
    };
    let v = v.trim();
    if let Some(unit) = v.chars().last().filter(char::is_ascii_alphabetic)
        && v[..v.len() - 1].chars().all(|c| c.is_ascii_digit())
        && v.len() > 1
    {
        let n: u64 = v[..v.len() - 1].parse().map_err(|_| bad())?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let back = n
            .checked_mul(secs)
            .and_then(|s| s.checked_mul(1_000_000_000))
            .ok_or_else(bad)?;
        return Ok(now_ns.saturating_sub(back));
    }
    // YYYY-MM-DD[THH:MM:SS[Z]]
    let (date, time) = match v.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (v, None),
    };
    let num = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d[..] else {
        return Err(bad());
    };
    let (y, mo, da) = (
        num(y, 4).ok_or_else(bad)?,
        num(mo, 2).ok_or_else(bad)?,
        num(da, 2).ok_or_else(bad)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return Err(bad());
    }
    let (h, mi, se) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let p: Vec<&str> = t.split(':').collect();
            let [h, mi, se] = p[..] else {
                return Err(bad());
            };
            let (h, mi, se) = (
                num(h, 2).ok_or_else(bad)?,
                num(mi, 2).ok_or_else(bad)?,
                num(se, 2).ok_or_else(bad)?,
            );
            if h > 23 || mi > 59 || se > 60 {
                return Err(bad());
            }
            (h, mi, se)
        }
    };
    let secs = days_from_civil(y, mo as u32, da as u32) * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .ok_or_else(bad)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_140_490 * 1_000_000_000; // 2026-12-01T15:54:50Z

    #[test]
    fn since_takes_durations_and_utc_dates() {
        assert_eq!(parse_since("90s", NOW), Ok(NOW - 90_000_000_000));
        assert_eq!(parse_since("24h", NOW), Ok(NOW - 86_400_000_000_000));
        assert_eq!(parse_since("2w", NOW), Ok(NOW - 14 * 86_400_000_000_000));
        assert_eq!(
            parse_since("2026-12-01", NOW),
            Ok(1_796_083_200 * 1_000_000_000)
        );
        assert_eq!(
            parse_since("2026-12-01T15:54:50Z", NOW),
            Ok(NOW),
            "the instant itself"
        );
        assert_eq!(parse_since("1970-01-01", NOW), Ok(0));
        for bad in [
            "",
            "h",
            "5y",
            "-5h",
            "yesterday",
            "2026-13-01",
            "2026-12-1",
            "2026-12-01T25:00:00Z",
            "99999999999999999999d",
        ] {
            let e = parse_since(bad, NOW).unwrap_err();
            assert!(e.contains("duration back from now"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn days_from_civil_inverts_rfc3339() {
        for day in [-719_468i64, -1, 0, 1, 10_957, 11_016, 20_788, 47_540] {
            let s = rfc3339(i128::from(day) * 86_400 * 1_000_000_000);
            let (y, m, d) = (
                s[0..4].parse().unwrap(),
                s[5..7].parse().unwrap(),
                s[8..10].parse().unwrap(),
            );
            assert_eq!(days_from_civil(y, m, d), day, "{s}");
        }
    }
}
