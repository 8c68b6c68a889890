//! Who owns a physical range of an XFS data device: `FS_IOC_GETFSMAP` on the mounted filesystem.
//!
//! When XFS drops a memory-failure notification ("filesystem is not ready for
//! notify_failure()!") nobody walked the reverse-mapping btree for it. At replay we do that walk
//! from userspace: GETFSMAP answers, for a physical byte range of the data device, which inodes
//! (and which byte ranges of each file) or which metadata structures live there — the same rmap
//! query `xfs_dax_notify_failure()` would have run in the kernel.
//!
//! Layout of this module:
//! - the raw ABI (`RawFsmap`, `RawFsmapHead`, ioctl numbers) with size assertions;
//! - pure decoding and clipping (`FsmapRecord::from_raw`, `clip_record`, `dax_to_fs_range`),
//!   unit tested below;
//! - the I/O: [`Filesystem`] (statfs, XFS geometry, the GETFSMAP loop).
//!
//! Beside it: FIEMAP (`resolve::fiemap`), partition geometry and the dax -> filesystem range
//! (`resolve::geometry`), inode -> path (`resolve::paths`).
//!
//! Two kernel facts shape the error handling (fs/xfs/xfs_fsmap.c, `xfs_getfsmap()`):
//! - XFS answers GETFSMAP even without an rmap btree, or when the caller lacks CAP_SYS_ADMIN in
//!   the initial user namespace: it then walks the free-space btree and reports every used
//!   block as owner "unknown". So "no rmapbt" is not an errno: we check the geometry flag
//!   (`XFS_FSOP_GEOM_FLAGS_RMAPBT`) first, and treat "unknown" owners on an rmapbt filesystem as
//!   a missing capability.
//! - Keys name the device as a "new-encoded" dev_t (`new_encode_dev`), not glibc's `st_dev`.

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// ABI (include/uapi/linux/fsmap.h, fiemap.h, fs/xfs/libxfs/xfs_fs.h)
// ---------------------------------------------------------------------------------------------

/// `struct fsmap`: one record, 64 bytes. All offsets and lengths are in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawFsmap {
    pub device: u32,
    pub flags: u32,
    pub physical: u64,
    pub owner: u64,
    pub offset: u64,
    pub length: u64,
    pub reserved: [u64; 3],
}

/// `struct fsmap_head` without the flexible record array: 192 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawFsmapHead {
    iflags: u32,
    oflags: u32,
    count: u32,
    entries: u32,
    reserved: [u64; 6],
    keys: [RawFsmap; 2],
}

/// Records fetched per ioctl. 128 * 64 bytes = 8 KiB: a poisoned range is usually one page, so
/// one call answers it; big ranges iterate.
const BATCH: usize = 128;

/// The head followed by room for `BATCH` records, laid out exactly like the C flexible array.
#[repr(C)]
struct FsmapBuf {
    head: RawFsmapHead,
    recs: [RawFsmap; BATCH],
}

const _: () = assert!(std::mem::size_of::<RawFsmap>() == 64);
const _: () = assert!(std::mem::size_of::<RawFsmapHead>() == 192);
const _: () = assert!(std::mem::size_of::<FsmapBuf>() == 192 + 64 * BATCH);

const fn ioc(dir: u64, ty: u8, nr: u8, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}
const IOC_READ: u64 = 2;
const IOC_RW: u64 = 3;

/// `_IOWR('X', 59, struct fsmap_head)`.
pub const FS_IOC_GETFSMAP: u64 = ioc(IOC_RW, b'X', 59, 192);
/// `_IOWR('f', 11, struct fiemap)`.
pub const FS_IOC_FIEMAP: u64 = ioc(IOC_RW, b'f', 11, 32);
/// `_IOR('X', 126, struct xfs_fsop_geom)` (v5 geometry, 256 bytes).
pub const XFS_IOC_FSGEOMETRY: u64 = ioc(IOC_READ, b'X', 126, 256);
/// `_IOR('X', 124, struct xfs_fsop_geom_v4)` (112 bytes): kernels before 5.1 only know this.
pub const XFS_IOC_FSGEOMETRY_V4: u64 = ioc(IOC_READ, b'X', 124, 112);

pub const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// `fmh_oflags`: `fmr_device` values are (new-encoded) dev_t.
pub const FMH_OF_DEV_T: u32 = 0x1;

pub const FMR_OF_PREALLOC: u32 = 0x1;
pub const FMR_OF_ATTR_FORK: u32 = 0x2;
pub const FMR_OF_EXTENT_MAP: u32 = 0x4;
pub const FMR_OF_SHARED: u32 = 0x8;
pub const FMR_OF_SPECIAL_OWNER: u32 = 0x10;
pub const FMR_OF_LAST: u32 = 0x20;

pub const fn fmr_owner(ty: u8, code: u32) -> u64 {
    ((ty as u64) << 32) | code as u64
}
pub const FMR_OWN_FREE: u64 = fmr_owner(0, 1);
pub const FMR_OWN_UNKNOWN: u64 = fmr_owner(0, 2);
pub const FMR_OWN_METADATA: u64 = fmr_owner(0, 3);

const XFS_FSOP_GEOM_FLAGS_RMAPBT: u32 = 1 << 19;
const XFS_FSOP_GEOM_FLAGS_REFLINK: u32 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Decoded records (pure)
// ---------------------------------------------------------------------------------------------

/// Special (non-inode) owners: the generic ones from fsmap.h and XFS's `FMR_OWNER('X', n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialOwner {
    Free,
    Unknown,
    Metadata,
    /// 'X',1: superblock and AG headers ("static fs metadata").
    XfsFs,
    /// 'X',2: the internal log.
    XfsLog,
    /// 'X',3: per-AG metadata (free-space and rmap btree blocks, AGFL).
    XfsAg,
    /// 'X',4: inode btree blocks.
    XfsInobt,
    /// 'X',5: inode chunks.
    XfsInodes,
    /// 'X',6: refcount btree blocks.
    XfsRefc,
    /// 'X',7: copy-on-write staging extents.
    XfsCow,
    /// 'X',8: blocks already known bad.
    XfsDefective,
    /// A code this build does not know (newer kernels add some, e.g. for realtime groups).
    Other {
        ty: u32,
        code: u32,
    },
}

impl SpecialOwner {
    pub fn from_code(owner: u64) -> Self {
        match owner {
            FMR_OWN_FREE => Self::Free,
            FMR_OWN_UNKNOWN => Self::Unknown,
            FMR_OWN_METADATA => Self::Metadata,
            o if (o >> 32) == b'X' as u64 => match o as u32 {
                1 => Self::XfsFs,
                2 => Self::XfsLog,
                3 => Self::XfsAg,
                4 => Self::XfsInobt,
                5 => Self::XfsInodes,
                6 => Self::XfsRefc,
                7 => Self::XfsCow,
                8 => Self::XfsDefective,
                code => Self::Other {
                    ty: b'X' as u32,
                    code,
                },
            },
            o => Self::Other {
                ty: (o >> 32) as u32,
                code: o as u32,
            },
        }
    }

    /// The name `xfs_io -c fsmap` prints (xfsprogs io/fsmap.c), so reports can be compared.
    pub fn name(&self) -> String {
        match self {
            Self::Free => "free space".into(),
            Self::Unknown => "unknown".into(),
            Self::Metadata => "metadata".into(),
            Self::XfsFs => "static fs metadata".into(),
            Self::XfsLog => "journalling log".into(),
            Self::XfsAg => "per-AG metadata".into(),
            Self::XfsInobt => "inode btree".into(),
            Self::XfsInodes => "inodes".into(),
            Self::XfsRefc => "refcount btree".into(),
            Self::XfsCow => "cow reservation".into(),
            Self::XfsDefective => "defective".into(),
            Self::Other { ty, code } => format!("special owner {ty:#x}:{code}"),
        }
    }

    /// Does damage here hit filesystem metadata? XFS shuts the filesystem down for these
    /// (`xfs_dax_failure_fn`: any non-inode owner -> `SHUTDOWN_CORRUPT_ONDISK`); free space and
    /// CoW staging hold no live data.
    pub fn is_metadata(&self) -> bool {
        !matches!(self, Self::Free | Self::XfsCow | Self::XfsDefective)
    }
}

impl fmt::Display for SpecialOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Owner {
    Inode { ino: u64 },
    Special { owner: SpecialOwner },
}

/// `fmr_flags`, with names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecordFlags(pub u32);

impl RecordFlags {
    pub fn unwritten(self) -> bool {
        self.0 & FMR_OF_PREALLOC != 0
    }
    pub fn attr_fork(self) -> bool {
        self.0 & FMR_OF_ATTR_FORK != 0
    }
    pub fn extent_map(self) -> bool {
        self.0 & FMR_OF_EXTENT_MAP != 0
    }
    pub fn shared(self) -> bool {
        self.0 & FMR_OF_SHARED != 0
    }
    pub fn special_owner(self) -> bool {
        self.0 & FMR_OF_SPECIAL_OWNER != 0
    }
    pub fn last(self) -> bool {
        self.0 & FMR_OF_LAST != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [(u32, &str); 6] = [
            (FMR_OF_PREALLOC, "unwritten"),
            (FMR_OF_ATTR_FORK, "attr_fork"),
            (FMR_OF_EXTENT_MAP, "extent_map"),
            (FMR_OF_SHARED, "shared"),
            (FMR_OF_SPECIAL_OWNER, "special_owner"),
            (FMR_OF_LAST, "last"),
        ];
        NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// One decoded GETFSMAP record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FsmapRecord {
    /// New-encoded dev_t (when the kernel set `FMH_OF_DEV_T`) of the device the record is on.
    pub device: u32,
    pub flags: RecordFlags,
    /// Byte offset on that device.
    pub physical: u64,
    pub length: u64,
    pub owner: Owner,
    /// File byte offset for inode data records; meaningless for special owners and for
    /// attr-fork / extent-map (bmbt) blocks.
    pub offset: u64,
}

impl FsmapRecord {
    pub fn from_raw(r: &RawFsmap) -> Self {
        let flags = RecordFlags(r.flags);
        let owner = if flags.special_owner() {
            Owner::Special {
                owner: SpecialOwner::from_code(r.owner),
            }
        } else {
            Owner::Inode { ino: r.owner }
        };
        FsmapRecord {
            device: r.device,
            flags,
            physical: r.physical,
            length: r.length,
            owner,
            offset: r.offset,
        }
    }
}

/// What one record means for a damaged physical range, clipped to that range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HitKind {
    /// File data: `file_offset..file_offset+length` of inode `ino` sits on the damaged range.
    FileData {
        ino: u64,
        file_offset: u64,
        shared: bool,
        unwritten: bool,
    },
    /// Blocks an inode owns that are not its data: attribute-fork blocks or extent-map (bmbt)
    /// blocks. The kernel treats these as metadata (filesystem shutdown), not as a file range
    /// whose mappers it could kill.
    InodeMetadata {
        ino: u64,
        attr_fork: bool,
        extent_map: bool,
    },
    Special {
        owner: SpecialOwner,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Physical byte range of the overlap (record ∩ query).
    pub physical: u64,
    pub length: u64,
    pub kind: HitKind,
    pub flags: RecordFlags,
}

/// Clip `rec` to the physical range `[start, start+len)`. Records can start before the query
/// (the rmap record that covers the first byte) and end after it; only the overlap matters, and
/// for file data the file offset moves with the physical start. `None` when they do not overlap.
pub fn clip_record(rec: &FsmapRecord, start: u64, len: u64) -> Option<Hit> {
    let q_end = start.checked_add(len)?;
    let r_end = rec.physical.saturating_add(rec.length);
    let lo = rec.physical.max(start);
    let hi = r_end.min(q_end);
    if lo >= hi {
        return None;
    }
    let kind = match rec.owner {
        Owner::Special { owner } => HitKind::Special { owner },
        Owner::Inode { ino } if rec.flags.attr_fork() || rec.flags.extent_map() => {
            HitKind::InodeMetadata {
                ino,
                attr_fork: rec.flags.attr_fork(),
                extent_map: rec.flags.extent_map(),
            }
        }
        Owner::Inode { ino } => HitKind::FileData {
            ino,
            file_offset: rec.offset + (lo - rec.physical),
            shared: rec.flags.shared(),
            unwritten: rec.flags.unwritten(),
        },
    };
    Some(Hit {
        physical: lo,
        length: hi - lo,
        kind,
        flags: rec.flags,
    })
}

/// A byte range of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FileRange {
    pub offset: u64,
    pub length: u64,
}

/// The owners of a physical range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The physical range that was queried (after clipping to the data device).
    pub physical: u64,
    pub length: u64,
    /// Set when the requested range ran past the end of the data device and was cut to it.
    pub clipped_from: Option<u64>,
    pub hits: Vec<Hit>,
}

impl Resolution {
    /// Per inode, the damaged file byte ranges (sorted, adjacent ranges merged). Only file
    /// data: this is what mappers are searched for.
    pub fn files(&self) -> BTreeMap<u64, Vec<FileRange>> {
        let mut out: BTreeMap<u64, Vec<FileRange>> = BTreeMap::new();
        for h in &self.hits {
            if let HitKind::FileData {
                ino, file_offset, ..
            } = h.kind
            {
                out.entry(ino).or_default().push(FileRange {
                    offset: file_offset,
                    length: h.length,
                });
            }
        }
        for v in out.values_mut() {
            v.sort();
            let mut merged: Vec<FileRange> = Vec::with_capacity(v.len());
            for r in v.drain(..) {
                match merged.last_mut() {
                    Some(m) if m.offset + m.length >= r.offset => {
                        let end = (m.offset + m.length).max(r.offset + r.length);
                        m.length = end - m.offset;
                    }
                    _ => merged.push(r),
                }
            }
            *v = merged;
        }
        out
    }

    /// Hits on metadata (special metadata owners and inode attr/bmbt blocks).
    pub fn metadata(&self) -> Vec<&Hit> {
        self.hits
            .iter()
            .filter(|h| match &h.kind {
                HitKind::Special { owner } => owner.is_metadata(),
                HitKind::InodeMetadata { .. } => true,
                HitKind::FileData { .. } => false,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub enum FsmapError {
    Open {
        path: PathBuf,
        source: io::Error,
    },
    NotXfs {
        path: PathBuf,
        f_type: i64,
    },
    /// The filesystem has no reverse-mapping btree: nothing can say who owns a block.
    NoRmapbt {
        path: PathBuf,
    },
    /// rmapbt exists but the kernel answered from the free-space btree ("unknown" owners): it
    /// does that when the caller lacks CAP_SYS_ADMIN in the initial user namespace.
    NoOwnerInfo {
        path: PathBuf,
    },
    RangeOutsideDevice {
        physical: u64,
        length: u64,
        device_bytes: u64,
    },
    EmptyRange,
    Ioctl {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for FsmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { path, source } => write!(f, "cannot open {}: {source}", path.display()),
            Self::NotXfs { path, f_type } => write!(
                f,
                "{} is not on XFS (statfs f_type {f_type:#x}): notify resolves owners only on XFS",
                path.display()
            ),
            Self::NoRmapbt { path } => write!(
                f,
                "the XFS at {} has no reverse-mapping btree (mkfs.xfs -m rmapbt=1): notify cannot \
                 resolve owners",
                path.display()
            ),
            Self::NoOwnerInfo { path } => write!(
                f,
                "GETFSMAP on {} returned no owners although the filesystem has an rmap btree: \
                 the kernel only walks it for callers with CAP_SYS_ADMIN in the initial user \
                 namespace; run notify as root on the host",
                path.display()
            ),
            Self::RangeOutsideDevice {
                physical,
                length,
                device_bytes,
            } => write!(
                f,
                "physical range {physical:#x}+{length:#x} lies outside the data device \
                 ({device_bytes:#x} bytes)"
            ),
            Self::EmptyRange => write!(f, "empty physical range"),
            Self::Ioctl { path, what, source } => {
                write!(f, "{what} on {} failed: {source}", path.display())?;
                match source.raw_os_error() {
                    Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) => write!(
                        f,
                        " (the filesystem does not implement it; on XFS without rmapbt use \
                         mkfs.xfs -m rmapbt=1)"
                    ),
                    Some(libc::EINVAL) => write!(f, " (kernel rejected the keys)"),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for FsmapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Open { source, .. } | Self::Ioctl { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Device numbers
// ---------------------------------------------------------------------------------------------

/// Kernel `new_encode_dev()`: the dev_t encoding GETFSMAP keys and records use. glibc's `st_dev`
/// is a different encoding, so convert through (major, minor).
pub const fn new_encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

pub const fn new_decode_dev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// (major, minor) of a glibc `st_dev`.
pub fn split_dev(st_dev: u64) -> (u32, u32) {
    (libc::major(st_dev), libc::minor(st_dev))
}

// ---------------------------------------------------------------------------------------------
// The filesystem handle
// ---------------------------------------------------------------------------------------------

/// The parts of `struct xfs_fsop_geom` notify uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct XfsGeometry {
    pub blocksize: u32,
    pub agblocks: u32,
    pub agcount: u32,
    pub datablocks: u64,
    pub flags: u32,
}

impl XfsGeometry {
    pub fn has_rmapbt(&self) -> bool {
        self.flags & XFS_FSOP_GEOM_FLAGS_RMAPBT != 0
    }
    pub fn has_reflink(&self) -> bool {
        self.flags & XFS_FSOP_GEOM_FLAGS_REFLINK != 0
    }
    /// Bytes of the data device the filesystem uses (GETFSMAP's physical space).
    pub fn data_bytes(&self) -> u64 {
        self.datablocks * self.blocksize as u64
    }
}

/// A mounted XFS, opened through any file or directory on it.
pub struct Filesystem {
    file: File,
    path: PathBuf,
    /// (major, minor) of the data device (`st_dev` of files on it).
    pub dev: (u32, u32),
    pub geometry: XfsGeometry,
}

impl Filesystem {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FsmapError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| FsmapError::Open {
            path: path.clone(),
            source,
        })?;
        // SAFETY: statfs is plain data; fstatfs fills it.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut sfs) } != 0 {
            return Err(FsmapError::Ioctl {
                path,
                what: "fstatfs",
                source: io::Error::last_os_error(),
            });
        }
        #[allow(clippy::unnecessary_cast)]
        let f_type = sfs.f_type as i64;
        if f_type != XFS_SUPER_MAGIC {
            return Err(FsmapError::NotXfs { path, f_type });
        }
        let md = file.metadata().map_err(|source| FsmapError::Open {
            path: path.clone(),
            source,
        })?;
        let geometry = xfs_geometry(&file).map_err(|source| FsmapError::Ioctl {
            path: path.clone(),
            what: "XFS_IOC_FSGEOMETRY",
            source,
        })?;
        Ok(Filesystem {
            file,
            path,
            dev: split_dev(md.dev()),
            geometry,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data device as GETFSMAP names it.
    pub fn fsmap_device(&self) -> u32 {
        new_encode_dev(self.dev.0, self.dev.1)
    }

    /// Raw GETFSMAP records overlapping `[physical, physical+length)` on the data device, in
    /// kernel order. No rmapbt check: callers that want owners use [`Filesystem::resolve`].
    pub fn query(&self, physical: u64, length: u64) -> Result<Vec<FsmapRecord>, FsmapError> {
        if length == 0 {
            return Err(FsmapError::EmptyRange);
        }
        let dev = self.fsmap_device();
        // SAFETY: FsmapBuf is plain integers; all-zero is valid and what the kernel wants in
        // the reserved fields.
        let mut buf: Box<FsmapBuf> = Box::new(unsafe { std::mem::zeroed() });
        buf.head.keys[0] = RawFsmap {
            device: dev,
            physical,
            ..Default::default()
        };
        // High key as xfs_io sets it: last byte of the range, every other field all ones so
        // that every owner/offset at that byte sorts below it.
        buf.head.keys[1] = RawFsmap {
            device: dev,
            flags: u32::MAX,
            physical: physical + length - 1,
            owner: u64::MAX,
            offset: u64::MAX,
            length: 0,
            reserved: [0; 3],
        };
        let mut out = Vec::new();
        loop {
            buf.head.count = BATCH as u32;
            buf.head.entries = 0;
            // SAFETY: buf is a correctly sized fsmap_head + BATCH records.
            let rc = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    FS_IOC_GETFSMAP as _,
                    &mut *buf as *mut FsmapBuf,
                )
            };
            if rc != 0 {
                return Err(FsmapError::Ioctl {
                    path: self.path.clone(),
                    what: "FS_IOC_GETFSMAP",
                    source: io::Error::last_os_error(),
                });
            }
            let n = (buf.head.entries as usize).min(BATCH);
            if n == 0 {
                break;
            }
            out.extend(buf.recs[..n].iter().map(FsmapRecord::from_raw));
            let last = buf.recs[n - 1];
            if last.flags & FMR_OF_LAST != 0 {
                break;
            }
            // fsmap_advance(): the last record becomes the low key; the kernel resumes after it.
            buf.head.keys[0] = last;
        }
        Ok(out)
    }

    /// Who owns `[physical, physical+length)` of the data device, clipped per owner.
    pub fn resolve(&self, physical: u64, length: u64) -> Result<Resolution, FsmapError> {
        if length == 0 {
            return Err(FsmapError::EmptyRange);
        }
        if !self.geometry.has_rmapbt() {
            return Err(FsmapError::NoRmapbt {
                path: self.path.clone(),
            });
        }
        let device_bytes = self.geometry.data_bytes();
        let end = physical.saturating_add(length);
        if physical >= device_bytes {
            return Err(FsmapError::RangeOutsideDevice {
                physical,
                length,
                device_bytes,
            });
        }
        // A range that runs off the end (a 2 MiB page at the tail) keeps its inside part: that
        // part is exact, and `clipped_from` says the rest was cut.
        let (len, clipped_from) = if end > device_bytes {
            (device_bytes - physical, Some(length))
        } else {
            (length, None)
        };
        let recs = self.query(physical, len)?;
        let hits: Vec<Hit> = recs
            .iter()
            .filter_map(|r| clip_record(r, physical, len))
            .collect();
        // The free-space-btree answer (no CAP_SYS_ADMIN) has only "unknown" and "free" owners.
        // Judge by that shape, not by a single "unknown" record, which an rmapbt can hold too.
        let unknown = hits.iter().any(|h| {
            matches!(
                h.kind,
                HitKind::Special {
                    owner: SpecialOwner::Unknown
                }
            )
        });
        let informative = hits.iter().any(|h| match h.kind {
            HitKind::Special { owner } => {
                !matches!(owner, SpecialOwner::Unknown | SpecialOwner::Free)
            }
            _ => true,
        });
        if unknown && !informative {
            return Err(FsmapError::NoOwnerInfo {
                path: self.path.clone(),
            });
        }
        Ok(Resolution {
            physical,
            length: len,
            clipped_from,
            hits,
        })
    }
}

fn xfs_geometry(file: &File) -> io::Result<XfsGeometry> {
    let mut raw = [0u8; 256];
    // SAFETY: the kernel writes at most 256 (v5) / 112 (v4) bytes into raw.
    let mut rc =
        unsafe { libc::ioctl(file.as_raw_fd(), XFS_IOC_FSGEOMETRY as _, raw.as_mut_ptr()) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTTY) {
        // SAFETY: as above, smaller struct.
        rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                XFS_IOC_FSGEOMETRY_V4 as _,
                raw.as_mut_ptr(),
            )
        };
    }
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let u32_at = |o: usize| u32::from_ne_bytes(raw[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(raw[o..o + 8].try_into().unwrap());
    // Offsets in struct xfs_fsop_geom: blocksize 0, agblocks 8, agcount 12, datablocks 32,
    // flags 92 (after uuid[16] at 64, sunit 80, swidth 84, version 88).
    Ok(XfsGeometry {
        blocksize: u32_at(0),
        agblocks: u32_at(8),
        agcount: u32_at(12),
        datablocks: u64_at(32),
        flags: u32_at(92),
    })
}

#[cfg(test)]
mod tests;
