//! One read of a non-blocking fd that tokio watches: XFS's report channels (fanotify, the
//! health monitor) are read this way.

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
};

use tokio::io::unix::AsyncFd;

/// Waits until `fd` is readable and reads it once into `buf`; returns the bytes read (0: the
/// other end is gone). A readiness that turns out spurious (EAGAIN) is cleared and waited for
/// again; a successful read keeps it, so the next call reads again before it waits.
/// Cancel-safe: nothing is read before the wait completes.
pub async fn read_ready(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        // SAFETY: buf is writable for its length.
        let n = unsafe {
            libc::read(
                guard.get_inner().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
        guard.clear_ready();
    }
}
