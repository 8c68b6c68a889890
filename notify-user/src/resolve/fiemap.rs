//! FIEMAP: a file's physical extents (tests and the lab use it to know where a file's pages lie).

use std::{fs::File, io, os::fd::AsRawFd};

use serde::Serialize;

use crate::resolve::fsmap::FS_IOC_FIEMAP;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawFiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct FiemapBuf {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [RawFiemapExtent; 64],
}

const _: () = assert!(std::mem::size_of::<RawFiemapExtent>() == 56);

pub const FIEMAP_FLAG_SYNC: u32 = 0x1;
pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

/// One extent of a file: `logical` (file offset) maps to `physical` (device offset), bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
    pub flags: u32,
}

/// A file's data extents (FIEMAP with FIEMAP_FLAG_SYNC, so delayed allocations get real blocks
/// first). The other direction from GETFSMAP: used to find a file's blocks.
pub fn fiemap(file: &File) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        // SAFETY: plain integers; zero is a valid request body.
        let mut buf: Box<FiemapBuf> = Box::new(unsafe { std::mem::zeroed() });
        buf.start = start;
        buf.length = u64::MAX - start;
        buf.flags = FIEMAP_FLAG_SYNC;
        buf.extent_count = 64;
        // SAFETY: buf is a struct fiemap with room for 64 extents.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                FS_IOC_FIEMAP as _,
                &mut *buf as *mut FiemapBuf,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (buf.mapped_extents as usize).min(64);
        if n == 0 {
            break;
        }
        let mut last = false;
        for e in &buf.extents[..n] {
            out.push(Extent {
                logical: e.logical,
                physical: e.physical,
                length: e.length,
                flags: e.flags,
            });
            last |= e.flags & FIEMAP_EXTENT_LAST != 0;
        }
        if last {
            break;
        }
        let e = buf.extents[n - 1];
        start = e.logical + e.length;
    }
    Ok(out)
}
