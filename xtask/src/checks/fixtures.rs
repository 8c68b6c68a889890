//! The checks against recorded runs (xtask/tests/fixtures/<kernel>-<flavour>/<scenario>/):
//! every recorded run passes its own assertions, and runs broken the way a regression would
//! break them fail, naming what went wrong.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::checks::{
    check_scenario,
    evidence::{Evidence, evidence_files},
    outcome::Outcome,
    results::Results,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The evidence files of a recorded scenario, by name.
fn files(run: &str, sc: &str) -> BTreeMap<&'static str, String> {
    let dir = root().join(run).join(sc);
    evidence_files()
        .filter_map(|f| Some((f, std::fs::read_to_string(dir.join(f)).ok()?)))
        .collect()
}

fn file(files: &BTreeMap<&'static str, String>, name: &str) -> String {
    files
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("fixture without {name}"))
}

fn evidence(files: &BTreeMap<&'static str, String>) -> Evidence {
    Evidence::parse(|f| files.get(f).map(String::as_str))
}

/// The checks of `sc` on `files` with `name` replaced by `body`: the failed checks.
fn failures_with(
    sc: &str,
    files: &BTreeMap<&'static str, String>,
    name: &'static str,
    body: String,
) -> String {
    let mut f = files.clone();
    f.insert(name, body);
    check_scenario(sc, &evidence(&f), true).failures()
}

/// Lines of `text` without those containing `needle`.
fn without(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| !l.contains(needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every recorded run under tests/fixtures must pass its own assertions (event checks
/// required where the agent ran).
#[test]
fn recorded_fixtures_pass() {
    let mut runs = 0;
    for run in std::fs::read_dir(root()).unwrap() {
        let run = run.unwrap().path();
        if !run.is_dir() {
            continue;
        }
        runs += 1;
        let name = run.file_name().unwrap().to_string_lossy().into_owned();
        let mut scenarios = 0;
        for sc in std::fs::read_dir(&run).unwrap() {
            let sc = sc.unwrap().path();
            if !sc.is_dir() {
                continue;
            }
            scenarios += 1;
            let sc = sc.file_name().unwrap().to_string_lossy().into_owned();
            let f = files(&name, &sc);
            let result = f
                .get("result.txt")
                .unwrap_or_else(|| panic!("{name}/{sc}: no result.txt"));
            let agent = result.contains("agent=running");
            let o: Outcome = check_scenario(&sc, &evidence(&f), agent);
            assert!(
                o.passed(),
                "{name}/{sc}: {:#?}",
                o.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>()
            );
        }
        assert!(scenarios >= 6, "{name}: {scenarios} scenarios");
    }
    assert!(runs > 0, "no fixtures in {}", root().display());
}

/// A recorded premature run, broken in the ways a regression would break it: each must fail
/// with a message naming the step.
#[test]
fn broken_premature_fixture_fails_clearly() {
    let f = files("6.1-kprobe", "premature");
    let events = file(&f, "events.jsonl");
    let run = |name, body| failures_with("premature", &f, name, body);
    assert_eq!(
        check_scenario("premature", &evidence(&f), true).failures(),
        ""
    );

    // XFS accepted it: ret 0 instead of -EIO.
    let ok_ret = events
        .lines()
        .map(|l| {
            if l.contains(r#""kind":"notify_exit""#) {
                l.replace(r#""ret":-5"#, r#""ret":0"#)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let msg = run("events.jsonl", ok_ret);
    assert!(msg.contains("step 6 of 7 missing: notify_exit"), "{msg}");
    assert!(msg.contains("ret=0 (want -5)"), "{msg}");

    // The agent thought the filesystem was born.
    let born = events.replace(r#""readiness":"not_born""#, r#""readiness":"born""#);
    let msg = run("events.jsonl", born);
    assert!(msg.contains("missing: notify_enter"), "{msg}");
    assert!(
        msg.contains(r#"readiness="born" (want "not_born")"#),
        "{msg}"
    );

    // The notification arrived after the mount had completed.
    let msg = run(
        "events.jsonl",
        without(&events, r#""kind":"get_tree_exit""#),
    );
    assert!(msg.contains("step 7 of 7 missing: get_tree_exit"), "{msg}");
    assert!(msg.contains("no get_tree_exit event at all"), "{msg}");

    // The kernel did not drop it.
    let dmesg = file(&f, "dmesg.txt").replace("not ready", "ready");
    let msg = run("dmesg.txt", dmesg);
    assert!(
        msg.contains("filesystem is not ready for notify_failure()!"),
        "{msg}"
    );

    // The session lost an event the agent printed.
    let msg = run(
        "events.jsonl",
        without(&events, r#""kind":"mountfs_enter""#),
    );
    assert!(
        msg.contains("session.json holds the events of events.jsonl in the same order"),
        "{msg}"
    );

    // The report drew the notification with another verdict.
    let rep = file(&f, "report.txt").replace("PREMATURE during", "DELIVERED during");
    let msg = run("report.txt", rep);
    assert!(
        msg.contains("report.txt: one line per notification, with the agent's verdict"),
        "{msg}"
    );

    // A line the agent printed is not one of notify's items (a schema change).
    let msg = run(
        "events.jsonl",
        events.replacen(r#""kind":"holder_get""#, r#""kind":"holder_got""#, 1),
    );
    assert!(msg.contains("events.jsonl is JSON lines"), "{msg}");
    assert!(msg.contains("holder_got"), "{msg}");

    // The session file is not a session.
    let msg = run("session.json", "[]".into());
    assert!(msg.contains("session.json is a notify session"), "{msg}");
}

/// A recorded replay run, broken the ways a regression in the agent would break it: each must
/// fail, naming what went wrong.
#[test]
fn broken_replay_fixture_fails_clearly() {
    let f = files("6.1-kprobe", "replay");
    let check = |name, body| failures_with("replay", &f, name, body);
    assert_eq!(check_scenario("replay", &evidence(&f), true).failures(), "");
    let events = file(&f, "events.jsonl");
    let restart = file(&f, "events_restart.jsonl");

    // The premature notification was journaled as if nothing had been mounting.
    let msg = check(
        "events.jsonl",
        events.replace(r#""reason":"premature""#, r#""reason":"no_holder""#),
    );
    assert!(msg.contains("2. mounting:"), "{msg}");
    assert!(msg.contains("missing: journaled"), "{msg}");
    assert!(
        msg.contains(r#"reason="no_holder" (want "premature")"#),
        "{msg}"
    );

    // The restarted agent signalled nobody.
    let msg = check(
        "events_restart.jsonl",
        without(&restart, r#""kind":"enforcement""#),
    );
    assert!(
        msg.contains("4. one enforcement record: the victim's pid"),
        "{msg}"
    );

    // The bystander was signalled too.
    let r = Results::parse(&file(&f, "result.txt"));
    let victim = r.fact::<i32>("victim_pid").value.unwrap();
    let bystander = r.fact::<i32>("bystander_pid").value.unwrap();
    let also_bystander: String = restart
        .lines()
        .flat_map(|l| {
            let mut v = vec![format!("{l}\n")];
            if l.contains(r#""kind":"enforcement""#) {
                v.push(format!(
                    "{}\n",
                    l.replace(
                        &format!(r#""pid":{victim}"#),
                        &format!(r#""pid":{bystander}"#)
                    )
                ));
            }
            v
        })
        .collect();
    let msg = check("events_restart.jsonl", also_bystander);
    assert!(
        msg.contains("4. no enforcement record names the bystander"),
        "{msg}"
    );

    // The reflinked block's second owner was lost.
    let r2 = r.fact::<u64>("r2_ino").value.unwrap();
    let one_owner = restart.replace(&format!(r#""ino":{r2}"#), r#""ino":99999"#);
    let msg = check("events_restart.jsonl", one_owner);
    assert!(
        msg.contains("5. replay of the reflinked block names both files"),
        "{msg}"
    );

    // The second restart replayed (and killed) again.
    let replayed = restart
        .lines()
        .find(|l| l.contains(r#""kind":"replayed""#))
        .unwrap()
        .to_string();
    let msg = check("events_again.jsonl", replayed + "\n");
    assert!(msg.contains("a second restart replays nothing"), "{msg}");

    // The kill -9 lost the pending record.
    let lost = without(&file(&f, "journal_killed.jsonl"), r#""state":"pending""#);
    let msg = check("journal_killed.jsonl", lost);
    assert!(msg.contains("journal list (journal_killed)"), "{msg}");

    // The journal listing is not journal records.
    let garbled = file(&f, "journal_end.jsonl").replacen(r#""state":"#, r#""status":"#, 1);
    let msg = check("journal_end.jsonl", garbled);
    assert!(msg.contains("journal list (journal_end)"), "{msg}");
    assert!(msg.contains("not a journal record"), "{msg}");
}

/// Each recorded mount suite run passes, and breaking it the way a regression would fails
/// naming the sub-test.
#[test]
fn recorded_suite_and_its_regressions() {
    const SC: &str = "mount_suite";
    for run in ["6.1-kprobe", "6.1-fentry", "6.12-kprobe", "6.12-fentry"] {
        let f = files(run, SC);
        assert_eq!(
            check_scenario(SC, &evidence(&f), true).failures(),
            "",
            "{run}"
        );
    }
    let f = files("6.1-kprobe", SC);
    let edit = |name: &'static str, how: &dyn Fn(&str) -> String| {
        failures_with(SC, &f, name, how(&file(&f, name)))
    };
    // XFS took the poison during the mount: no premature verdict.
    let msg = edit("session.json", &|s| {
        s.replace(r#""verdict":"premature""#, r#""verdict":"delivered""#)
    });
    assert!(msg.contains("premature: a PREMATURE notification"), "{msg}");
    // The corrupt mount became ready.
    let r = Results::parse(&file(&f, "result.txt"));
    let pid = r.fact::<u32>("mount_corrupt_inode_pid").value.unwrap();
    let msg = edit("session.json", &|s| {
        s.lines()
            .map(|l| {
                if l.contains(&format!(r#""pid":{pid},"#)) {
                    l.replace(r#""to":"failed""#, r#""to":"ready""#)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert!(
        msg.contains("corrupt (root inode): holder failed -> released, never ready"),
        "{msg}"
    );
    // The agent replayed before the scrape: pending 0 mid-mount.
    let msg = edit("metrics_premature.txt", &|s| {
        s.replace("notify_journal_pending 1", "notify_journal_pending 0")
    });
    assert!(msg.contains("journal pending depth 1"), "{msg}");
    // /healthz degraded.
    let msg = edit("healthz.txt", &|s| {
        s.replace("200 OK", "503 Service Unavailable")
    });
    assert!(msg.contains("/healthz answers 200"), "{msg}");
    // The recorded command failed.
    let msg = edit("session.json", &|s| {
        s.replace(
            r#""exit_status": {"code":0}"#,
            r#""exit_status": {"code":1}"#,
        )
    });
    assert!(msg.contains("session: the suite exited 0"), "{msg}");
    // The session was cut short.
    let msg = edit("session.json", &|s| s[..s.len() / 2].to_string());
    assert!(msg.contains("session.json is a session file"), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn missing_agent_skips_or_fails() {
    let f: BTreeMap<&'static str, String> = [
        (
            "result.txt",
            "scenario=no_holder\nagent=missing\ninject_rc=1\npfn=0x7ff00\n".to_string(),
        ),
        (
            "dmesg.txt",
            "Memory failure: 0x7ff00: recovery action for dax page: Failed\n".to_string(),
        ),
    ]
    .into();
    let o = check_scenario("no_holder", &evidence(&f), false);
    assert!(o.passed(), "{o:?}");
    assert_eq!(o.skipped.len(), 1);
    assert!(!check_scenario("no_holder", &evidence(&f), true).passed());
    // No result.txt at all: the guest died in the scenario.
    let o = check_scenario("no_holder", &evidence(&BTreeMap::new()), false);
    assert!(!o.passed() && o.checks[0].what == "scenario reported results");
}

/// The mapper scans of `mounted`: a kernel scan that missed a mapper, one that fell back to
/// /proc, and a kprobe run that says it skipped them all fail, naming what went wrong.
#[test]
fn broken_mapper_scans_fail_clearly() {
    let f = files("6.12-kprobe", "mounted");
    let check = |name, body| failures_with("mounted", &f, name, body);
    assert_eq!(
        check_scenario("mounted", &evidence(&f), true).failures(),
        ""
    );
    let kernel = file(&f, "scan_kernel.json");
    let report: serde_json::Value = serde_json::from_str(&kernel).unwrap();
    let mut one = report.clone();
    one["decisions"].as_array_mut().unwrap().pop();
    let msg = check("scan_kernel.json", one.to_string());
    assert!(msg.contains("the same mappers"), "{msg}");
    let msg = check(
        "scan_kernel.log",
        "notify: info: mapper scan: /proc (no task_vma iterator: no)\n".into(),
    );
    assert!(msg.contains("used the task_vma iterator"), "{msg}");
    let result = file(&f, "result.txt");
    let msg = check(
        "result.txt",
        format!("{result}scan_skipped=attach=kprobe\n"),
    );
    assert!(msg.contains("not in this flavour"), "{msg}");
}
