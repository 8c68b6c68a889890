//! `notify journal summary` over a real journal whose records were replayed for real: a real
//! XFS on a loop device, real GETFSMAP owners, a real mapper signalled; then the binary counts
//! them, with and without --since.

mod common;

use std::{fs::File, process::Command, time::Duration};

use common::{Helper, TempDir, Xfs, write_file};
use notify::{
    agent::{journal, replay},
    enforce::Config,
    resolve::{fiemap::fiemap, site},
};
use notify_model::{
    decision::Policy,
    journal::{Damage, DaxDevice, Reason},
};
use serde_json::Value;

#[test]
fn __child_entry() {
    common::child_main();
}

fn damage(disk: &str, off: u64, reason: Reason, wall_ns: u64) -> Damage {
    Damage {
        dax: DaxDevice {
            name: disk.into(),
            major: 259,
            minor: 0,
        },
        dax_offset: off,
        len: 4096,
        mf_flags: 0x20,
        kernel_seq: 0,
        ktime_ns: 0,
        wall_ns,
        reason,
        namespace: None,
    }
}

fn summary(j: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_notify"))
        .arg("journal")
        .arg("--journal")
        .arg(j)
        .arg("summary")
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root (loop devices, mount, GETFSMAP owners): run as root with --include-ignored"]
fn summary_counts_real_replays_by_reason_disk_outcome_and_file() {
    common::require_root("summary_counts_real_replays_by_reason_disk_outcome_and_file");
    let x = Xfs::new("rmapbt=1");
    let victim = x.path("victim");
    let other = x.path("other");
    write_file(&victim, 64 << 10, 1);
    write_file(&other, 64 << 10, 2);
    let phys = |p: &std::path::Path| fiemap(&File::open(p).unwrap()).unwrap()[0].physical;
    let (pv, po) = (phys(&victim), phys(&other));
    let mut mapper = Helper::spawn("map", &[victim.to_str().unwrap(), "0", "4096"]);
    while mapper.next_msg().as_deref() != Some("READY") {}
    let site = site::site_of_mount(&x.mnt).unwrap();
    let cfg = Config {
        policy: Policy::Sigbus,
        ..Config::default()
    };

    let tmp = TempDir::new("jsummary");
    let jp = tmp.path().join("journal");
    let now = journal::now_ns();
    let day = 86_400 * 1_000_000_000;
    {
        let (mut j, _) = journal::Journal::open(&jp).unwrap();
        // Three real replays: the victim's block twice (its mapper is signalled the first time),
        // the other file's once.
        for (off, reason) in [
            (pv, Reason::Premature),
            (pv, Reason::NoHolder),
            (po, Reason::Badblocks),
        ] {
            let id = j.append(damage("pmem0", off, reason, now)).unwrap();
            let report = replay::replay(&cfg, &site, off, 4096);
            assert!(report.error.is_none(), "{report:?}");
            assert!(
                j.mark_replayed_with(id, &report.summary(), Some(report.outcome()))
                    .unwrap()
            );
        }
        // Pending on another disk, and an old record (ten days ago) on it.
        j.append(damage("pmem1", 0, Reason::Premature, now))
            .unwrap();
        j.append(damage("pmem1", 4096, Reason::MountFailed, now - 10 * day))
            .unwrap();
    }
    mapper
        .wait_status(Duration::from_secs(5))
        .expect("the victim's mapper was signalled by the first replay");

    let (code, table, err) = summary(&jp, &[]);
    assert_eq!(code, 0, "{err}");
    eprintln!("{table}");
    assert!(
        table.starts_with("5 record(s), 20480 byte(s) damaged\n"),
        "{table}"
    );
    let v = victim.display().to_string();
    let worst = table
        .split("worst files (records that hit them):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no worst files: {table}"));
    let mut rows = worst.lines();
    assert_eq!(
        rows.next().map(str::trim),
        Some(format!("2  {v}").as_str()),
        "{table}"
    );
    assert_eq!(
        rows.next().map(str::trim),
        Some(format!("1  {}", other.display()).as_str()),
        "{table}"
    );

    let (code, json, err) = summary(&jp, &["-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(s["records"], 5);
    assert_eq!(s["by_disk"]["pmem0"], 3);
    assert_eq!(s["by_disk"]["pmem1"], 2);
    assert_eq!(s["by_reason"]["premature"], 2);
    assert_eq!(s["by_reason"]["badblocks"], 1);
    assert_eq!(s["by_reason"]["mount_failed"], 1);
    assert_eq!(s["by_outcome"]["replayed"], 3);
    assert_eq!(s["by_outcome"]["pending"], 2);
    assert_eq!(s["processes"]["signalled"], 1, "{s}");
    assert_eq!(s["worst_files"][0][0], v.as_str());
    assert_eq!(s["worst_files"][0][1], 2);

    // --since leaves the ten-day-old record out, and says so.
    let (code, json, err) = summary(&jp, &["--since", "7d", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (s["records"].as_u64(), s["older"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(s["by_reason"].get("mount_failed"), None);
    let (_, table, _) = summary(&jp, &["--since", "7d"]);
    assert!(table.contains("(1 older left out)"), "{table}");

    // A --since that means nothing: the error names what is accepted.
    let (code, _, err) = summary(&jp, &["--since", "yesterday"]);
    assert_ne!(code, 0);
    assert!(err.contains("duration back from now"), "{err}");
}
