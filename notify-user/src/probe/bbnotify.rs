//! The pmem driver's word that a bad-block list changed.
//!
//! The driver calls `sysfs_notify_dirent()` on `/sys/block/pmemN/badblocks` when it revalidates
//! the list after the platform's background scan (ARS: `pmem_revalidate_poison`, also after a
//! machine check, which asks the platform for a scan) and when it clears poison
//! (`pmem_clear_bb`). A kernfs file that was notified polls as `POLLPRI | POLLERR` until it is
//! read again; the agent waits for that instead of reading every list on a timer, so an idle
//! agent is never woken. What the driver does not announce: a list written by hand through the
//! same file (`badblocks_store` only edits the list), which is what the VM lab does, and what
//! `--badblocks-rescan SECONDS` is for.
//!
//! One epoll set holds every list's file and is itself the one descriptor tokio waits on: a
//! host has a handful of pmem disks, and the set is readable whenever one of them is notified.

use std::{
    collections::BTreeSet,
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use tokio::io::unix::AsyncFd;

/// The watched lists and their epoll set.
pub struct BadblocksNotify {
    set: AsyncFd<OwnedFd>,
    /// (name, path, open file); the index is the epoll cookie.
    files: Vec<(String, PathBuf, File)>,
    /// Lists notified since the last [`Self::take_changed`].
    changed: BTreeSet<String>,
    /// Lists that could not be watched (said once, not retried).
    refused: BTreeSet<String>,
}

impl BadblocksNotify {
    /// An empty set (lists are added with [`Self::watch`]). Needs a tokio runtime.
    pub fn new() -> io::Result<BadblocksNotify> {
        // SAFETY: plain syscall; the result is checked and owned right away.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the set's fd, which stays open while registered.
        let set = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(BadblocksNotify {
            set,
            files: Vec::new(),
            changed: BTreeSet::new(),
            refused: BTreeSet::new(),
        })
    }

    /// Whether `name` is watched already.
    pub fn watches(&self, name: &str) -> bool {
        self.files.iter().any(|(n, ..)| n == name)
    }

    /// Names watched, in the order they were added.
    pub fn watched(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(n, ..)| n.as_str())
    }

    /// Watches the kernfs file `path` under `name` (a disk's badblocks list; any sysfs or
    /// cgroup file the kernel notifies works the same way). One read is what arms it: kernfs
    /// takes the file's event count when it shows the file, and polls `POLLPRI` while a later
    /// notification differs from it (a file never read polls as notified).
    pub fn watch(&mut self, name: &str, path: &Path) -> io::Result<()> {
        if self.watches(name) {
            return Ok(());
        }
        let file = File::open(path)?;
        disarm(&file)?;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLPRI | libc::EPOLLERR) as u32,
            u64: self.files.len() as u64,
        };
        // SAFETY: both descriptors are open; `ev` is a valid epoll_event.
        let r = unsafe {
            libc::epoll_ctl(
                self.set.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                file.as_raw_fd(),
                &mut ev,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.files
            .push((name.to_string(), path.to_path_buf(), file));
        Ok(())
    }

    /// Watches every list of `lists` not watched yet; one that cannot be opened is said once
    /// and left (its disk is still read at its mounts and at start, and by a rescan timer).
    pub fn watch_all(&mut self, lists: &[(String, PathBuf)]) {
        for (name, path) in lists {
            if self.watches(name) || self.refused.contains(name) {
                continue;
            }
            match self.watch(name, path) {
                Ok(()) => eprintln!(
                    "notify: badblocks: waiting for the pmem driver's notifications on {}",
                    path.display()
                ),
                Err(e) => {
                    eprintln!(
                        "notify: badblocks: cannot wait on {}: {e}; its list is read at mounts \
                         and at start (and by --badblocks-rescan)",
                        path.display()
                    );
                    self.refused.insert(name.clone());
                }
            }
        }
    }

    /// Waits until at least one watched file is notified and records which (read them with
    /// [`Self::take_changed`]). Cancel-safe: what was collected stays collected.
    pub async fn wait(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.set.readable().await?;
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
            // SAFETY: the set is open; `events` has room for 8 entries; timeout 0 (the set
            // said it is readable, so this does not block).
            let n = unsafe {
                libc::epoll_wait(
                    self.set.get_ref().as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                guard.clear_ready();
                continue;
            }
            for ev in &events[..n as usize] {
                let i = ev.u64 as usize;
                if let Some((name, _, file)) = self.files.get(i) {
                    // Quiet until the next notification; the contents are read by whoever
                    // acts on the change. A failed read leaves the file notified, so the next
                    // wait wakes again at once: said, not spun on silently.
                    if let Err(e) = disarm(file) {
                        // Still notified, it would wake every wait from now on: leave it (its
                        // list is still read at mounts, at start and by a rescan timer).
                        eprintln!(
                            "notify: badblocks: reading {name}'s notified list: {e}; no longer \
                             waiting on it"
                        );
                        // SAFETY: both descriptors are open.
                        unsafe {
                            libc::epoll_ctl(
                                self.set.get_ref().as_raw_fd(),
                                libc::EPOLL_CTL_DEL,
                                file.as_raw_fd(),
                                std::ptr::null_mut(),
                            )
                        };
                        self.refused.insert(name.clone());
                    }
                    self.changed.insert(name.clone());
                }
            }
            return Ok(());
        }
    }

    /// The lists notified since the last call, by name.
    pub fn take_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }
}

/// Reads the file from its start: kernfs takes the current event count when it shows a file,
/// so it polls quiet until the next notification.
fn disarm(file: &File) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    file.read_at(&mut buf, 0).map(drop)
}
