//! The session file `notify record` (and `trace`/`agent --session`) writes and `notify report`
//! reads: one versioned JSON document (docs/SESSIONS.md).
//!
//! Loading checks the envelope first (`format`, `version`) from the document's first JSON value,
//! so that a file from a newer notify, another tool or a truncated write is refused with a
//! message naming the file and what was found, never a panic.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::{Deserialize, Serialize};

use crate::{holder::Verdict, item::Item};

/// The `format` every session file carries.
pub const FORMAT: &str = "notify-session";
/// The version this build writes.
pub const VERSION: u32 = 1;
/// The oldest version this build still reads.
pub const MIN_VERSION: u32 = 1;

/// How the recorded command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl ExitStatus {
    /// The status a shell would report: the code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }

    pub fn from_std(st: std::process::ExitStatus) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt as _;
        match (st.code(), st.signal()) {
            (Some(c), _) => ExitStatus::Code(c),
            (None, Some(s)) => ExitStatus::Signal(s),
            (None, None) => ExitStatus::Code(-1),
        }
    }
}

/// How one hook fared when the session opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub hook: String,
    pub target: String,
    /// fentry, kprobe, tracepoint; null when the hook did not attach.
    pub method: Option<String>,
    /// Why a better method was not used, or why nothing attached.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Events that never reached the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Ring-buffer reservations that failed in the kernel (the per-CPU LOST counters).
    pub kernel: u64,
    /// Sequence numbers that never arrived.
    pub seq_gaps: u64,
}

impl Lost {
    pub fn any(&self) -> bool {
        self.kernel > 0 || self.seq_gaps > 0
    }
}

/// A recorded session (format version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u32,
    /// `uname -r` of the traced kernel.
    pub kernel: String,
    /// The `--attach` mode asked for: auto, fentry or kprobe.
    pub attach: String,
    /// One record per hook.
    pub probes: Vec<ProbeRecord>,
    pub lost: Lost,
    /// The command, as given after `--`.
    pub command: Vec<String>,
    pub exit_status: ExitStatus,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_wall: String,
    /// From just before the command started to the end of the drain.
    pub duration_ns: u64,
    /// Why the command could not be run, or why recording stopped early; absent when all went
    /// well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Names of the block devices seen in events ("259:0" -> "pmem0"), read from sysfs when the
    /// session ended. Optional.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, String>,
    /// Kernel events in sequence order, each followed by the derived `holder_state` and
    /// `notification` events it caused (docs/EVENTS.md).
    pub events: Vec<Item>,
}

/// The first fields of any session file, whatever its version.
#[derive(Deserialize)]
struct Envelope {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// Why a session file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Io(PathBuf, io::Error),
    /// Not JSON, or cut short.
    Syntax(PathBuf, String),
    /// JSON, but not a notify session.
    WrongFormat(PathBuf, String),
    /// Written by a newer notify.
    TooNew(PathBuf, u64),
    /// Older than this build reads.
    TooOld(PathBuf, u64),
    /// The right envelope but a body this version does not accept.
    Body(PathBuf, u64, String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reads = if MIN_VERSION == VERSION {
            format!("version {VERSION}")
        } else {
            format!("versions {MIN_VERSION} to {VERSION}")
        };
        match self {
            LoadError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            LoadError::Syntax(p, e) => write!(
                f,
                "{}: not a complete JSON document ({e}): truncated or not a session file",
                p.display()
            ),
            LoadError::WrongFormat(p, found) => write!(
                f,
                "{}: not a notify session file (format {found}; this build reads format \
                 \"{FORMAT}\" {reads})",
                p.display()
            ),
            LoadError::TooNew(p, v) => write!(
                f,
                "{}: session format version {v} was written by a newer notify; this build reads \
                 {reads}: use a newer notify to report it",
                p.display()
            ),
            LoadError::TooOld(p, v) => write!(
                f,
                "{}: session format version {v} is older than this build reads ({reads})",
                p.display()
            ),
            LoadError::Body(p, v, e) => write!(
                f,
                "{}: invalid session (format version {v}): {e}",
                p.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

impl SessionFile {
    /// Parses a session from text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<SessionFile, LoadError> {
        let p = || path.to_path_buf();
        // The first JSON value only: an events.jsonl file is refused for its format, not for
        // its trailing lines.
        let env: Envelope = match serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Value>()
            .next()
        {
            None => return Err(LoadError::Syntax(p(), "empty file".into())),
            Some(Err(e)) => return Err(LoadError::Syntax(p(), e.to_string())),
            Some(Ok(v)) if !v.is_object() => {
                return Err(LoadError::WrongFormat(
                    p(),
                    format!("missing: the document is a JSON {}", json_type(&v)),
                ));
            }
            Some(Ok(v)) => serde_json::from_value(v).map_err(|e| {
                // Envelope fields are all optional: only a non-object gets here.
                LoadError::Syntax(p(), e.to_string())
            })?,
        };
        match &env.format {
            Some(serde_json::Value::String(s)) if s == FORMAT => {}
            Some(other) => return Err(LoadError::WrongFormat(p(), other.to_string())),
            None => return Err(LoadError::WrongFormat(p(), "missing".into())),
        }
        let version = match &env.version {
            Some(v) => v.as_u64().ok_or_else(|| {
                LoadError::Body(p(), 0, format!("`version` is {v}, not a number"))
            })?,
            None => return Err(LoadError::Body(p(), 0, "`version` is missing".into())),
        };
        if version > u64::from(VERSION) {
            return Err(LoadError::TooNew(p(), version));
        }
        if version < u64::from(MIN_VERSION) {
            return Err(LoadError::TooOld(p(), version));
        }
        // Version 1 is the only one so far; a later version adds an arm here that reads the
        // old body and upgrades it.
        serde_json::from_str::<SessionFile>(text)
            .map_err(|e| LoadError::Body(p(), version, e.to_string()))
    }

    /// Loads a session file.
    pub fn load(path: &Path) -> Result<SessionFile, LoadError> {
        let text = fs::read(path).map_err(|e| LoadError::Io(path.to_path_buf(), e))?;
        let text = String::from_utf8(text)
            .map_err(|e| LoadError::Syntax(path.to_path_buf(), format!("not UTF-8: {e}")))?;
        Self::parse(&text, path)
    }

    /// Writes the document: the envelope fields one per line, then one event per line (easy to
    /// grep and diff), still one JSON document.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut head = serde_json::to_value(self).map_err(io::Error::other)?;
        let fields = head
            .as_object_mut()
            .ok_or_else(|| io::Error::other("session is not an object"))?;
        fields.remove("events");
        // Fixed order, the envelope first; then anything else in name order.
        let order = [
            "format",
            "version",
            "kernel",
            "attach",
            "command",
            "exit_status",
            "started_wall",
            "duration_ns",
            "lost",
            "error",
            "devices",
            "probes",
        ];
        out.write_all(b"{\n")?;
        let mut keys: Vec<String> = order
            .iter()
            .filter(|k| fields.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        let mut rest: Vec<String> = fields
            .keys()
            .filter(|k| !order.contains(&k.as_str()))
            .cloned()
            .collect();
        rest.sort();
        keys.extend(rest);
        for k in &keys {
            serde_json::to_writer(&mut *out, k)?;
            out.write_all(b": ")?;
            serde_json::to_writer(&mut *out, &fields[k])?;
            out.write_all(b",\n")?;
        }
        out.write_all(b"\"events\": [")?;
        for (i, ev) in self.events.iter().enumerate() {
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut *out, ev)?;
        }
        out.write_all(b"\n]\n}\n")
    }

    /// Writes the file atomically: a temporary file beside it, synced, then renamed over it.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{}: not a file name", path.display())))?;
        let tmp = dir.join(format!(
            ".{}.tmp.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let res = (|| {
            let f = File::create(&tmp)?;
            let mut w = BufWriter::new(f);
            self.write_to(&mut w)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Notifications the kernel left for userspace to replay because the holder was not ready.
    pub fn premature(&self) -> Vec<&Item> {
        self.notifications_with(|v| v == Verdict::Premature)
    }

    /// Notifications XFS handled: `xfs_dax_notify_failure` returned 0 after walking the owners
    /// of the range and killing the processes that map it (`mf_dax_kill_procs`).
    pub fn delivered(&self) -> Vec<&Item> {
        self.notifications_with(|v| v == Verdict::Delivered)
    }

    fn notifications_with(&self, f: impl Fn(Verdict) -> bool) -> Vec<&Item> {
        self.events
            .iter()
            .filter(|e| matches!(e, Item::Notification(n) if f(n.data.verdict)))
            .collect()
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// RFC 3339 UTC with milliseconds, e.g. "2025-03-01T12:34:56.789Z".
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::civil::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture_events() -> Vec<Item> {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../xtask/tests/fixtures/6.12-kprobe/premature/events.jsonl"
        );
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn sample() -> SessionFile {
        SessionFile {
            format: FORMAT.into(),
            version: VERSION,
            kernel: "6.12.0-test".into(),
            attach: "kprobe".into(),
            probes: vec![
                ProbeRecord {
                    hook: "notify".into(),
                    target: "dax_holder_notify_failure".into(),
                    method: Some("kprobe".into()),
                    notes: vec![],
                },
                ProbeRecord {
                    hook: "xfs_notify".into(),
                    target: "xfs_dax_notify_failure".into(),
                    method: None,
                    notes: vec!["no kprobes".into()],
                },
            ],
            lost: Lost {
                kernel: 0,
                seq_gaps: 1,
            },
            command: vec!["sh".into(), "-c".into(), "mount /dev/pmem0 /mnt".into()],
            exit_status: ExitStatus::Signal(7),
            started_wall: rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            ),
            duration_ns: 5_000_000_000,
            error: None,
            devices: [("259:0".to_string(), "pmem0".to_string())].into(),
            events: fixture_events(),
        }
    }

    fn text(s: &SessionFile) -> String {
        let mut v = Vec::new();
        s.write_to(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn round_trip_keeps_everything_and_the_envelope_comes_first() {
        let s = sample();
        let t = text(&s);
        assert!(
            t.starts_with("{\n\"format\": \"notify-session\",\n\"version\": 1,\n"),
            "{t}"
        );
        assert!(t.contains("\"exit_status\": {\"signal\":7}"), "{t}");
        // One event per line.
        assert_eq!(
            t.lines().filter(|l| l.starts_with("{\"seq\":")).count(),
            s.events.len()
        );
        let back = SessionFile::parse(&t, Path::new("s.json")).unwrap();
        assert_eq!(back, s);
        // And through the file system, atomically.
        let dir = std::env::temp_dir().join(format!("notify-sf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("session.json");
        s.save(&f).unwrap();
        assert_eq!(SessionFile::load(&f).unwrap(), s);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary left");
        fs::remove_dir_all(&dir).unwrap();
        // Empty events still form a document.
        let empty = SessionFile {
            events: vec![],
            ..s
        };
        assert_eq!(
            SessionFile::parse(&text(&empty), Path::new("e")).unwrap(),
            empty
        );
    }

    #[test]
    fn a_newer_version_is_refused_naming_file_version_and_what_we_read() {
        let t = text(&sample()).replacen("\"version\": 1,", "\"version\": 7,", 1);
        let e = SessionFile::parse(&t, Path::new("/tmp/x/s.json")).unwrap_err();
        assert!(matches!(e, LoadError::TooNew(_, 7)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains("/tmp/x/s.json"), "{m}");
        assert!(m.contains("version 7"), "{m}");
        assert!(m.contains("newer notify"), "{m}");
        assert!(m.contains(&format!("reads version {VERSION}")), "{m}");
        // Even when the rest of a future document is unreadable to us.
        let future = r#"{"format":"notify-session","version":2,"events":{"whatever":1}}"#;
        assert!(matches!(
            SessionFile::parse(future, Path::new("f")).unwrap_err(),
            LoadError::TooNew(_, 2)
        ));
        let e = SessionFile::parse(r#"{"format":"notify-session","version":0}"#, Path::new("o"))
            .unwrap_err();
        assert!(matches!(e, LoadError::TooOld(_, 0)), "{e:?}");
    }

    #[test]
    fn an_older_readable_version_loads_without_optional_fields() {
        // A minimal version-1 document without the optional fields (error, devices).
        let t = r#"{"format":"notify-session","version":1,"kernel":"6.1.0","attach":"auto",
            "probes":[],"lost":{"kernel":0,"seq_gaps":0},"command":["true"],
            "exit_status":{"code":0},"started_wall":"2025-01-01T00:00:00.000Z","duration_ns":1,
            "events":[]}"#;
        let s = SessionFile::parse(t, Path::new("v1")).unwrap();
        assert_eq!(s.exit_status, ExitStatus::Code(0));
        assert!(s.devices.is_empty() && s.error.is_none());
    }

    #[test]
    fn a_wrong_format_is_refused() {
        let t = text(&sample()).replacen("notify-session", "something-else", 1);
        let m = SessionFile::parse(&t, Path::new("s.json"))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("not a notify session") && m.contains("something-else"),
            "{m}"
        );
        // An events.jsonl handed to report by mistake.
        let jsonl = fixture_events()
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let e = SessionFile::parse(&jsonl, Path::new("events.jsonl")).unwrap_err();
        assert!(matches!(e, LoadError::WrongFormat(..)), "{e:?}");
        assert!(e.to_string().contains("format missing"), "{e}");
        let e = SessionFile::parse("[1,2]", Path::new("a")).unwrap_err();
        assert!(e.to_string().contains("JSON array"), "{e}");
    }

    #[test]
    fn truncated_files_are_refused_at_every_length() {
        let t = text(&sample());
        // Every cut of the document fails cleanly (never a panic, never a partial session).
        for cut in (0..t.len() - 2).step_by(7) {
            let e = SessionFile::parse(&t[..cut], Path::new("cut.json"))
                .expect_err(&format!("cut at {cut} loaded"));
            let m = e.to_string();
            assert!(m.starts_with("cut.json: "), "{m}");
        }
        let e = SessionFile::parse(&t[..t.len() / 2], Path::new("half")).unwrap_err();
        assert!(matches!(e, LoadError::Syntax(..)), "{e:?}");
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = SessionFile::load(Path::new("/nonexistent/notify/s.json")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/notify/s.json"), "{e}");
    }

    #[test]
    fn body_errors_name_the_version() {
        let t = r#"{"format":"notify-session","version":1,"kernel":"x"}"#;
        let e = SessionFile::parse(t, Path::new("b")).unwrap_err();
        assert!(matches!(e, LoadError::Body(_, 1, _)), "{e:?}");
        assert!(e.to_string().contains("missing field"), "{e}");
    }

    #[test]
    fn exit_status_and_wall_clock() {
        assert_eq!(ExitStatus::Code(7).shell_code(), 7);
        assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
        assert_eq!(
            serde_json::to_string(&ExitStatus::Code(0)).unwrap(),
            r#"{"code":0}"#
        );
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_250)),
            "2000-02-29T00:00:00.250Z"
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20.000Z"
        );
    }

    #[test]
    fn findings_from_the_premature_fixture() {
        let s = sample();
        assert_eq!(s.premature().len(), 1);
        assert_eq!(s.premature()[0].seq(), Some(9));
        assert!(s.delivered().is_empty());
    }
}
