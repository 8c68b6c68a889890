//! The kernel's own mountinfo, with a mount point that is not UTF-8: the kernel writes a path's
//! bytes as they are (escaping only space, tab, newline and backslash), so reading mountinfo as
//! text failed for every mount as soon as one such mount existed anywhere on the host.

mod common;

use std::{
    ffi::OsStr,
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    process::Command,
};

use notify::kernel::mountinfo;
use notify_model::Dev;

#[test]
#[ignore = "needs root (mount): run as root with --include-ignored"]
fn mounts_are_read_when_a_mount_point_is_not_utf8() {
    common::require_root("mounts_are_read_when_a_mount_point_is_not_utf8");
    let dir = common::TempDir::new("mountinfo");
    // Latin-1 "é", a space (escaped by the kernel as \040) and a byte no UTF-8 has.
    let mnt = dir.path().join(OsStr::from_bytes(b"caf\xe9 \xff"));
    fs::create_dir(&mnt).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "notify-mountinfo-test"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs at {mnt:?}");
    struct Umount<'a>(&'a std::path::Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _umount = Umount(&mnt);

    let raw = fs::read("/proc/self/mountinfo").unwrap();
    assert!(
        std::str::from_utf8(&raw).is_err(),
        "the kernel wrote the mount point's bytes as they are"
    );
    let mounts = mountinfo::read().expect("mountinfo read despite the non-UTF-8 mount point");
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_point == std::path::Path::new("/"))
    );
    let dev = Dev::from_user(fs::metadata(&mnt).unwrap().dev());
    let m = mountinfo::find(&mounts, dev).expect("the tmpfs is found by its device");
    assert_eq!(m.mount_point, mnt, "byte for byte, space unescaped");
    assert_eq!(m.fstype, "tmpfs");
    assert_eq!(m.source, "notify-mountinfo-test");
}
