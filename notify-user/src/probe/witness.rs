//! A witness of XFS's reports for one conversation with it: a fanotify group of the caller's
//! own, marked on one filesystem and read synchronously.
//!
//! Why not the stream's group: fanotify keeps one unread error event per group and filesystem
//! and folds later reports into it (only `error_count` grows; the first file is the one
//! named). Seen on 7.3: three ranges told back to back gave the stream one event naming the
//! first file, error_count 3. The agent reads its witness after every read XFS failed, before
//! the next, so each owner is named.

use std::{
    collections::BTreeSet,
    io,
    os::fd::{AsRawFd, OwnedFd},
    path::Path,
    time::{Duration, Instant},
};

use crate::probe::fserror::{self, RawFsError};

/// What the witness saw: data-loss reports by inode, and reports fanotify folded into another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub inos: BTreeSet<u64>,
    pub merged: u32,
}

impl Seen {
    /// Adds the events read (other filesystems' cannot be marked here: one mark).
    pub fn add(&mut self, raw: &[RawFsError]) {
        for r in raw {
            // EIO with a file: data lost (the only report verify-media makes for a file).
            if r.error == libc::EIO
                && let Some(ino) = r.ino
            {
                self.inos.insert(ino);
            }
            self.merged += r.error_count.saturating_sub(1);
        }
    }
}

pub struct Witness {
    fd: OwnedFd,
}

impl Witness {
    /// A group marked on the filesystem mounted at `mount_point`.
    pub fn open(mount_point: &Path) -> io::Result<Witness> {
        let fd = fserror::group()?;
        fserror::mark(&fd, mount_point)?;
        Ok(Witness { fd })
    }

    /// Reads what is queued now, without waiting.
    fn drain(&self, seen: &mut Seen) -> io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            if n == 0 {
                return Ok(());
            }
            seen.add(&fserror::parse(&buf[..n as usize]).0);
        }
    }

    /// Reads reports until every inode of `want` is in `seen` or `wait` has passed (the
    /// reports come from a kworker after the ioctl returns). With nothing wanted, only reads
    /// what is queued.
    pub fn until(&self, want: &BTreeSet<u64>, wait: Duration, seen: &mut Seen) -> io::Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            self.drain(seen)?;
            let now = Instant::now();
            if want.is_subset(&seen.inos) || now >= deadline {
                return Ok(());
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, ms) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ino: Option<u64>, error: i32, count: u32) -> RawFsError {
        RawFsError {
            mask: 0x8000,
            fsid: [0, 0],
            handle_type: 0x81,
            handle: vec![],
            ino,
            generation: None,
            error,
            error_count: count,
        }
    }

    #[test]
    fn data_loss_by_inode_and_folded_reports_counted() {
        let mut s = Seen::default();
        s.add(&[
            raw(Some(131), 5, 3),
            raw(None, 108, 1),
            raw(Some(7), 117, 1),
        ]);
        assert_eq!(s.inos, BTreeSet::from([131]));
        assert_eq!(s.merged, 2);
    }
}
