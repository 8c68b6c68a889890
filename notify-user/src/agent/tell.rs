//! Telling XFS what it dropped (Linux 7.0+): `XFS_IOC_VERIFY_MEDIA` with its report flag reads a
//! range of the data device through the block layer (the pmem driver refuses the sectors listed
//! in its badblocks), and for every failed read XFS walks its reverse map — loading inodes that
//! are not in memory — and reports data loss for each file owner through fserror (FAN_FS_ERROR),
//! marks a damaged inode's block map or xattrs sick (AG metadata it skips: 7.3 reports only
//! inode owners), and kills nothing.
//!
//! The ioctl stops at the first failed read and returns 0 with `me_start_daddr` at the start of
//! that read (7.3 fs/xfs/xfs_verify_media.c); a read is at least a page. So the range is walked
//! in page-sized reads and resumed past each failed one, which XFS has then reported.

use std::{fs::File, io, os::fd::AsRawFd, path::Path};

/// `struct xfs_verify_media` (fs/xfs/libxfs/xfs_fs.h, 7.x), 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyMedia {
    pub me_dev: u32,
    pub me_flags: u32,
    /// In/out: first 512-byte sector; where the call stopped.
    pub me_start_daddr: u64,
    /// Exclusive end (the kernel lowers it to the end of the device area).
    pub me_end_daddr: u64,
    /// Out: errno of the call's first read, if that one failed.
    pub me_ioerror: u32,
    pub me_max_io_size: u32,
    pub me_rest_us: u32,
    pub me_pad: u32,
}

const _: () = assert!(std::mem::size_of::<VerifyMedia>() == 40);

/// `_IOWR('X', 70, struct xfs_verify_media)`.
pub const XFS_IOC_VERIFY_MEDIA: u64 = (3 << 30) | (40 << 16) | ((b'X' as u64) << 8) | 70;
pub const XFS_DEV_DATA: u32 = 1;
pub const XFS_VERIFY_MEDIA_REPORT: u32 = 1;
/// One read: a page, the smallest the kernel does.
pub const IO_SECTORS: u64 = 4096 / 512;

/// What verifying a range found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// The sectors asked for, `[start, end)` on the data device (after the kernel's clamping).
    pub start: u64,
    pub end: u64,
    /// Each read that failed (XFS reported its owners): (first sector, sectors).
    pub bad: Vec<(u64, u64)>,
    /// The errno of a failed read when the kernel said it.
    pub ioerror: Option<u32>,
}

/// Why XFS could not be told.
#[derive(Debug)]
pub enum TellError {
    /// This kernel's XFS has no VERIFY_MEDIA (before 7.0): ENOTTY.
    NotOnThisKernel,
    /// The ioctl failed otherwise (EPERM, EINTR, ENOMEM, EINVAL...).
    Ioctl(io::Error),
    /// Verification did not move forward (a kernel that does not follow its contract).
    Stuck(u64),
}

impl std::fmt::Display for TellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TellError::NotOnThisKernel => f.write_str(
                "this kernel's XFS cannot be told (XFS_IOC_VERIFY_MEDIA is Linux 7.0 and later)",
            ),
            TellError::Ioctl(e) => write!(f, "XFS_IOC_VERIFY_MEDIA: {e}"),
            TellError::Stuck(at) => {
                write!(f, "XFS_IOC_VERIFY_MEDIA made no progress at sector {at}")
            }
        }
    }
}

impl std::error::Error for TellError {}

/// Verifies sectors `[start, end)` of the data device with `call` doing one ioctl, resuming past
/// every failed read. Pure but for `call`.
pub fn verify_with(
    start: u64,
    end: u64,
    mut call: impl FnMut(&mut VerifyMedia) -> io::Result<()>,
) -> Result<Verified, TellError> {
    let mut v = Verified {
        start,
        end,
        ..Verified::default()
    };
    let mut cur = start;
    while cur < v.end {
        let mut m = VerifyMedia {
            me_dev: XFS_DEV_DATA,
            me_flags: XFS_VERIFY_MEDIA_REPORT,
            me_start_daddr: cur,
            me_end_daddr: v.end,
            me_max_io_size: (IO_SECTORS * 512) as u32,
            ..VerifyMedia::default()
        };
        match call(&mut m) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
                return Err(TellError::NotOnThisKernel);
            }
            Err(e) => return Err(TellError::Ioctl(e)),
        }
        // The kernel may clamp the end to the filesystem. (`me_start_daddr` is where it
        // stopped, not a clamped start: a clean first read moves it to the end.)
        v.end = v.end.min(m.me_end_daddr);
        if m.me_start_daddr >= v.end {
            break;
        }
        if m.me_start_daddr < cur {
            return Err(TellError::Stuck(cur));
        }
        let len = IO_SECTORS.min(v.end - m.me_start_daddr);
        v.bad.push((m.me_start_daddr, len));
        if m.me_ioerror != 0 {
            v.ioerror.get_or_insert(m.me_ioerror);
        }
        cur = m.me_start_daddr + len;
    }
    Ok(v)
}

/// Verifies sectors `[start, end)` of the XFS mounted at `mount` and has XFS report what it
/// finds; `after_bad(sector)` runs after each failed read (XFS is reporting its owners), before
/// the next read. Needs CAP_SYS_ADMIN.
pub fn verify(
    mount: &Path,
    start: u64,
    end: u64,
    mut after_bad: impl FnMut(u64),
) -> Result<Verified, TellError> {
    let f = File::open(mount).map_err(TellError::Ioctl)?;
    verify_with(start, end, |m| {
        // SAFETY: m is a valid, writable 40-byte struct for the duration of the call.
        let rc = unsafe {
            libc::ioctl(
                f.as_raw_fd(),
                XFS_IOC_VERIFY_MEDIA as libc::c_ulong,
                m as *mut VerifyMedia,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if m.me_start_daddr < m.me_end_daddr {
            after_bad(m.me_start_daddr);
        }
        Ok(())
    })
}

/// Whether the XFS mounted at `mount` takes `XFS_IOC_VERIFY_MEDIA`: asked with an empty range
/// (7.3 returns 0 before any I/O when the start reaches the end; a kernel without it says
/// ENOTTY). Asks the kernel itself, without reading its symbols.
pub fn answers(mount: &Path) -> Result<(), TellError> {
    let f = File::open(mount).map_err(TellError::Ioctl)?;
    let mut m = VerifyMedia {
        me_dev: XFS_DEV_DATA,
        ..VerifyMedia::default()
    };
    // SAFETY: m is a valid, writable 40-byte struct for the duration of the call.
    let rc = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            XFS_IOC_VERIFY_MEDIA as libc::c_ulong,
            &mut m as *mut VerifyMedia,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    Err(if e.raw_os_error() == Some(libc::ENOTTY) {
        TellError::NotOnThisKernel
    } else {
        TellError::Ioctl(e)
    })
}

/// `_IOR('X', 125, __u32)`: shut the filesystem down.
pub const XFS_IOC_GOINGDOWN: u64 = (2 << 30) | (4 << 16) | ((b'X' as u64) << 8) | 125;
/// Shut down without flushing the log: what XFS does itself for on-disk corruption.
pub const XFS_FSOP_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

/// Shuts the XFS mounted at `mount` down, as XFS would have when it met the damaged metadata
/// (opt-in: `--metadata-shutdown`).
pub fn shut_down(mount: &Path) -> io::Result<()> {
    let f = File::open(mount)?;
    let mut flags = XFS_FSOP_GOING_FLAGS_NOLOGFLUSH;
    // SAFETY: a valid u32 for the duration of the call.
    let rc = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            XFS_IOC_GOINGDOWN as libc::c_ulong,
            &mut flags as *mut u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The sectors of a byte range of the data device, widened to whole sectors.
pub fn sectors(physical: u64, length: u64) -> (u64, u64) {
    (physical / 512, (physical + length).div_ceil(512))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's behaviour as 7.3's xfs_verify_media.c has it: page-sized reads from
    /// `me_start_daddr`; at a read covering a bad sector, stop there and return 0; a clean
    /// range ends with `me_start_daddr == me_end_daddr`; the end clamped to the device.
    fn kernel(bad: &'static [u64], dev_end: u64) -> impl FnMut(&mut VerifyMedia) -> io::Result<()> {
        move |m| {
            assert_eq!(m.me_dev, XFS_DEV_DATA);
            assert_eq!(m.me_flags, XFS_VERIFY_MEDIA_REPORT);
            m.me_end_daddr = m.me_end_daddr.min(dev_end);
            let first = m.me_start_daddr;
            let mut d = first;
            while d < m.me_end_daddr {
                let n = IO_SECTORS.min(m.me_end_daddr - d);
                if bad.iter().any(|b| (d..d + n).contains(b)) {
                    m.me_start_daddr = d;
                    if d == first {
                        m.me_ioerror = 5;
                    }
                    return Ok(());
                }
                d += n;
            }
            m.me_start_daddr = m.me_end_daddr;
            Ok(())
        }
    }

    #[test]
    fn a_range_is_walked_past_every_bad_read() {
        // Two bad pages among four: both reported, the walk ends at the end.
        let v = verify_with(800, 832, kernel(&[803, 827], 1 << 20)).unwrap();
        assert_eq!(v.bad, [(800, 8), (824, 8)]);
        assert_eq!(v.ioerror, Some(5));
        assert_eq!((v.start, v.end), (800, 832));
        // Clean: nothing bad, and the range is the one asked for.
        let v = verify_with(0, 64, kernel(&[], 1 << 20)).unwrap();
        assert!(v.bad.is_empty());
        assert_eq!((v.start, v.end), (0, 64));
        let v = verify_with(24968, 24976, kernel(&[], 1 << 20)).unwrap();
        assert_eq!((v.start, v.end), (24968, 24976));
        // Past the filesystem's end: clamped, and a bad sector at the very end.
        let v = verify_with(1000, 2000, kernel(&[1023], 1024)).unwrap();
        assert_eq!((v.end, v.bad.as_slice()), (1024, &[(1016, 8)][..]));
    }

    #[test]
    fn old_kernels_and_failures_are_errors_that_say_why() {
        let e = verify_with(0, 8, |_| Err(io::Error::from_raw_os_error(libc::ENOTTY))).unwrap_err();
        assert!(matches!(e, TellError::NotOnThisKernel));
        assert!(e.to_string().contains("7.0"), "{e}");
        let e = verify_with(0, 8, |_| Err(io::Error::from_raw_os_error(libc::EPERM))).unwrap_err();
        assert!(e.to_string().contains("XFS_IOC_VERIFY_MEDIA"), "{e}");
        // A kernel that goes backwards does not loop for ever.
        let e = verify_with(16, 32, |m| {
            m.me_start_daddr = 0;
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, TellError::Stuck(16)));
    }

    #[test]
    fn ioctl_number_and_sectors() {
        assert_eq!(XFS_IOC_VERIFY_MEDIA, 0xC028_5846);
        assert_eq!(XFS_IOC_GOINGDOWN, 0x8004_587D);
        assert_eq!(sectors(4096, 4096), (8, 16));
        assert_eq!(sectors(100, 1), (0, 1));
    }
}
