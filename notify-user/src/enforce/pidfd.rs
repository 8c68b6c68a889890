//! The syscalls of enforcement: pidfds, `pidfd_send_signal` with an optional siginfo, and
//! waiting for a pidfd to report the exit.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

/// `siginfo_t` as the kernel copies it in (x86_64/aarch64 layout, 128 bytes): the three ints,
/// padding, then the union at offset 16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSiginfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    _pad: i32,
    /// The union: `_rt` is {pid i32, uid u32, sigval u64}; `_sigfault` is {addr u64,
    /// addr_lsb i16, ...}.
    pub fields: [u64; 14],
}

const _: () = assert!(std::mem::size_of::<RawSiginfo>() == 128);

pub const SI_USER: i32 = 0;
pub const SI_QUEUE: i32 = -1;
pub const BUS_MCEERR_AR: i32 = 4;
pub const BUS_MCEERR_AO: i32 = 5;

impl RawSiginfo {
    /// SI_QUEUE with our pid/uid and `value` in si_value: allowed for any target we may signal.
    pub fn queue(sig: i32, value: u64) -> Self {
        // SAFETY: getpid/getuid cannot fail.
        let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
        let mut fields = [0u64; 14];
        fields[0] = (pid as u32 as u64) | ((uid as u64) << 32);
        fields[1] = value;
        RawSiginfo {
            signo: sig,
            errno: 0,
            code: SI_QUEUE,
            _pad: 0,
            fields,
        }
    }

    /// What the kernel's memory-failure kill sends: SIGBUS, `code` BUS_MCEERR_AO/AR, si_addr
    /// and si_addr_lsb. The kernel accepts this from userspace only for the caller itself.
    pub fn mceerr(code: i32, addr: u64, addr_lsb: u16) -> Self {
        let mut fields = [0u64; 14];
        fields[0] = addr;
        fields[1] = addr_lsb as u64;
        RawSiginfo {
            signo: libc::SIGBUS,
            errno: 0,
            code,
            _pad: 0,
            fields,
        }
    }
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the return value is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: i32,
    info: Option<&RawSiginfo>,
) -> io::Result<()> {
    let info_ptr = info.map_or(std::ptr::null(), |i| i as *const RawSiginfo);
    // SAFETY: info_ptr is null or points to a 128-byte siginfo that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            info_ptr,
            0u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until the process behind `pidfd` has exited (the pidfd polls readable), up to `t`.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>, t: Duration) -> bool {
    let deadline = Instant::now() + t;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siginfo_layout() {
        let q = RawSiginfo::queue(libc::SIGBUS, 0xdead_b000);
        assert_eq!(q.code, SI_QUEUE);
        assert_eq!(q.fields[1], 0xdead_b000);
        let m = RawSiginfo::mceerr(BUS_MCEERR_AO, 0x1000, 12);
        // si_addr sits at offset 16 of siginfo_t.
        let bytes: [u8; 128] = unsafe { std::mem::transmute(m) };
        assert_eq!(
            u64::from_ne_bytes(bytes[16..24].try_into().unwrap()),
            0x1000
        );
        assert_eq!(
            i32::from_ne_bytes(bytes[8..12].try_into().unwrap()),
            BUS_MCEERR_AO
        );
    }
}
