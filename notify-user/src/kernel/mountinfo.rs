//! Where a block device is mounted, from `/proc/self/mountinfo`.
//!
//! Replay needs a path on the filesystem to issue `FS_IOC_GETFSMAP` and to resolve owner paths;
//! the kernel events give the device number only.

use std::{ffi::OsString, fs, io, os::unix::ffi::OsStringExt, path::PathBuf};

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
/// overflow the byte: found by the mountinfo fuzz target). Bytes, not text: the kernel escapes
/// only space, tab, newline and backslash and writes every other byte of a path as it is, so a
/// mount point need not be UTF-8.
fn unescape(b: &[u8]) -> Vec<u8> {
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
    out
}

/// A field shown to people (root, source): text, with any non-UTF-8 byte replaced.
fn unescape_text(b: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(b)).into_owned()
}

/// The kernel's own device number of a `MAJOR:MINOR` field: 12 bits of major, 20 of minor
/// (`MINORBITS`), the encoding of the events' `s_dev`. A field outside it is not a device the
/// kernel could have written: the line is malformed, not a device to alias onto another (a
/// major above 4095 used to shift into the minor's neighbours: found by the fuzz target).
fn dev_field(f: &[u8]) -> Option<Dev> {
    let f = std::str::from_utf8(f).ok()?;
    let (maj, min) = f.split_once(':')?;
    let (maj, min): (u32, u32) = (maj.parse().ok()?, min.parse().ok()?);
    // Checked before the shift, which would overflow for a major past 12 bits.
    if maj < 1 << 12 && min < 1 << 20 {
        Some(Dev((maj << 20) | min))
    } else {
        None
    }
}

/// Parses mountinfo. Malformed lines are skipped: the file is the kernel's, a line we cannot
/// read is not worth failing a replay over. Bytes in (`&str` works too): one mount point that
/// is not UTF-8 must not hide every other mount.
pub fn parse(text: impl AsRef<[u8]>) -> Vec<Mount> {
    text.as_ref()
        .split(|&c| c == b'\n')
        .filter_map(|line| {
            // id parent maj:min root mount_point options [optional...] - fstype source super_opts
            let sep = line.windows(3).position(|w| w == b" - ")?;
            let (left, right) = (&line[..sep], &line[sep + 3..]);
            let l: Vec<&[u8]> = left.split(|&c| c == b' ').collect();
            let r: Vec<&[u8]> = right.split(|&c| c == b' ').collect();
            if l.len() < 6 || r.len() < 2 {
                return None;
            }
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            Some(Mount {
                dev: dev_field(l[2])?,
                root: unescape_text(l[3]),
                mount_point: PathBuf::from(OsString::from_vec(unescape(l[4]))),
                fstype: text(r[0]),
                source: unescape_text(r[1]),
                options: r.get(2).map(|s| text(s)).unwrap_or_default(),
            })
        })
        .collect()
}

/// All current mounts.
pub fn read() -> io::Result<Vec<Mount>> {
    Ok(parse(fs::read("/proc/self/mountinfo")?))
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
        // `\377` is one byte, 0xff: kept as it is, not replaced.
        assert_eq!(
            m[0].mount_point,
            PathBuf::from(OsString::from_vec(b"/mnt\xffx".to_vec()))
        );
    }

    #[test]
    fn a_mount_point_that_is_not_utf8_is_kept_byte_for_byte() {
        let mut text = b"36 35 7:1 / /mnt/a\xfe\xffb rw - xfs /dev/loop1 rw\n".to_vec();
        text.extend_from_slice(SAMPLE.as_bytes());
        let m = parse(&text);
        assert_eq!(m.len(), 5, "the other mounts are still there");
        assert_eq!(m[0].dev, Dev((7 << 20) | 1));
        assert_eq!(
            m[0].mount_point,
            PathBuf::from(OsString::from_vec(b"/mnt/a\xfe\xffb".to_vec()))
        );
    }

    #[test]
    fn device_numbers_outside_the_kernels_encoding_are_malformed_lines() {
        // 4096:0 would have shifted into 0:0's neighbourhood; 0:1048576 into major 1.
        for dev in ["4096:0", "0:1048576", "7:", "x:1", "7:1:2"] {
            let line = format!("36 35 {dev} / /mnt rw - xfs /dev/pmem0 rw\n");
            assert!(parse(&line).is_empty(), "{dev} must not parse");
        }
        let m = parse("36 35 4095:1048575 / /mnt rw - xfs /dev/pmem0 rw\n");
        assert_eq!(m[0].dev, Dev(u32::MAX));
    }

    #[test]
    fn the_real_mountinfo_has_the_root_mount() {
        let m = read().unwrap();
        assert!(m.iter().any(|m| m.mount_point == std::path::Path::new("/")));
    }
}
