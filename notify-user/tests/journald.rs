//! Log lines reach journald with their priorities: the real binary, its stderr a real file, and
//! JOURNAL_STREAM set as systemd sets it (the stream's device:inode, systemd.exec(5)) to that
//! file, to another file, or not at all. Only the first gets `<N>` prefixes.

mod common;

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
};

use notify::agent::journal::Journal;

/// Runs notify with stderr to `log` and JOURNAL_STREAM as given; returns what it wrote there.
fn stderr_of(args: &[&str], log: &Path, stream: Option<String>) -> (Option<i32>, String) {
    let f = File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify"));
    cmd.args(args)
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(f.try_clone().unwrap()));
    if let Some(s) = stream {
        cmd.env("JOURNAL_STREAM", s);
    }
    let st = cmd.status().unwrap();
    (st.code(), std::fs::read_to_string(log).unwrap())
}

#[test]
fn priorities_only_when_stderr_is_the_journal_stream() {
    let dir = common::TempDir::new("journald");
    // A journal with a torn append at its end: `journal list` warns about it (a warning), and
    // `resolve` on a missing path fails (an error).
    let j = dir.path().join("journal");
    drop(Journal::open(&j).unwrap());
    OpenOptions::new()
        .append(true)
        .open(&j)
        .unwrap()
        .write_all(&0x3152_4A4Eu32.to_le_bytes())
        .unwrap();
    let js = j.to_str().unwrap();
    let warn: &[&str] = &["journal", "--journal", js, "list"];
    let error: &[&str] = &["resolve", "--mount", "/nonexistent", "--offset", "0"];

    let log = dir.path().join("stderr.log");
    File::create(&log).unwrap();
    let md = std::fs::metadata(&log).unwrap();
    let ours = format!("{}:{}", md.dev(), md.ino());
    let other = format!("{}:{}", md.dev(), md.ino() + 1);

    // stderr is the journal's stream: every line carries its priority.
    let (code, err) = stderr_of(warn, &log, Some(ours.clone()));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.starts_with("<4>notify: warning: journal "), "{err}");
    assert!(err.contains("append in progress"), "{err}");
    let (code, err) = stderr_of(error, &log, Some(ours));
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.starts_with("<3>notify: error: --mount /nonexistent"),
        "{err}"
    );

    // Inherited from a parent whose stderr was the journal, but ours is another file: no
    // prefixes. And without the variable, none either.
    for stream in [Some(other), None, Some("garbage".to_string())] {
        let (_, err) = stderr_of(warn, &log, stream.clone());
        assert!(
            err.starts_with("notify: warning: journal "),
            "{stream:?}: {err}"
        );
        let (_, err) = stderr_of(error, &log, stream.clone());
        assert!(
            err.starts_with("notify: error: --mount"),
            "{stream:?}: {err}"
        );
        assert!(!err.contains("<3>"), "{stream:?}: {err}");
    }
}
