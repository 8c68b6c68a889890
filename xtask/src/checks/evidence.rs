//! What one scenario left behind, parsed once into typed documents: the agent's JSON lines into
//! [`Item`]s (file order kept; lines that do not parse kept aside for the well-formedness
//! check), session files into [`SessionFile`]s, journal listings into journal [`Record`]s and
//! result.txt into [`Results`]. The rest (dmesg, reports, SVG, /metrics and /healthz scrapes)
//! is text the checks search.

use std::{collections::BTreeMap, path::Path};

use notify_model::{
    Item,
    journal::Record,
    session::{LoadError, SessionFile},
};
use serde::de::DeserializeOwned;

use crate::checks::results::Results;

/// Files beyond result/dmesg/events that a scenario may send back for its assertions.
pub const EXTRA_FILES: &[&str] = &[
    "events_restart.jsonl",
    "events_again.jsonl",
    "journal_killed.jsonl",
    "journal_end.jsonl",
    "journal_killed.txt",
    "journal_end.txt",
    // tell: the journal before the mount; healthmon: doctor and trace beside another holder.
    "journal_unmounted.jsonl",
    "journal_unmounted.txt",
    "doctor_held.txt",
    "events_held.jsonl",
    "agent_held.log",
    // removal: what the agent said when the kernel never finished the unbind.
    "agent.log",
    // redrive: the agent with --redrive, and again on the same mount.
    "events_redrive.jsonl",
    // Every scenario's session (its agent's --session; mount_suite's `notify record`) and its
    // host report (crate::host_report).
    "session.json",
    "report.txt",
    "report.svg",
    "session_restart.json",
    "report_restart.txt",
    "report_restart.svg",
    "session_again.json",
    "report_again.txt",
    "report_again.svg",
    // mount_suite: the fleet agent's scrapes and records.
    "healthz.txt",
    "metrics_delivered.txt",
    "metrics_premature.txt",
    "metrics_replayed.txt",
    "metrics_end.txt",
    "agent_events.jsonl",
    // mounted: the two mapper scans (kernel iterator, /proc) and their logs.
    "scan_kernel.json",
    "scan_proc.json",
    "scan_kernel.log",
    "scan_proc.log",
];

/// Every file the checks read: result.txt, dmesg.txt, events.jsonl and [`EXTRA_FILES`].
pub fn evidence_files() -> impl Iterator<Item = &'static str> {
    ["result.txt", "dmesg.txt", "events.jsonl"]
        .into_iter()
        .chain(EXTRA_FILES.iter().copied())
}

/// A line of a JSON-lines file that is not a `T`.
#[derive(Clone, Debug)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub text: String,
    pub error: String,
}

/// A JSON-lines file: its documents in file order, and the lines that are not one.
#[derive(Clone, Debug)]
pub struct JsonLines<T> {
    pub items: Vec<T>,
    pub bad: Vec<BadLine>,
}

impl<T: DeserializeOwned> JsonLines<T> {
    pub fn parse(text: &str) -> JsonLines<T> {
        let mut items = Vec::new();
        let mut bad = Vec::new();
        for (n, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<T>(l) {
                Ok(t) => items.push(t),
                Err(e) => bad.push(BadLine {
                    line: n + 1,
                    text: l.to_string(),
                    error: e.to_string(),
                }),
            }
        }
        JsonLines { items, bad }
    }

    /// "line 3: <error>: <text>" of the first bad line.
    pub fn first_bad(&self) -> Option<String> {
        self.bad
            .first()
            .map(|b| format!("line {}: {}: {}", b.line, b.error, b.text))
    }
}

impl JsonLines<Item> {
    /// The items in file order: the agent writes its records (which have no `seq`) right after
    /// the event that caused them, so their place in the file is their place in the story.
    pub fn in_order(&self) -> Vec<&Item> {
        self.items.iter().collect()
    }

    /// The items by `seq` (stable: a derived item stays after its cause; agent records, which
    /// have none, go last).
    pub fn by_seq(&self) -> Vec<&Item> {
        let mut v = self.in_order();
        v.sort_by_key(|i| i.seq().unwrap_or(u64::MAX));
        v
    }
}

/// What one scenario left behind.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Whether a result.txt came back at all (a guest that died mid-scenario sends none).
    pub reported: bool,
    pub results: Results,
    pub dmesg: String,
    /// Agent output (`events*.jsonl`, `agent_events.jsonl`), by file name.
    events: BTreeMap<&'static str, JsonLines<Item>>,
    /// `notify journal list -o json` (`journal_*.jsonl`), by file name.
    journals: BTreeMap<&'static str, JsonLines<Record>>,
    /// `session*.json`, by file name: the session or why it does not load.
    sessions: BTreeMap<&'static str, Result<SessionFile, LoadError>>,
    /// Everything else, by file name.
    texts: BTreeMap<&'static str, String>,
}

impl Evidence {
    /// Parses the scenario's files; `file(name)` is the text of its file `name`, when that file
    /// came back.
    pub fn parse<'a>(file: impl Fn(&str) -> Option<&'a str>) -> Evidence {
        let mut ev = Evidence::default();
        for name in evidence_files() {
            let Some(text) = file(name) else { continue };
            match name {
                "result.txt" => {
                    ev.reported = !text.is_empty();
                    ev.results = Results::parse(text);
                }
                "dmesg.txt" => ev.dmesg = text.to_string(),
                n if n.starts_with("journal_") && n.ends_with(".jsonl") => {
                    ev.journals.insert(n, JsonLines::parse(text));
                }
                n if n.ends_with(".jsonl") => {
                    ev.events.insert(n, JsonLines::parse(text));
                }
                n if n.starts_with("session") && n.ends_with(".json") => {
                    ev.sessions
                        .insert(n, SessionFile::parse(text, Path::new(n)));
                }
                n => {
                    ev.texts.insert(n, text.to_string());
                }
            }
        }
        ev
    }

    /// An agent output file.
    pub fn events(&self, name: &str) -> Option<&JsonLines<Item>> {
        self.events.get(name)
    }

    /// A journal listing.
    pub fn journal(&self, name: &str) -> Option<&JsonLines<Record>> {
        self.journals.get(name)
    }

    /// A session file, loaded or refused.
    pub fn session(&self, name: &str) -> Option<&Result<SessionFile, LoadError>> {
        self.sessions.get(name)
    }

    /// A text file (reports, SVG, scrapes, journal tables).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_kept_with_their_number_and_error() {
        let f: JsonLines<Item> = JsonLines::parse(
            "{\"seq\":1,\"kind\":\"nonsense\"}\n\nnot json\n{\"kind\":\"mount_not_visible\",\"dev\":\"259:0\",\"waited_ms\":1}\n",
        );
        assert_eq!(f.items.len(), 1);
        assert_eq!(f.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [1, 3]);
        let first = f.first_bad().unwrap();
        assert!(
            first.starts_with("line 1: ") && first.contains("nonsense"),
            "{first}"
        );
    }

    #[test]
    fn files_are_sorted_by_what_they_hold() {
        let files: BTreeMap<&str, &str> = [
            ("result.txt", "agent=running\n"),
            ("events.jsonl", ""),
            ("journal_end.jsonl", ""),
            ("session.json", "{}"),
            ("report.txt", "r"),
            ("stray.txt", "not read"),
        ]
        .into();
        let ev = Evidence::parse(|f| files.get(f).copied());
        assert!(ev.reported);
        assert!(ev.events("events.jsonl").is_some() && ev.events("events_again.jsonl").is_none());
        assert!(ev.journal("journal_end.jsonl").is_some());
        assert!(matches!(
            ev.session("session.json"),
            Some(Err(LoadError::WrongFormat(..)))
        ));
        assert_eq!(ev.text("report.txt"), Some("r"));
        assert_eq!(ev.text("stray.txt"), None);
    }
}
