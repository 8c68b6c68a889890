//! Where a block device is mounted, from `/proc/self/mountinfo`.
//!
//! Replay needs a path on the filesystem to issue `FS_IOC_GETFSMAP` and to resolve owner paths;
//! the kernel events give the device number only.

use std::{fs, io, path::PathBuf};

use notify_model::Dev;

/// One line of mountinfo (the fields replay uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dev: Dev,
    /// Path of the filesystem root within its device (`/` unless a bind mount of a subtree).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    pub options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space). The kernel escapes one byte, so the
/// first digit is 0-3; anything above `\377` is not an escape and stays as written (it used to
/// overflow the byte: found by the mountinfo fuzz target).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text. Malformed lines are skipped: the file is the kernel's, a line we cannot
/// read is not worth failing a replay over.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // id parent maj:min root mount_point options [optional...] - fstype source super_opts
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 2 {
                return None;
            }
            let (maj, min) = l[2].split_once(':')?;
            let (maj, min): (u32, u32) = (maj.parse().ok()?, min.parse().ok()?);
            Some(Mount {
                dev: Dev((maj << 20) | min),
                root: unescape(l[3]),
                mount_point: PathBuf::from(unescape(l[4])),
                fstype: r[0].to_string(),
                source: unescape(r[1]),
                options: r.get(2).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// All current mounts.
pub fn read() -> io::Result<Vec<Mount>> {
    Ok(parse(&fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mount of `dev` whose root is the filesystem's root (so that paths under it cover the
/// whole filesystem); the first one if there are several.
pub fn find(mounts: &[Mount], dev: Dev) -> Option<&Mount> {
    mounts
        .iter()
        .filter(|m| m.dev == dev)
        .find(|m| m.root == "/")
        .or_else(|| mounts.iter().find(|m| m.dev == dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 259:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
95 22 7:0 / /tmp/notify\\040test/mnt rw,relatime shared:50 - xfs /dev/loop0 rw,attr2,inode64
96 22 7:0 /sub /srv/bind rw,relatime shared:50 - xfs /dev/loop0 rw
97 22 259:3 / /mnt rw,relatime - xfs /dev/pmem0 rw,attr2,dax=always,inode64
garbage line
";

    #[test]
    fn parses_devices_paths_and_types() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].dev, Dev(7 << 20));
        assert_eq!(m[1].mount_point, PathBuf::from("/tmp/notify test/mnt"));
        assert_eq!(m[1].fstype, "xfs");
        assert_eq!(m[3].source, "/dev/pmem0");
        assert!(m[3].options.contains("dax=always"));
    }

    #[test]
    fn find_prefers_the_mount_of_the_whole_filesystem() {
        let m = parse(SAMPLE);
        let loop0 = find(&m, Dev(7 << 20)).unwrap();
        assert_eq!(loop0.root, "/");
        assert!(find(&m, Dev((8 << 20) | 1)).is_none());
    }

    #[test]
    fn escapes_past_one_byte_stay_as_written() {
        // The fuzz target's crash, reduced: `\777` is not a byte the kernel could have escaped.
        let m = parse("36 35 259:0 /a\\777 /mnt\\377x rw - xfs /dev/pmem0 rw\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].root, "/a\\777");
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt\u{fffd}x"));
    }

    #[test]
    fn the_real_mountinfo_has_the_root_mount() {
        let m = read().unwrap();
        assert!(m.iter().any(|m| m.mount_point == std::path::Path::new("/")));
    }
}
