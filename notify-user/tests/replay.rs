//! The whole replay chain on the host, for real: a real XFS (rmapbt) on a loop device, a range
//! found with FIEMAP, GETFSMAP owners, /proc maps, and real signals to real processes.
//!
//! What the VM lab adds on top is the kernel side (the dropped notification itself); from the
//! dax offset on, replay is the same code on the host and in the guest.

mod common;

use std::{fs::File, process::Command, time::Duration};

use common::{Helper, Xfs, termsig, write_file};
use notify::{
    agent::replay,
    cmd::resolve::render,
    enforce::Config,
    resolve::{
        fiemap::fiemap,
        site::{self, Site},
    },
};
use notify_model::decision::{Act as Action, Policy};

#[test]
fn __child_entry() {
    common::child_main();
}

/// Physical byte offset of a file's first block.
fn first_block(path: &std::path::Path) -> u64 {
    let ext = fiemap(&File::open(path).unwrap()).unwrap();
    assert!(!ext.is_empty(), "{} has no extents", path.display());
    assert_eq!(ext[0].logical, 0);
    ext[0].physical
}

fn site(x: &Xfs) -> Site {
    let s = site::site_of_mount(&x.mnt).unwrap();
    assert_eq!(
        s.part_start, 0,
        "a whole loop device has no partition offset"
    );
    s
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn replay_kills_exactly_the_mapper_of_the_damaged_page() {
    common::require_root("replay_kills_exactly_the_mapper_of_the_damaged_page");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let victim = x.path("victim");
    let other = x.path("other");
    write_file(&victim, 64 << 10, 1);
    write_file(&other, 64 << 10, 2);
    let phys = first_block(&victim);
    let v = victim.to_str().unwrap();

    let mut hit = Helper::spawn("map", &[v, "0", "4096"]);
    let mut elsewhere = Helper::spawn("map", &[v, "32768", "4096"]);
    let mut opener = Helper::spawn("open", &[v]);
    let mut bystander = Helper::spawn("map", &[other.to_str().unwrap(), "0", "4096"]);
    for h in [&mut hit, &mut elsewhere, &mut opener, &mut bystander] {
        h.skip_to_ready();
    }

    let cfg = Config {
        policy: Policy::Sigbus,
        ..Config::default()
    };
    let report = replay::replay(&cfg, &site(&x), phys, 4096);
    assert!(report.error.is_none(), "{report:?}");
    let ino = common::ino(&victim);
    let owner = report
        .owners
        .iter()
        .find(|o| o.ino == Some(ino))
        .unwrap_or_else(|| panic!("victim inode {ino} not among owners: {report:#?}"));
    assert_eq!(owner.ranges, [(0, 4096)]);
    assert!(owner.paths.iter().any(|p| p == &victim), "{owner:?}");
    assert_eq!(report.owners.len(), 1, "only the victim owns that block");

    let signalled: Vec<i32> = report
        .decisions
        .iter()
        .filter(|d| d.action == Action::Signalled)
        .map(|d| d.pid)
        .collect();
    assert_eq!(signalled, [hit.pid()], "{:#?}", report.decisions);
    let status = hit
        .wait_status(Duration::from_secs(5))
        .expect("the mapper of the damaged page must die");
    assert_eq!(termsig(status), Some(libc::SIGBUS));
    for h in [&elsewhere, &opener, &bystander] {
        assert!(h.alive(), "pid {} must survive", h.pid());
    }
    assert!(
        report.summary().contains("signalled 1"),
        "{}",
        report.summary()
    );
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn a_metadata_hit_is_reported_and_nobody_is_signalled() {
    common::require_root("a_metadata_hit_is_reported_and_nobody_is_signalled");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let f = x.path("f");
    write_file(&f, 16 << 10, 3);
    let mut mapper = Helper::spawn("map", &[f.to_str().unwrap(), "0", "4096"]);
    mapper.skip_to_ready();
    let cfg = Config {
        policy: Policy::Sigkill,
        ..Config::default()
    };
    // Byte 0 of the data device: AG 0's headers.
    let report = replay::replay(&cfg, &site(&x), 0, 4096);
    assert!(report.error.is_none(), "{report:?}");
    assert!(!report.owners.is_empty());
    assert!(report.owners.iter().all(|o| o.metadata), "{report:#?}");
    assert!(report.decisions.is_empty());
    assert!(mapper.alive());
    let text = render(&report);
    assert!(text.contains("metadata"), "{text}");
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn reflinked_extent_kills_the_mappers_of_both_files() {
    common::require_root("reflinked_extent_kills_the_mappers_of_both_files");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let a = x.path("a");
    let b = x.path("b");
    write_file(&a, 16 << 10, 4);
    let out = Command::new("cp")
        .arg("--reflink=always")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(out.success());
    let phys = first_block(&a);
    assert_eq!(first_block(&b), phys, "reflink shares the block");
    let mut ma = Helper::spawn("map", &[a.to_str().unwrap(), "0", "4096"]);
    let mut mb = Helper::spawn("map", &[b.to_str().unwrap(), "0", "4096"]);
    ma.skip_to_ready();
    mb.skip_to_ready();
    let cfg = Config {
        policy: Policy::Sigbus,
        ..Config::default()
    };
    let report = replay::replay(&cfg, &site(&x), phys, 4096);
    let owners: Vec<u64> = report.owners.iter().filter_map(|o| o.ino).collect();
    assert!(
        owners.contains(&common::ino(&a)) && owners.contains(&common::ino(&b)),
        "{report:#?}"
    );
    assert!(report.owners.iter().all(|o| o.shared));
    for h in [&mut ma, &mut mb] {
        let st = h
            .wait_status(Duration::from_secs(5))
            .expect("both mappers die");
        assert_eq!(termsig(st), Some(libc::SIGBUS));
    }
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn resolve_command_names_owner_and_mapper_without_acting() {
    common::require_root("resolve_command_names_owner_and_mapper_without_acting");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let f = x.path("data.bin");
    write_file(&f, 16 << 10, 5);
    let phys = first_block(&f);
    let mut m = Helper::spawn("map", &[f.to_str().unwrap(), "0", "4096"]);
    m.skip_to_ready();
    let out = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(["resolve", "--mount"])
        .arg(&x.mnt)
        .args(["--offset", &format!("{phys:#x}"), "--len", "4096"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("data.bin"), "{text}");
    assert!(text.contains(&format!("process {}", m.pid())), "{text}");
    assert!(m.alive(), "resolve must not act");
    // A filesystem without rmapbt: a clear error naming the fix, non-zero exit.
    let plain = Xfs::new("rmapbt=0,reflink=0");
    let out = Command::new(env!("CARGO_BIN_EXE_notify"))
        .args(["resolve", "--mount"])
        .arg(&plain.mnt)
        .args(["--offset", "0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("rmapbt"), "{text}");
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn a_batch_acts_per_notification_after_one_scan() {
    common::require_root("a_batch_acts_per_notification_after_one_scan");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let (a, b, c) = (x.path("a"), x.path("b"), x.path("c"));
    write_file(&a, 64 << 10, 1);
    write_file(&b, 64 << 10, 2);
    write_file(&c, 64 << 10, 3);
    let mut on_a = Helper::spawn("map", &[a.to_str().unwrap(), "0", "4096"]);
    let mut on_b = Helper::spawn("map", &[b.to_str().unwrap(), "0", "4096"]);
    let mut on_c = Helper::spawn("map", &[c.to_str().unwrap(), "0", "4096"]);
    for h in [&mut on_a, &mut on_b, &mut on_c] {
        h.skip_to_ready();
    }
    let cfg = Config {
        policy: Policy::Sigbus,
        ..Config::default()
    };
    let s = site(&x);
    // Three notifications: a's first page, b's first page, and AG 0's headers. c is not hit.
    let items = [
        (s.clone(), first_block(&a), 4096),
        (s.clone(), first_block(&b), 4096),
        (s, 0, 4096),
    ];
    let reports = replay::replay_batch(&cfg, &items);
    assert_eq!(reports.len(), 3);
    let signalled = |i: usize| -> Vec<i32> {
        reports[i]
            .decisions
            .iter()
            .filter(|d| d.action == Action::Signalled)
            .map(|d| d.pid)
            .collect()
    };
    // Each report carries the decisions about the mappers of its own range only.
    assert_eq!(signalled(0), [on_a.pid()], "{:#?}", reports[0]);
    assert_eq!(signalled(1), [on_b.pid()], "{:#?}", reports[1]);
    // One path index serves the whole pass: each owner still has its own path.
    for (i, f) in [(0, &a), (1, &b)] {
        assert!(
            reports[i].owners.iter().any(|o| o.paths.contains(f)),
            "{:#?}",
            reports[i]
        );
    }
    assert!(reports[2].decisions.is_empty(), "{:#?}", reports[2]);
    assert!(reports[2].owners.iter().all(|o| o.metadata));
    for h in [&mut on_a, &mut on_b] {
        let st = h
            .wait_status(Duration::from_secs(5))
            .expect("a mapper of a damaged page must die");
        assert_eq!(termsig(st), Some(libc::SIGBUS));
    }
    assert!(on_c.alive(), "the mapper of an undamaged file must survive");
}

/// Whether a real XFS takes `XFS_IOC_VERIFY_MEDIA`, asked with an empty range (how a replay
/// finds out without the kernel's symbols): XFS 7.0 and later answer, older ones say ENOTTY.
#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn verify_media_is_asked_of_a_real_xfs_and_matches_the_kernel_release() {
    common::require_root("verify_media_is_asked_of_a_real_xfs_and_matches_the_kernel_release");
    let x = Xfs::new("rmapbt=1");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let major: u32 = release.split('.').next().unwrap().trim().parse().unwrap();
    match notify::agent::tell::answers(&x.mnt) {
        Ok(()) => assert!(major >= 7, "XFS of {release} answered verify-media"),
        Err(notify::agent::tell::TellError::NotOnThisKernel) => {
            assert!(major < 7, "XFS of {release} said ENOTTY")
        }
        Err(e) => panic!("verify-media on {}: {e}", x.mnt.display()),
    }
}
