//! XFS's health monitor (Linux 7.0+): `XFS_IOC_HEALTH_MONITOR` on a filesystem's root directory
//! returns an fd that `read()`s 64-byte records (media errors by device address, sick and healthy
//! metadata, shutdowns, lost-event counts). One monitor per filesystem: a second open gets
//! EEXIST, and xfs_healer (xfsprogs) takes it on hosts that run it. notify opens one only when
//! asked (`--healthmon`), and only where the slot is free.
//!
//! Layouts from fs/xfs/libxfs/xfs_fs.h of Debian's linux-source-7.3 (read there; the research
//! notes list the offsets).

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use notify_model::{Dev, health::Health};
use tokio::io::unix::AsyncFd;

use crate::probe::{fdread::read_ready, fserror::ktime_ns};

/// `_IOW('X', 68, struct xfs_health_monitor)`: 32 bytes.
pub const XFS_IOC_HEALTH_MONITOR: u64 = (1 << 30) | (32 << 16) | ((b'X' as u64) << 8) | 68;
/// One record.
pub const RECORD: usize = 64;

/// `struct xfs_health_monitor`: flags, format (V0 = 0), zero padding.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Request {
    flags: u64,
    format: u8,
    pad: [u8; 23],
}

const _: () = assert!(std::mem::size_of::<Request>() == 32);

const DOMAINS: [&str; 9] = [
    "mount",
    "fs",
    "ag",
    "inode",
    "rtgroup",
    "datadev",
    "rtdev",
    "logdev",
    "filerange",
];
const TYPES: [&str; 13] = [
    "running",
    "lost",
    "unmount",
    "sick",
    "corrupt",
    "healthy",
    "shutdown",
    "media_error",
    "bufread",
    "bufwrite",
    "dioread",
    "diowrite",
    "datalost",
];
const FS_SICK: [&str; 10] = [
    "counters",
    "uquota",
    "gquota",
    "pquota",
    "rt_bitmap",
    "rt_summary",
    "quotacheck",
    "nlinks",
    "metadir",
    "metapath",
];
const AG_SICK: [&str; 11] = [
    "sb", "agf", "agfl", "agi", "bnobt", "cntbt", "inobt", "finobt", "rmapbt", "refcntbt", "inodes",
];
const RTG_SICK: [&str; 5] = ["super", "bitmap", "summary", "rmapbt", "refcntbt"];
const INODE_SICK: [&str; 9] = [
    "core", "bmbtd", "bmbta", "bmbtc", "dir", "xattr", "symlink", "parent", "dirtree",
];
const SHUTDOWN: [&str; 6] = [
    "meta_io_error",
    "log_io_error",
    "force_umount",
    "corrupt_incore",
    "corrupt_ondisk",
    "device_removed",
];

fn bits(mask: u32, names: &[&str]) -> Vec<String> {
    (0..32)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| {
            names
                .get(b as usize)
                .map_or_else(|| format!("bit{b}"), |n| n.to_string())
        })
        .collect()
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().unwrap())
}

/// One record, decoded; None when it is not a whole record.
pub fn decode(rec: &[u8], dev: Dev, mount_point: &Path) -> Option<Health> {
    if rec.len() < RECORD {
        return None;
    }
    let (domain, kind) = (u32_at(rec, 0), u32_at(rec, 4));
    let name = |table: &[&str], v: u32| {
        table
            .get(v as usize)
            .map_or_else(|| v.to_string(), |s| s.to_string())
    };
    let mut h = Health::new(
        ktime_ns(),
        u64_at(rec, 8),
        dev,
        mount_point.to_path_buf(),
        name(&DOMAINS, domain),
        name(&TYPES, kind),
    );
    match (domain, kind) {
        (0, 1) => h.lost = Some(u64_at(rec, 16)),
        (0, 6) => h.reasons = bits(u32_at(rec, 16), &SHUTDOWN),
        (1, 3..=5) => h.structures = bits(u32_at(rec, 16), &FS_SICK),
        (2 | 4, 3..=5) => {
            let table: &[&str] = if domain == 2 { &AG_SICK } else { &RTG_SICK };
            h.structures = bits(u32_at(rec, 16), table);
            h.group = Some(u32_at(rec, 20));
        }
        (3, 3..=5) => {
            h.structures = bits(u32_at(rec, 16), &INODE_SICK);
            h.generation = Some(u32_at(rec, 20));
            h.ino = Some(u64_at(rec, 24));
        }
        (5..=7, 7) => {
            h.daddr = Some(u64_at(rec, 16));
            h.sectors = Some(u64_at(rec, 24));
        }
        (8, 8..=12) => {
            h.pos = Some(u64_at(rec, 16));
            h.len = Some(u64_at(rec, 24));
            h.ino = Some(u64_at(rec, 32));
            h.generation = Some(u32_at(rec, 40));
            h.error = Some(u32_at(rec, 44));
        }
        _ => {}
    }
    Some(h)
}

/// Why a monitor could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another client holds the filesystem's monitor (EEXIST): xfs_healer, or another tool.
    Held,
    /// This kernel's XFS has no health monitor (ENOTTY).
    NotOnThisKernel,
    Io(io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Held => f.write_str(
                "another client holds this filesystem's health monitor (one per filesystem: \
                 xfs_healer takes it); notify does not take it",
            ),
            OpenError::NotOnThisKernel => {
                f.write_str("not on this kernel: XFS_IOC_HEALTH_MONITOR is Linux 7.0 and later")
            }
            OpenError::Io(e) => write!(f, "XFS_IOC_HEALTH_MONITOR: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// A filesystem's monitor, held.
pub struct Monitor {
    fd: AsyncFd<OwnedFd>,
    pub dev: Dev,
    pub mount_point: PathBuf,
    partial: Vec<u8>,
}

impl Monitor {
    /// Opens the monitor of the XFS mounted at `mount_point` (its root directory). Needs
    /// CAP_SYS_ADMIN in the initial user namespace.
    pub fn open(mount_point: &Path, dev: Dev) -> Result<Monitor, OpenError> {
        let root = File::open(mount_point).map_err(OpenError::Io)?;
        let mut req = Request::default();
        // SAFETY: req is a valid 32-byte struct for the call; the result is a new fd or -1.
        let fd = unsafe {
            libc::ioctl(
                root.as_raw_fd(),
                XFS_IOC_HEALTH_MONITOR as libc::c_ulong,
                &mut req as *mut Request,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EEXIST) => OpenError::Held,
                Some(libc::ENOTTY) => OpenError::NotOnThisKernel,
                _ => OpenError::Io(e),
            });
        }
        // SAFETY: a new fd we own; make it non-blocking for the runtime.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        // SAFETY: the AsyncFd owns the fd, which stays open while registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| OpenError::Io(io::Error::other(e.to_string())))?;
        Ok(Monitor {
            fd,
            dev,
            mount_point: mount_point.to_path_buf(),
            partial: Vec::new(),
        })
    }

    /// Waits for records and returns them; an empty vector at end of file (the filesystem was
    /// unmounted). Cancel-safe.
    pub async fn read(&mut self) -> io::Result<Option<Vec<Health>>> {
        let mut buf = vec![0u8; RECORD * 64];
        let n = read_ready(&self.fd, &mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        self.partial.extend_from_slice(&buf[..n]);
        let whole = self.partial.len() / RECORD * RECORD;
        let (dev, mnt) = (self.dev, self.mount_point.clone());
        let recs: Vec<Health> = self.partial[..whole]
            .chunks(RECORD)
            .filter_map(|r| decode(r, dev, &mnt))
            .collect();
        self.partial.drain(..whole);
        Ok(Some(recs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(domain: u32, kind: u32, words: &[(usize, u64)]) -> Vec<u8> {
        let mut r = vec![0u8; RECORD];
        r[0..4].copy_from_slice(&domain.to_ne_bytes());
        r[4..8].copy_from_slice(&kind.to_ne_bytes());
        r[8..16].copy_from_slice(&1_700_000_000_000_000_000u64.to_ne_bytes());
        for &(o, v) in words {
            r[o..o + 8].copy_from_slice(&v.to_ne_bytes());
        }
        r
    }

    #[test]
    fn records_decode_by_domain_and_type() {
        let dev = Dev::new(259, 0);
        let mnt = Path::new("/mnt");
        let m = decode(&rec(5, 7, &[(16, 2048), (24, 8)]), dev, mnt).unwrap();
        assert_eq!(
            (m.domain.as_str(), m.what.as_str()),
            ("datadev", "media_error")
        );
        assert_eq!((m.daddr, m.sectors), (Some(2048), Some(8)));
        let s = decode(&rec(0, 6, &[(16, 0x10)]), dev, mnt).unwrap();
        assert_eq!(s.reasons, ["corrupt_ondisk"]);
        let f = decode(
            &rec(
                8,
                12,
                &[(16, 4096), (24, 4096), (32, 131), (40, 7 | (5 << 32))],
            ),
            dev,
            mnt,
        )
        .unwrap();
        assert_eq!(
            (f.what.as_str(), f.ino, f.generation, f.error),
            ("datalost", Some(131), Some(7), Some(5))
        );
        let g = decode(&rec(2, 3, &[(16, 0x102 | (3 << 32))]), dev, mnt).unwrap();
        assert_eq!(
            (g.structures.clone(), g.group),
            (vec!["agf".to_string(), "rmapbt".to_string()], Some(3))
        );
        assert!(decode(&[0u8; 10], dev, mnt).is_none());
        let odd = decode(&rec(42, 99, &[]), dev, mnt).unwrap();
        assert_eq!((odd.domain.as_str(), odd.what.as_str()), ("42", "99"));
    }

    #[test]
    fn ioctl_number() {
        assert_eq!(XFS_IOC_HEALTH_MONITOR, 0x4020_5844);
    }
}
