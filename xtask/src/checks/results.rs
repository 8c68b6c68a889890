//! A scenario's `result.txt`: the `key=value` facts its script measured (lab/scenarios.sh
//! `res`), read into typed facts. Each scenario's checks read the facts they need into their own
//! struct once ([`Fact`]s by key, in one place per scenario); the pieces several scenarios share
//! (an agent run, an injection, a victim, a poisoned page) are here.

use std::{collections::BTreeMap, fmt};

/// The facts of one result.txt. The script appends; a key written twice keeps its last value.
#[derive(Clone, Default)]
pub struct Results {
    facts: BTreeMap<String, String>,
}

impl fmt::Debug for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.facts.fmt(f)
    }
}

impl Results {
    pub fn parse(text: &str) -> Results {
        let facts = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Results { facts }
    }

    /// The fact `key`, parsed as a `T`.
    pub fn fact<T: FactValue>(&self, key: impl Into<String>) -> Fact<T> {
        let key = key.into();
        let raw = self.facts.get(&key).cloned();
        let value = raw.as_deref().and_then(T::parse);
        Fact { key, raw, value }
    }

    /// Whether the script wrote `key` at all (facts it writes only when something happened).
    pub fn has(&self, key: &str) -> bool {
        self.facts.contains_key(key)
    }
}

/// One fact: its key, the text the script wrote (None: not written) and its value (None: not
/// written, or not a `T`).
#[derive(Clone, Debug)]
pub struct Fact<T> {
    pub key: String,
    pub raw: Option<String>,
    pub value: Option<T>,
}

impl<T: FactValue> Fact<T> {
    pub fn is(&self, want: &T) -> bool {
        self.value.as_ref() == Some(want)
    }

    /// "key=text" as the script wrote it, "key=<absent>" when it did not.
    pub fn shown(&self) -> String {
        format!("{}={}", self.key, self.raw_or("<absent>"))
    }

    /// The text as written, or `absent`.
    pub fn raw_or<'a>(&'a self, absent: &'a str) -> &'a str {
        self.raw.as_deref().unwrap_or(absent)
    }
}

/// A type a fact can have: parsed from the script's text, shown the way the script writes it.
pub trait FactValue: Sized + PartialEq {
    fn parse(s: &str) -> Option<Self>;
    fn show(&self) -> String;
}

/// Decimal or 0x-hex, optionally negative.
pub fn parse_num(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => i128::from_str_radix(h, 16).ok()?,
        None => s.parse::<i128>().ok()?,
    };
    Some(if neg { -v } else { v })
}

macro_rules! int_fact {
    ($($t:ty),*) => {$(
        impl FactValue for $t {
            fn parse(s: &str) -> Option<Self> {
                parse_num(s).and_then(|v| <$t>::try_from(v).ok())
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
int_fact!(i32, i64, u32, u64);

impl FactValue for String {
    fn parse(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

/// "yes" / "no".
impl FactValue for bool {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }
    }
    fn show(&self) -> String {
        if *self { "yes" } else { "no" }.to_string()
    }
}

/// How an agent run started (`agent`, `agent_restart`, `metrics_agent`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// Up and printing.
    Running,
    /// The notify binary is in the guest (the mount suite: `notify record` runs it).
    Present,
    /// No notify binary in the guest.
    Missing,
    /// It exited before it was up (`<name>_exit` has its status).
    Died,
    Other(String),
}

impl FactValue for AgentState {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => AgentState::Running,
            "present" => AgentState::Present,
            "missing" => AgentState::Missing,
            "died" => AgentState::Died,
            other => AgentState::Other(other.to_string()),
        })
    }
    fn show(&self) -> String {
        match self {
            AgentState::Running => "running",
            AgentState::Present => "present",
            AgentState::Missing => "missing",
            AgentState::Died => "died",
            AgentState::Other(s) => s,
        }
        .to_string()
    }
}

/// One agent run: `<name>` (its state) and `<name>_exit` (its wait status).
#[derive(Clone, Debug)]
pub struct AgentRun {
    pub state: Fact<AgentState>,
    pub exit: Fact<i32>,
}

impl AgentRun {
    pub fn read(r: &Results, name: &str) -> AgentRun {
        AgentRun {
            state: r.fact(name),
            exit: r.fact(format!("{name}_exit")),
        }
    }

    /// Whether the run stopped cleanly (exit 0), which is when it writes its session.
    pub fn exited_0(&self) -> bool {
        self.exit.is(&0)
    }
}

/// A `corrupt-pfn` write: `<name>_rc` and the error it printed, `<name>_err`.
#[derive(Clone, Debug)]
pub struct Inject {
    pub rc: Fact<i64>,
    pub err: Fact<String>,
}

impl Inject {
    pub fn read(r: &Results, name: &str) -> Inject {
        Inject {
            rc: r.fact(format!("{name}_rc")),
            err: r.fact(format!("{name}_err")),
        }
    }

    /// The write failed (the kernel refused the poison).
    pub fn failed(&self) -> bool {
        self.rc.value.is_some_and(|rc| rc != 0)
    }

    /// "name_rc=1 err=Input/output_error".
    pub fn shown(&self) -> String {
        format!("{} err={}", self.rc.shown(), self.err.raw_or("?"))
    }
}

/// A page the victim (lab/victim.c) or the script poisoned: its pfn and the FIEMAP physical
/// offset of the file page (the dax offset on pmem0).
#[derive(Clone, Debug)]
pub struct Page {
    pub pfn: Fact<u64>,
    pub physoff: Fact<u64>,
}

impl Page {
    /// `<prefix>pfn` and `<prefix>physoff` ("" for the single-victim scenarios).
    pub fn read(r: &Results, prefix: &str) -> Page {
        Page {
            pfn: r.fact(format!("{prefix}pfn")),
            physoff: r.fact(format!("{prefix}physoff")),
        }
    }
}

/// The victim that poisons its own page: `victim_exit` (wait status) and `victim_sicode`.
#[derive(Clone, Debug)]
pub struct Victim {
    pub exit: Fact<i32>,
    pub sicode: Fact<i32>,
}

impl Victim {
    pub fn read(r: &Results) -> Victim {
        Victim {
            exit: r.fact("victim_exit"),
            sicode: r.fact("victim_sicode"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_num("0x40019"), Some(0x40019));
        assert_eq!(parse_num("-95"), Some(-95));
        assert_eq!(parse_num("nope"), None);
    }

    #[test]
    fn facts_keep_what_the_script_wrote() {
        let r = Results::parse("pfn=0x40018\nrc=1\nrc=0\nexit=abc\nalive=yes\n");
        assert_eq!(r.fact::<u64>("pfn").value, Some(0x40018));
        // The last write wins.
        assert!(r.fact::<i64>("rc").is(&0));
        let bad = r.fact::<i32>("exit");
        assert_eq!((bad.value, bad.shown().as_str()), (None, "exit=abc"));
        assert_eq!(r.fact::<i32>("gone").shown(), "gone=<absent>");
        assert!(r.fact::<bool>("alive").is(&true));
        assert_eq!(r.fact::<u64>("rc").value, Some(0));
        assert_eq!(Results::parse("neg=-1").fact::<u64>("neg").value, None);
    }
}
