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
//! - the I/O: [`Filesystem`] (statfs, XFS geometry, the GETFSMAP loop), FIEMAP, partition
//!   geometry from sysfs, and [`InodePaths`] (inode -> path by walking the mount).
//!
//! Two kernel facts shape the error handling (fs/xfs/xfs_fsmap.c, `xfs_getfsmap()`):
//! - XFS answers GETFSMAP even without an rmap btree, or when the caller lacks CAP_SYS_ADMIN in
//!   the initial user namespace: it then walks the free-space btree and reports every used
//!   block as owner "unknown". So "no rmapbt" is not an errno: we check the geometry flag
//!   (`XFS_FSOP_GEOM_FLAGS_RMAPBT`) first, and treat "unknown" owners on an rmapbt filesystem as
//!   a missing capability.
//! - Keys name the device as a "new-encoded" dev_t (`new_encode_dev`), not glibc's `st_dev`.

use std::{
    collections::{BTreeMap, HashMap},
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

// ---------------------------------------------------------------------------------------------
// dax offset -> filesystem physical range
// ---------------------------------------------------------------------------------------------

/// A range on the filesystem's data device (GETFSMAP's "physical").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FsRange {
    pub physical: u64,
    pub length: u64,
    /// The dax range extended past the partition and was cut to it (as the kernel does).
    pub clipped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsidePartition {
    pub dax_offset: u64,
    pub length: u64,
    pub part_start: u64,
    pub part_bytes: u64,
}

impl fmt::Display for OutsidePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dax range {:#x}+{:#x} does not touch the filesystem's partition \
             [{:#x}, {:#x}): not this filesystem's failure",
            self.dax_offset,
            self.length,
            self.part_start,
            self.part_start + self.part_bytes
        )
    }
}

impl std::error::Error for OutsidePartition {}

/// Translate a dax-device range (what `dax_holder_notify_failure()` gets) into the data device
/// range of a filesystem on a partition starting `part_start` bytes into the dax device and
/// `part_bytes` long. Mirrors `xfs_dax_notify_failure()`: subtract `bt_dax_part_off`, cut what
/// sticks out at either end, and refuse a range that does not touch the partition at all (the
/// kernel returns -ENXIO there). `(0, u64::MAX)` is the whole-device pre-remove notification.
pub fn dax_to_fs_range(
    dax_offset: u64,
    length: u64,
    part_start: u64,
    part_bytes: u64,
) -> Result<FsRange, OutsidePartition> {
    let err = OutsidePartition {
        dax_offset,
        length,
        part_start,
        part_bytes,
    };
    if length == 0 || part_bytes == 0 {
        return Err(err);
    }
    let d_end = dax_offset.saturating_add(length); // exclusive
    let p_end = part_start.saturating_add(part_bytes);
    if d_end <= part_start || dax_offset >= p_end {
        return Err(err);
    }
    let lo = dax_offset.max(part_start);
    let hi = d_end.min(p_end);
    Ok(FsRange {
        physical: lo - part_start,
        length: hi - lo,
        clipped: lo != dax_offset || hi != d_end,
    })
}

/// Start offset and size in bytes of block device (major, minor) within its disk, from sysfs
/// (`start` exists only for partitions; a whole disk starts at 0). For a partition of a pmem
/// disk this start is what XFS subtracts (`bt_dax_part_off`).
pub fn partition_geometry(dev: (u32, u32)) -> io::Result<(u64, u64)> {
    let base = PathBuf::from(format!("/sys/dev/block/{}:{}", dev.0, dev.1));
    let read_u64 = |name: &str| -> io::Result<u64> {
        let s = std::fs::read_to_string(base.join(name))?;
        s.trim().parse::<u64>().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}/{name}: {e}", base.display()),
            )
        })
    };
    let start = match read_u64("start") {
        Ok(s) => s * 512,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    Ok((start, read_u64("size")? * 512))
}

// ---------------------------------------------------------------------------------------------
// FIEMAP
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// inode -> path
// ---------------------------------------------------------------------------------------------

/// The mount point containing `path`: walk up while the device stays the same.
pub fn mount_root(path: &Path) -> io::Result<PathBuf> {
    let path = path.canonicalize()?;
    let dev = std::fs::metadata(&path)?.dev();
    let mut cur = path.as_path();
    while let Some(parent) = cur.parent() {
        if std::fs::metadata(parent)?.dev() != dev {
            break;
        }
        cur = parent;
    }
    Ok(cur.to_path_buf())
}

/// Inode -> path(s) for reports, by walking the mount once and caching the answer.
///
/// Why a walk rather than XFS handles: `open_by_handle_at` gives an fd, not a name; names need
/// parent pointers, which only very new XFS has. A walk is O(files) once; the cache makes every
/// later lookup free. The walk stays on the mount's device (no crossing into other mounts),
/// does not follow symlinks, and collects every hard link. Inodes that are no longer linked
/// (deleted but still mapped) have no path: lookups return an empty slice.
pub struct InodePaths {
    root: PathBuf,
    dev: u64,
    map: HashMap<u64, Vec<PathBuf>>,
    walked: bool,
}

impl InodePaths {
    pub fn new(mount_root: impl AsRef<Path>) -> io::Result<Self> {
        let root = mount_root.as_ref().to_path_buf();
        let dev = std::fs::metadata(&root)?.dev();
        Ok(InodePaths {
            root,
            dev,
            map: HashMap::new(),
            walked: false,
        })
    }

    /// Paths of `ino` (walks the mount on the first call, or again after `invalidate`).
    pub fn lookup(&mut self, ino: u64) -> io::Result<&[PathBuf]> {
        if !self.walked {
            self.walk()?;
        }
        Ok(self.map.get(&ino).map(|v| v.as_slice()).unwrap_or(&[]))
    }

    /// Forget the cache (files were created or renamed since).
    pub fn invalidate(&mut self) {
        self.map.clear();
        self.walked = false;
    }

    fn walk(&mut self) -> io::Result<()> {
        use std::os::unix::fs::DirEntryExt;
        self.map.clear();
        let root_ino = std::fs::metadata(&self.root)?.ino();
        self.map
            .entry(root_ino)
            .or_default()
            .push(self.root.clone());
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                // A directory that vanished or that we may not read: skip, don't fail the
                // whole lookup.
                Err(_) => continue,
            };
            for entry in rd.flatten() {
                let p = entry.path();
                let ft = match entry.file_type() {
                    Ok(ft) => ft,
                    Err(_) => continue,
                };
                if ft.is_dir() {
                    // Only directories need a stat: a mount point has another st_dev.
                    match std::fs::symlink_metadata(&p) {
                        Ok(md) if md.dev() == self.dev => {
                            self.map.entry(md.ino()).or_default().push(p.clone());
                            stack.push(p);
                        }
                        _ => {}
                    }
                } else {
                    // d_ino is the inode number for entries on this filesystem.
                    self.map.entry(entry.ino()).or_default().push(p);
                }
            }
        }
        self.walked = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(physical: u64, length: u64, owner: u64, offset: u64, flags: u32) -> FsmapRecord {
        FsmapRecord::from_raw(&RawFsmap {
            device: 0x700,
            flags,
            physical,
            owner,
            offset,
            length,
            reserved: [0; 3],
        })
    }

    #[test]
    fn ioctl_numbers_match_the_c_macros() {
        // Values computed from the C headers (_IOWR/_IOR on x86_64).
        assert_eq!(FS_IOC_GETFSMAP, 0xC0C0_583B);
        assert_eq!(FS_IOC_FIEMAP, 0xC020_660B);
        assert_eq!(XFS_IOC_FSGEOMETRY, 0x8100_587E);
    }

    #[test]
    fn dev_encoding_round_trips() {
        assert_eq!(new_encode_dev(7, 0), 0x700);
        assert_eq!(new_encode_dev(259, 3), 0x10303);
        for (ma, mi) in [(7, 0), (259, 3), (8, 300), (4095, 0xfffff)] {
            assert_eq!(new_decode_dev(new_encode_dev(ma, mi)), (ma, mi));
        }
    }

    #[test]
    fn special_owners_decode_by_name() {
        let r = rec(0, 4096, fmr_owner(b'X', 1), 0, FMR_OF_SPECIAL_OWNER);
        assert_eq!(
            r.owner,
            Owner::Special {
                owner: SpecialOwner::XfsFs
            }
        );
        assert_eq!(
            SpecialOwner::from_code(fmr_owner(b'X', 2)).name(),
            "journalling log"
        );
        assert_eq!(
            SpecialOwner::from_code(fmr_owner(b'X', 8)),
            SpecialOwner::XfsDefective
        );
        assert_eq!(SpecialOwner::from_code(FMR_OWN_FREE), SpecialOwner::Free);
        assert_eq!(
            SpecialOwner::from_code(fmr_owner(b'X', 42)),
            SpecialOwner::Other {
                ty: b'X' as u32,
                code: 42
            }
        );
        // Without the SPECIAL_OWNER flag the same number is an inode.
        let r = rec(0, 4096, 131, 0, 0);
        assert_eq!(r.owner, Owner::Inode { ino: 131 });
    }

    #[test]
    fn flags_have_names() {
        let f = RecordFlags(FMR_OF_SHARED | FMR_OF_LAST | FMR_OF_PREALLOC);
        assert_eq!(f.names(), vec!["unwritten", "shared", "last"]);
        assert!(f.shared() && f.last() && f.unwritten() && !f.attr_fork());
    }

    #[test]
    fn clip_moves_the_file_offset_with_the_physical_start() {
        // Record: phys 1 MiB..1 MiB+64 KiB holds file offsets 8 KiB..72 KiB of inode 99.
        let r = rec(1 << 20, 64 << 10, 99, 8 << 10, 0);
        // Query 4 KiB starting 12 KiB into the record.
        let h = clip_record(&r, (1 << 20) + (12 << 10), 4096).unwrap();
        assert_eq!(h.physical, (1 << 20) + (12 << 10));
        assert_eq!(h.length, 4096);
        assert_eq!(
            h.kind,
            HitKind::FileData {
                ino: 99,
                file_offset: 20 << 10,
                shared: false,
                unwritten: false
            }
        );
        // Query straddling the record start: only the part inside counts, offset unchanged.
        let h = clip_record(&r, (1 << 20) - 4096, 8192).unwrap();
        assert_eq!((h.physical, h.length), (1 << 20, 4096));
        assert!(matches!(h.kind, HitKind::FileData { file_offset, .. } if file_offset == 8 << 10));
        // Query straddling the end.
        let h = clip_record(&r, (1 << 20) + (60 << 10), 1 << 20).unwrap();
        assert_eq!(h.length, 4096);
        // Disjoint: before, adjacent after.
        assert!(clip_record(&r, 0, 1 << 20).is_none());
        assert!(clip_record(&r, (1 << 20) + (64 << 10), 4096).is_none());
    }

    #[test]
    fn attr_and_bmbt_blocks_are_inode_metadata_not_file_ranges() {
        let r = rec(4096, 4096, 77, 0, FMR_OF_EXTENT_MAP);
        let h = clip_record(&r, 4096, 4096).unwrap();
        assert_eq!(
            h.kind,
            HitKind::InodeMetadata {
                ino: 77,
                attr_fork: false,
                extent_map: true
            }
        );
        let res = Resolution {
            physical: 4096,
            length: 4096,
            clipped_from: None,
            hits: vec![h],
        };
        assert!(res.files().is_empty());
        assert_eq!(res.metadata().len(), 1);
    }

    #[test]
    fn files_merges_ranges_per_inode() {
        let hits = vec![
            clip_record(&rec(0, 4096, 5, 0, 0), 0, 1 << 20).unwrap(),
            clip_record(&rec(4096, 4096, 6, 0, FMR_OF_SHARED), 0, 1 << 20).unwrap(),
            clip_record(&rec(8192, 4096, 5, 4096, 0), 0, 1 << 20).unwrap(),
            clip_record(&rec(65536, 4096, 5, 65536, 0), 0, 1 << 20).unwrap(),
            clip_record(
                &rec(12288, 4096, FMR_OWN_FREE, 0, FMR_OF_SPECIAL_OWNER),
                0,
                1 << 20,
            )
            .unwrap(),
        ];
        let res = Resolution {
            physical: 0,
            length: 1 << 20,
            clipped_from: None,
            hits,
        };
        let f = res.files();
        assert_eq!(
            f[&5],
            vec![
                FileRange {
                    offset: 0,
                    length: 8192
                },
                FileRange {
                    offset: 65536,
                    length: 4096
                }
            ]
        );
        assert_eq!(f[&6].len(), 1);
        assert!(res.metadata().is_empty(), "free space is not metadata");
    }

    #[test]
    fn dax_translation_subtracts_the_partition_and_refuses_outside() {
        // Partition at 1 MiB, 100 MiB long.
        let (ps, pb) = (1 << 20, 100 << 20);
        assert_eq!(
            dax_to_fs_range((1 << 20) + 8192, 4096, ps, pb).unwrap(),
            FsRange {
                physical: 8192,
                length: 4096,
                clipped: false
            }
        );
        // Entirely before the partition (e.g. the partition table) or after it.
        assert!(dax_to_fs_range(0, 4096, ps, pb).is_err());
        assert!(dax_to_fs_range(ps + pb, 4096, ps, pb).is_err());
        // Adjacent-before is outside too (exclusive end).
        assert!(dax_to_fs_range(ps - 4096, 4096, ps, pb).is_err());
        // Straddling the start: cut.
        assert_eq!(
            dax_to_fs_range(ps - 4096, 8192, ps, pb).unwrap(),
            FsRange {
                physical: 0,
                length: 4096,
                clipped: true
            }
        );
        // Whole-device pre-remove.
        assert_eq!(
            dax_to_fs_range(0, u64::MAX, ps, pb).unwrap(),
            FsRange {
                physical: 0,
                length: pb,
                clipped: true
            }
        );
        // Whole disk (no partition).
        assert_eq!(dax_to_fs_range(8192, 4096, 0, pb).unwrap().physical, 8192);
        let e = dax_to_fs_range(0, 4096, ps, pb).unwrap_err().to_string();
        assert!(e.contains("does not touch"), "{e}");
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let e = FsmapError::NoRmapbt {
            path: "/mnt".into(),
        }
        .to_string();
        assert!(e.contains("mkfs.xfs -m rmapbt=1"), "{e}");
        assert!(e.contains("notify cannot resolve owners"), "{e}");
    }
}
