//! docs/RELIABILITY.md's bad-input table, run row by row against the real binary: the table is
//! read from the document itself, so what it says and what notify does cannot drift apart.
//! Plus the promises next to it that need a real process: the unit's restart rule matches the
//! status a bad configuration really exits with, and doctor's status matches its own report.

mod common;

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// No row may take longer: a row that passes every check would start loading probes.
const ROW_LIMIT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One row: the arguments after `notify`, the exit status, the text stderr must contain.
#[derive(Debug)]
struct Row {
    line: usize,
    args: Vec<String>,
    exit: i32,
    error: String,
}

/// The text between the first and the last backtick of a cell.
fn ticked(cell: &str) -> Option<&str> {
    let c = cell.trim();
    c.strip_prefix('`')?.strip_suffix('`')
}

/// The rows of the `## Bad input` section (up to the next `## `).
fn rows(md: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let mut inside = false;
    for (i, l) in md.lines().enumerate() {
        if l.starts_with("## ") {
            inside = l.trim() == "## Bad input";
            continue;
        }
        if !inside || !l.starts_with("| `notify") {
            continue;
        }
        let cells: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
        assert_eq!(
            cells.len(),
            3,
            "docs/RELIABILITY.md:{}: 3 cells: {l}",
            i + 1
        );
        let cmd = ticked(cells[0]).unwrap_or_else(|| panic!("line {}: command", i + 1));
        let mut args: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        assert_eq!(args.remove(0), "notify");
        out.push(Row {
            line: i + 1,
            args,
            exit: cells[1]
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("line {}: exit", i + 1)),
            error: ticked(cells[2])
                .unwrap_or_else(|| panic!("line {}: error", i + 1))
                .into(),
        });
    }
    out
}

/// Runs the binary with a time limit: (status, stderr, how long it took).
fn run(args: &[String], env: &[(&str, &str)]) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > ROW_LIMIT {
            // SAFETY: a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, reader.join().unwrap(), start.elapsed())
}

fn reliability_md() -> String {
    std::fs::read_to_string(repo().join("docs/RELIABILITY.md")).unwrap()
}

#[test]
fn every_row_of_the_bad_input_table_holds() {
    let md = reliability_md();
    let rows = rows(&md);
    assert!(rows.len() >= 25, "only {} rows in ## Bad input", rows.len());
    let mut failed = Vec::new();
    for r in &rows {
        let (code, err, took) = run(&r.args, &[]);
        let mut why = Vec::new();
        if code != Some(r.exit) {
            why.push(format!("exit {code:?}, the table says {}", r.exit));
        }
        if !err.contains(&r.error) {
            why.push("stderr lacks the table's error".to_string());
        }
        // Fail fast: no row gets as far as loading probes.
        if err.contains("notify: attached ") {
            why.push("probes were loaded before the error".to_string());
        }
        if err.contains("panicked") {
            why.push("panicked".to_string());
        }
        // One error, said once: notify's own line is not repeated.
        if err.matches("notify: error: ").count() > 1 {
            why.push("more than one error line".to_string());
        }
        if !why.is_empty() {
            failed.push(format!(
                "docs/RELIABILITY.md:{} notify {} ({took:?}): {}\n  expected: {}\n  stderr: {err}",
                r.line,
                r.args.join(" "),
                why.join("; "),
                r.error
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_journal_on_proc_is_refused_at_once() {
    // Issue #12: this used to load and attach every probe first, then name the OS error twice.
    let args: Vec<String> = ["agent", "--journal", "/proc/version"]
        .map(String::from)
        .into();
    let (code, err, took) = run(&args, &[]);
    assert_eq!(code, Some(78), "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {err}");
    // One error line, and no OS error at all (the problem is the filesystem, said in words).
    assert_eq!(err.matches("notify: error: ").count(), 1, "{err}");
    assert!(err.contains("is on proc, a kernel filesystem"), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn a_journal_another_notify_holds_is_refused_before_any_probe() {
    // Another writer holds the journal (as a running agent does, for good).
    let dir = std::env::temp_dir().join(format!("notify-held-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal");
    let (held, _) = notify::agent::journal::Journal::open(&path).unwrap();
    let args: Vec<String> = vec![
        "agent".into(),
        "--journal".into(),
        path.display().to_string(),
        "--metrics-addr".into(),
        "off".into(),
    ];
    let (code, err, took) = run(&args, &[]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("is held by another notify process"), "{err}");
    assert!(
        !err.contains("notify: attached"),
        "probes were loaded first: {err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    // Let go, and the same command gets past the journal (it then needs the kernel).
    drop(held);
    assert!(!notify::agent::journal::held_elsewhere(&path));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_unit_does_not_restart_on_the_status_of_a_config_error() {
    let unit = std::fs::read_to_string(repo().join("packaging/notify-agent.service")).unwrap();
    let prevent: Vec<i32> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace().map(|n| n.parse::<i32>().unwrap()))
        .collect();
    assert!(
        unit.contains("\nRestart=on-failure\n"),
        "the unit restarts on failure"
    );
    let args: Vec<String> = [
        "agent",
        "--config",
        "notify-user/tests/fixtures/bad-input/bad-policy.toml",
    ]
    .map(String::from)
    .into();
    let (code, err, _) = run(&args, &[]);
    let code = code.expect("exited");
    assert!(
        prevent.contains(&code),
        "a bad configuration exits {code}, the unit prevents restarts on {prevent:?}: {err}"
    );
    // And a run-time failure is not among them: systemd still restarts on those.
    assert!(!prevent.contains(&1), "{prevent:?}");
}

#[test]
#[ignore = "needs root (BPF): run as root with --include-ignored"]
fn doctor_exit_status_agrees_with_its_report() {
    common::require_root("doctor_exit_status_agrees_with_its_report");
    let out = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(["doctor", "-o", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor -o json: {e}: {err}"));
    // Required hooks, from the hook table; attached: a method worked ("auto" is set).
    let missing: Vec<&str> = report["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["auto"].is_null())
        .map(|h| h["hook"].as_str().unwrap())
        .filter(|name| {
            notify::probe::hooks::HOOKS
                .iter()
                .any(|k| k.name == *name && k.required)
        })
        .collect();
    let listed: Vec<&str> = report["missing_required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(listed, missing);
    if missing.is_empty() {
        assert_eq!(out.status.code(), Some(0), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(4), "{err}");
        let line = format!(
            "notify: error: required hooks cannot attach on this kernel: {}",
            missing.join(", ")
        );
        assert!(err.contains(&line), "{line:?} not in {err}");
    }
}
