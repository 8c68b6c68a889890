//! XFS's own error reports (Linux 7.0+): fserror, which fanotify delivers as FAN_FS_ERROR to
//! every listener marked on a filesystem. notify marks each XFS it watches and reads the events
//! beside the ring buffer.
//!
//! What an event says (fs/notify/fanotify, 7.3; /work/notes read in the source): a 24-byte
//! `fanotify_event_metadata` (mask FAN_FS_ERROR, no fd, the pid of the kworker that reported
//! it), then info records walked by their length: a FID record (fsid, then a `file_handle`:
//! for XFS type 0x81 = u64 ino + u32 gen, type 1 = u32 ino + u32 gen, 0xff = no file) and an
//! ERROR record (positive errno, count of merged reports). No file range: XFS's health monitor
//! has that. Unread error events of one filesystem from one kworker merge into the first one
//! (its file and errno kept, `error_count` counting them all).

use std::{
    collections::HashMap,
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use notify_model::{
    Dev,
    fserror::{FsError, FsErrorKind},
};
use tokio::io::unix::AsyncFd;

use crate::probe::fdread::read_ready;

const FAN_FS_ERROR: u64 = 0x8000;
const FAN_Q_OVERFLOW: u64 = 0x4000;
const METADATA_LEN: usize = 24;
const INFO_FID: u8 = 1;
const INFO_ERROR: u8 = 5;
/// XFS handle types (fs/xfs/xfs_export.c): 32-bit inode and generation; the same with a 64-bit
/// inode number; no file.
const FILEID_INO32_GEN: i32 = 1;
const XFS_FILEID_INO64_GEN: i32 = 0x81;

/// One event as read, before it is tied to a mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFsError {
    pub mask: u64,
    /// `f_fsid` of the filesystem (`statfs`).
    pub fsid: [i32; 2],
    pub handle_type: i32,
    /// The handle's bytes (kept to open the file by handle).
    pub handle: Vec<u8>,
    pub ino: Option<u64>,
    pub generation: Option<u32>,
    pub error: i32,
    pub error_count: u32,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// The events in a buffer `read()` filled. Records that are cut short or not error events are
/// skipped (counted in the second value), never a panic.
pub fn parse(buf: &[u8]) -> (Vec<RawFsError>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut pos = 0;
    while pos + METADATA_LEN <= buf.len() {
        let Some(len) = u32_at(buf, pos).map(|l| l as usize) else {
            break;
        };
        let metadata_len = u16_at(buf, pos + 6).unwrap_or(0) as usize;
        if len < METADATA_LEN || metadata_len < METADATA_LEN || pos + len > buf.len() {
            skipped += 1;
            break;
        }
        let ev = &buf[pos..pos + len];
        pos += len;
        let mask = u64_at(ev, 8).unwrap_or(0);
        if mask & FAN_FS_ERROR == 0 {
            skipped += 1;
            continue;
        }
        let mut e = RawFsError {
            mask,
            fsid: [0, 0],
            handle_type: 0xff,
            handle: Vec::new(),
            ino: None,
            generation: None,
            error: 0,
            error_count: 0,
        };
        let mut i = metadata_len;
        while i + 4 <= ev.len() {
            let info_type = ev[i];
            let info_len = u16_at(ev, i + 2).unwrap_or(0) as usize;
            if info_len < 4 || i + info_len > ev.len() {
                break;
            }
            let rec = &ev[i..i + info_len];
            match info_type {
                INFO_FID => {
                    e.fsid = [
                        u32_at(rec, 4).unwrap_or(0) as i32,
                        u32_at(rec, 8).unwrap_or(0) as i32,
                    ];
                    let bytes = u32_at(rec, 12).unwrap_or(0) as usize;
                    e.handle_type = u32_at(rec, 16).map(|t| t as i32).unwrap_or(0xff);
                    if let Some(h) = rec.get(20..20 + bytes) {
                        e.handle = h.to_vec();
                    }
                    match (e.handle_type, e.handle.len()) {
                        (XFS_FILEID_INO64_GEN, n) if n >= 12 => {
                            e.ino = u64_at(&e.handle, 0);
                            e.generation = u32_at(&e.handle, 8);
                        }
                        (FILEID_INO32_GEN, n) if n >= 8 => {
                            e.ino = u32_at(&e.handle, 0).map(u64::from);
                            e.generation = u32_at(&e.handle, 4);
                        }
                        _ => {}
                    }
                }
                INFO_ERROR => {
                    e.error = u32_at(rec, 4).unwrap_or(0) as i32;
                    e.error_count = u32_at(rec, 8).unwrap_or(0);
                }
                _ => {}
            }
            i += info_len;
        }
        out.push(e);
    }
    (out, skipped)
}

/// A watched filesystem.
#[derive(Clone, Debug)]
struct Watched {
    dev: Dev,
    mount_point: PathBuf,
}

/// The fanotify group notify reads FAN_FS_ERROR from, and the filesystems marked in it.
pub struct FsErrors {
    fd: AsyncFd<OwnedFd>,
    by_fsid: HashMap<[i32; 2], Watched>,
    /// Events that named no filesystem we watch, or that fanotify could not queue.
    pub unmatched: u64,
    pub overflows: u64,
}

/// A new fanotify group for error events (non-blocking reads). Needs CAP_SYS_ADMIN.
pub fn group() -> io::Result<OwnedFd> {
    let flags = libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_FID | libc::FAN_CLOEXEC;
    // SAFETY: plain syscall.
    let fd = unsafe {
        libc::fanotify_init(
            flags | libc::FAN_NONBLOCK,
            (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Marks the whole filesystem mounted at `mount_point` for FAN_FS_ERROR in `group`.
pub fn mark(group: &OwnedFd, mount_point: &Path) -> io::Result<()> {
    let c = CString::new(mount_point.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path with a NUL byte"))?;
    // SAFETY: valid fd and C string.
    let rc = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            FAN_FS_ERROR,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `f_fsid` of the filesystem holding `path`.
pub fn fsid_of(path: &Path) -> io::Result<[i32; 2]> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path with a NUL byte"))?;
    // SAFETY: statfs fills the struct; c is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsid_t is two ints; read them as such.
    let raw: [i32; 2] = unsafe { std::mem::transmute(st.f_fsid) };
    Ok(raw)
}

impl FsErrors {
    /// A new group, non-blocking, registered with the runtime. Needs CAP_SYS_ADMIN.
    pub fn open() -> io::Result<FsErrors> {
        let fd = group()?;
        // SAFETY: the AsyncFd owns the fd, which stays open while registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(FsErrors {
            fd,
            by_fsid: HashMap::new(),
            unmatched: 0,
            overflows: 0,
        })
    }

    /// Marks the filesystem mounted at `mount_point` (device `dev`). Marking twice is harmless.
    pub fn watch(&mut self, mount_point: &Path, dev: Dev) -> io::Result<()> {
        mark(self.fd.get_ref(), mount_point)?;
        let fsid = fsid_of(mount_point)?;
        self.by_fsid.insert(
            fsid,
            Watched {
                dev,
                mount_point: mount_point.to_path_buf(),
            },
        );
        Ok(())
    }

    /// The filesystems marked, as (device, mount point).
    pub fn watched(&self) -> Vec<(Dev, PathBuf)> {
        let mut v: Vec<_> = self
            .by_fsid
            .values()
            .map(|w| (w.dev, w.mount_point.clone()))
            .collect();
        v.sort();
        v
    }

    /// Waits until events are queued and returns them. Cancel-safe: nothing is read before the
    /// wait completes.
    pub async fn read(&mut self) -> io::Result<Vec<FsError>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = read_ready(&self.fd, &mut buf).await?;
        let (raw, _) = parse(&buf[..n]);
        Ok(self.resolve(raw))
    }

    /// Ties raw events to the watched filesystems and names their files.
    fn resolve(&mut self, raw: Vec<RawFsError>) -> Vec<FsError> {
        let now = ktime_ns();
        let mut out = Vec::new();
        for r in raw {
            if r.mask & FAN_Q_OVERFLOW != 0 {
                self.overflows += 1;
            }
            let Some(w) = self.by_fsid.get(&r.fsid) else {
                self.unmatched += 1;
                log::warn!(
                    "FAN_FS_ERROR for an unwatched filesystem (fsid {:?})",
                    r.fsid
                );
                continue;
            };
            let path = r
                .ino
                .and_then(|_| path_by_handle(&w.mount_point, r.handle_type, &r.handle));
            out.push(FsError {
                ktime_ns: now,
                dev: w.dev,
                mount_point: w.mount_point.clone(),
                what: FsErrorKind::of(r.error, r.ino.is_some()),
                error: r.error,
                error_count: r.error_count,
                ino: r.ino,
                generation: r.generation,
                path,
                notification_seq: None,
            });
        }
        out
    }
}

/// CLOCK_MONOTONIC now, as the kernel events' `ktime_ns`.
pub fn ktime_ns() -> u64 {
    // SAFETY: clock_gettime fills the timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The path of a file by its handle: `open_by_handle_at` on the mount (O_PATH), then the
/// proc link. None when the file is gone (ESTALE) or its dentry is not connected to a name.
fn path_by_handle(mount_point: &Path, handle_type: i32, handle: &[u8]) -> Option<PathBuf> {
    let c = CString::new(mount_point.as_os_str().as_bytes()).ok()?;
    // SAFETY: plain syscalls with valid arguments; the fds are closed by OwnedFd.
    let mount_fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if mount_fd < 0 {
        return None;
    }
    let mount_fd = unsafe { OwnedFd::from_raw_fd(mount_fd) };
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut fh = Vec::with_capacity(8 + handle.len());
    fh.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
    fh.extend_from_slice(&handle_type.to_ne_bytes());
    fh.extend_from_slice(handle);
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            fh.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    // A disconnected dentry reads as "/" or with a " (deleted)" suffix: no name to give.
    let s = p.to_string_lossy();
    (p.starts_with(mount_point) && p != mount_point && !s.ends_with(" (deleted)")).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One FAN_FS_ERROR as fanotify lays it out (fs/notify/fanotify/fanotify_user.c, 7.3): the
    /// metadata, a FID record with an XFS 0x81 handle, an ERROR record.
    fn event(handle_type: i32, handle: &[u8], error: i32, count: u32) -> Vec<u8> {
        let fid_len = (12 + 8 + handle.len()).div_ceil(4) * 4;
        let len = METADATA_LEN + fid_len + 12;
        let mut b = Vec::new();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.push(3); // vers
        b.push(0);
        b.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        b.extend_from_slice(&FAN_FS_ERROR.to_ne_bytes());
        b.extend_from_slice(&(-1i32).to_ne_bytes()); // FAN_NOFD
        b.extend_from_slice(&77i32.to_ne_bytes()); // a kworker's pid
        b.push(INFO_FID);
        b.push(0);
        b.extend_from_slice(&(fid_len as u16).to_ne_bytes());
        b.extend_from_slice(&0x10300i32.to_ne_bytes()); // fsid: new_encode_dev(259:0)
        b.extend_from_slice(&0i32.to_ne_bytes());
        b.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        b.extend_from_slice(&handle_type.to_ne_bytes());
        b.extend_from_slice(handle);
        while b.len() < METADATA_LEN + fid_len {
            b.push(0);
        }
        b.push(INFO_ERROR);
        b.push(0);
        b.extend_from_slice(&12u16.to_ne_bytes());
        b.extend_from_slice(&error.to_ne_bytes());
        b.extend_from_slice(&count.to_ne_bytes());
        assert_eq!(b.len(), len);
        b
    }

    #[test]
    fn data_lost_shutdown_and_inode32_events_decode() {
        let mut h = 131u64.to_ne_bytes().to_vec();
        h.extend_from_slice(&7u32.to_ne_bytes());
        let mut buf = event(XFS_FILEID_INO64_GEN, &h, 5, 1);
        assert_eq!(buf.len(), 68, "an XFS data-loss event is 68 bytes");
        buf.extend(event(0xff, &[], 108, 1));
        let mut h32 = 99u32.to_ne_bytes().to_vec();
        h32.extend_from_slice(&3u32.to_ne_bytes());
        buf.extend(event(FILEID_INO32_GEN, &h32, 117, 2));
        let (evs, skipped) = parse(&buf);
        assert_eq!(skipped, 0);
        assert_eq!(evs.len(), 3);
        assert_eq!(
            (evs[0].ino, evs[0].generation, evs[0].error, evs[0].fsid),
            (Some(131), Some(7), 5, [0x10300, 0])
        );
        assert_eq!(FsErrorKind::of(evs[0].error, true), FsErrorKind::DataLost);
        assert_eq!((evs[1].ino, evs[1].error), (None, 108));
        assert_eq!(FsErrorKind::of(evs[1].error, false), FsErrorKind::Shutdown);
        assert_eq!((evs[2].ino, evs[2].error_count), (Some(99), 2));
    }

    #[test]
    fn cut_and_foreign_records_are_skipped_not_a_panic() {
        let mut h = 131u64.to_ne_bytes().to_vec();
        h.extend_from_slice(&7u32.to_ne_bytes());
        let whole = event(XFS_FILEID_INO64_GEN, &h, 5, 1);
        for cut in 0..whole.len() {
            let (evs, _) = parse(&whole[..cut]);
            assert!(evs.is_empty(), "a cut event decoded at {cut}");
        }
        let mut other = whole.clone();
        other[8..16].copy_from_slice(&0x2u64.to_ne_bytes()); // FAN_MODIFY
        let (evs, skipped) = parse(&other);
        assert!(evs.is_empty());
        assert_eq!(skipped, 1);
        // A length that runs past the buffer.
        let mut bad = whole;
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse(&bad).0.len(), 0);
    }
}
