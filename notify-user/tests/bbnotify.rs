//! The agent's wait for the pmem driver's bad-block notifications, on a real kernfs file. The
//! pmem driver notifies `/sys/block/pmemN/badblocks` with `sysfs_notify_dirent()`, which is
//! `kernfs_notify()`; this host has no pmem, and the VM lab's emulated pmem (e820, no ACPI
//! NFIT) never notifies (it has no background scan, and clearing poison needs the platform's
//! DSM). cgroup v2's `cgroup.events` is notified through the same `kernfs_notify()` when a
//! cgroup becomes populated or empty, so it drives the same wait here, for real.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use notify::{kernel::mountinfo, probe::bbnotify::BadblocksNotify};

mod common;

/// The cgroup v2 hierarchy (`/sys/fs/cgroup` or, on a hybrid host, `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> PathBuf {
    mountinfo::read()
        .unwrap()
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.mount_point)
        .expect("a cgroup2 mount (the test drives kernfs_notify through cgroup.events)")
}

/// A fresh cgroup, removed on drop (after its processes are gone).
struct Cgroup(PathBuf);
impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

async fn notified_within(w: &mut BadblocksNotify, t: Duration) -> bool {
    tokio::time::timeout(t, w.wait()).await.is_ok()
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs root (a cgroup): run as root with --include-ignored"]
async fn a_kernfs_notification_wakes_the_wait_and_reading_disarms_it() {
    common::require_root("a_kernfs_notification_wakes_the_wait_and_reading_disarms_it");
    let cg = Cgroup(cgroup2_root().join(format!("notify-bbnotify-{}", std::process::id())));
    fs::create_dir(&cg.0).unwrap();
    let events = cg.0.join("cgroup.events");
    let mut w = BadblocksNotify::new().unwrap();
    w.watch("cg", &events).unwrap();
    assert!(w.watches("cg"));

    // Nothing changed: no wakeup (what keeps an idle agent asleep).
    assert!(!notified_within(&mut w, Duration::from_millis(500)).await);
    assert!(w.take_changed().is_empty());

    // A process moves in: populated 0 -> 1, the kernel notifies the file.
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    fs::write(cg.0.join("cgroup.procs"), child.id().to_string()).unwrap();
    assert!(
        notified_within(&mut w, Duration::from_secs(5)).await,
        "the kernel's notification of {} woke the wait",
        events.display()
    );
    assert_eq!(w.take_changed(), vec!["cg".to_string()]);
    assert!(fs::read_to_string(&events).unwrap().contains("populated 1"));

    // Read once by the wait: quiet again until the next change.
    assert!(!notified_within(&mut w, Duration::from_millis(500)).await);

    // The process leaves: populated 1 -> 0, notified again.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(notified_within(&mut w, Duration::from_secs(5)).await);
    assert_eq!(w.take_changed(), vec!["cg".to_string()]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_list_that_cannot_be_opened_is_an_error_and_watch_all_leaves_it() {
    let mut w = BadblocksNotify::new().unwrap();
    let missing = Path::new("/sys/block/pmem-notify-test-none/badblocks");
    assert!(w.watch("none", missing).is_err());
    w.watch_all(&[("none".to_string(), missing.to_path_buf())]);
    assert!(!w.watches("none"));
    assert_eq!(w.watched().count(), 0);
}
