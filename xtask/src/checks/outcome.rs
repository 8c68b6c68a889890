//! One assertion's verdict ([`Check`]) and a scenario's verdicts ([`Outcome`]), with the small
//! helpers every scenario's checks use (a result.txt fact, a dmesg line, an event sequence).

use std::fmt::Write as _;

use notify_model::Item;

use crate::checks::{
    results::{Fact, FactValue},
    steps::{self, Step},
};

/// One assertion's verdict.
#[derive(Clone, Debug)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// The verdicts of one scenario.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub scenario: String,
    pub checks: Vec<Check>,
    /// Why some checks did not run (e.g. the agent is missing).
    pub skipped: Vec<String>,
}

impl Outcome {
    pub fn new(scenario: &str) -> Outcome {
        Outcome {
            scenario: scenario.to_string(),
            ..Default::default()
        }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn check(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: detail.into(),
        });
        ok
    }

    /// The fact is `want`: "key=value, want W".
    pub fn fact_eq<T: FactValue>(&mut self, what: &str, fact: &Fact<T>, want: T) -> bool {
        let ok = fact.is(&want);
        self.check(what, ok, format!("{}, want {}", fact.shown(), want.show()))
    }

    /// The fact is a number other than 0: "key=value, want non-zero".
    pub fn fact_nonzero(&mut self, what: &str, fact: &Fact<i64>) -> bool {
        let ok = fact.value.is_some_and(|v| v != 0);
        self.check(what, ok, format!("{}, want non-zero", fact.shown()))
    }

    /// A dmesg line contains `needle`; `tail`: show the log's end when it does not.
    pub fn dmesg(&mut self, dmesg: &str, needle: &str, tail_on_miss: bool) -> bool {
        let hit = dmesg.lines().find(|l| l.contains(needle));
        let detail = match hit {
            Some(l) => l.trim().to_string(),
            None if tail_on_miss => format!(
                "no line containing {needle:?}; dmesg tail:{}",
                tail(dmesg, 12)
            ),
            None => format!("no line containing {needle:?}"),
        };
        self.check(format!("dmesg says {needle:?}"), hit.is_some(), detail)
    }

    /// `steps` in this order in `items`: the indices of the matches, or a failed check saying
    /// which step is missing.
    pub fn seq(&mut self, what: &str, items: &[&Item], steps: &[Step]) -> Option<Vec<usize>> {
        match steps::expect_sequence(items, steps) {
            Ok(idx) => {
                let shown: Vec<String> = idx.iter().map(|&i| steps::brief(items[i])).collect();
                self.check(what, true, shown.join("\n    "));
                Some(idx)
            }
            Err(e) => {
                self.check(what, false, e);
                None
            }
        }
    }

    /// The failed checks, one "what: detail" line each (tests).
    #[cfg(test)]
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.what, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The last `n` lines of `s`, indented.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let mut out = String::new();
    for l in &lines[lines.len().saturating_sub(n)..] {
        let _ = write!(out, "\n    {l}");
    }
    out
}
