//! Assertions over what one lab scenario left behind (its result.txt facts, its dmesg, the
//! agent's JSON lines, session files, journal listings, the host's reports), parsed once into
//! typed [`Evidence`]: plain functions, so they run against recorded fixtures too.
//!
//! Shared pieces, each used by the scenarios' checks and never using them: [`outcome`] (the
//! verdicts), [`results`] (result.txt as typed facts), [`evidence`] (the parsed files),
//! [`steps`] (expected event sequences), [`events`] (what every agent output must be). One file
//! per scenario; this module only dispatches.

pub mod events;
pub mod evidence;
pub mod outcome;
pub mod results;
pub mod steps;

mod crash_loop;
mod ext4;
mod healthmon;
mod journal_faults;
mod mapper_scans;
mod mount_suite;
mod mounted;
mod no_holder;
mod premature;
mod redrive;
mod remount;
mod removal;
mod replay;
mod replay_records;
mod sessions;
mod suite_fleet;
mod tell;

pub use evidence::{EXTRA_FILES, Evidence};
pub use outcome::{Check, Outcome};

use notify_model::Item;

/// Runs every assertion of `scenario`. `require_agent`: a missing agent fails instead of
/// skipping the event checks.
pub fn check_scenario(scenario: &str, ev: &Evidence, require_agent: bool) -> Outcome {
    let mut o = Outcome::new(scenario);
    if !ev.reported {
        o.check(
            "scenario reported results",
            false,
            "no result.txt came back (did the guest finish?)",
        );
        return o;
    }
    match scenario {
        "doctor" => doctor(&mut o, ev, require_agent),
        // The mount suite's events are in its recorded session, not an events.jsonl.
        mount_suite::SCENARIO => mount_suite::check(&mut o, ev, require_agent),
        // Its agents' output is read in the guest, after each kill (result.txt facts).
        crash_loop::SCENARIO => crash_loop::check(&mut o, ev, require_agent),
        _ => agent_scenario(&mut o, scenario, ev, require_agent),
    }
    o
}

/// `notify doctor` in the guest.
fn doctor(o: &mut Outcome, ev: &Evidence, require_agent: bool) {
    let rc = ev.results.fact::<i32>("doctor_rc");
    if rc.raw.is_some() {
        // 4 would mean a required hook cannot attach (doctor.txt names which).
        o.fact_eq(
            "notify doctor exited 0 (every required hook attaches)",
            &rc,
            0,
        );
    } else if require_agent {
        o.check(
            "agent present",
            false,
            "the notify binary was not in the guest",
        );
    } else {
        o.skipped.push("agent missing: no doctor".into());
    }
}

/// A scenario whose agent prints events.jsonl: the agent's own checks, the scenario's, then
/// its sessions.
fn agent_scenario(o: &mut Outcome, scenario: &str, ev: &Evidence, require_agent: bool) {
    // The replay scenario kills its first agent with SIGKILL on purpose; the removal scenario
    // abandons it when the kernel never finishes the unbind.
    let end = match scenario {
        "replay" => events::End::Killed,
        "removal" if ev.results.has("unbind_hung") => events::End::Abandoned,
        _ => events::End::Sigint,
    };
    let file = events::agent_events(o, ev, require_agent, end);
    let by_seq: Option<Vec<&Item>> = file.map(|f| f.by_seq());
    let items = by_seq.as_deref();
    // The newer scenarios read the file in its own order: records follow their cause.
    let in_order: Option<Vec<&Item>> = file.map(|f| f.in_order());
    match scenario {
        "no_holder" => no_holder::check(o, ev, items),
        "mounted" => mounted::check(o, ev, items),
        "remount" => remount::check(o, ev, items),
        "premature" => premature::check(o, ev, items),
        "replay" => replay::check(o, ev, items.is_some()),
        "tell" => tell::check(o, ev, in_order.as_deref()),
        "healthmon" => healthmon::check(o, ev, in_order.as_deref()),
        "ext4" => ext4::check(o, ev, in_order.as_deref()),
        "removal" => removal::check(o, ev, in_order.as_deref()),
        "redrive" => redrive::check(o, ev, in_order.as_deref()),
        "journal_faults" => journal_faults::check(o, ev, in_order.as_deref()),
        other => {
            o.check(
                "known scenario",
                false,
                format!("no assertions for {other:?}"),
            );
        }
    }
    if items.is_some() {
        sessions::check(o, scenario, ev);
    }
}

#[cfg(test)]
mod fixtures;
