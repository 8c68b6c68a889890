//! A minimal, self-contained BTF parser: enough to find struct member offsets, function
//! records and enumerator values in the kernel's BTF (`/sys/kernel/btf/vmlinux`) and in module
//! BTF (`/sys/kernel/btf/<module>`), which is *split* BTF: its type ids and string offsets
//! continue where vmlinux's end.
//!
//! Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst in the kernel tree.
//! Nothing here panics on bad input: a truncated or garbage blob gives a [`BtfError`].

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, Weak},
};

use crate::kernel::names::NameIndex;

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
/// Directory holding vmlinux and per-module BTF files.
pub const SYS_BTF_DIR: &str = "/sys/kernel/btf";

const BTF_MAGIC: u16 = 0xeb9f;
/// Size of the fixed header in version 1 (magic through str_len).
const MIN_HDR_LEN: usize = 24;
/// Guard against cycles in garbage blobs when following type references.
const MAX_RESOLVE_DEPTH: usize = 64;

/// Every BTF kind this parser knows (kernel 6.x: 1..=19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BtfKind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl BtfKind {
    /// Kind from its number in the `info` word (bits 24-28).
    pub fn from_raw(kind: u32) -> Option<Self> {
        Some(match kind {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::Datasec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            _ => return None,
        })
    }

    /// Bytes of kind-specific data that follow the 12-byte `struct btf_type`.
    pub fn trailing_len(self, vlen: u16) -> usize {
        let vlen = usize::from(vlen);
        match self {
            Self::Int => 4,                          // u32 encoding/offset/bits
            Self::Array => 12,                       // struct btf_array
            Self::Struct | Self::Union => 12 * vlen, // struct btf_member
            Self::Enum => 8 * vlen,                  // struct btf_enum
            Self::FuncProto => 8 * vlen,             // struct btf_param
            Self::Var => 4,                          // struct btf_var
            Self::Datasec => 12 * vlen,              // struct btf_var_secinfo
            Self::DeclTag => 4,                      // struct btf_decl_tag
            Self::Enum64 => 12 * vlen,               // struct btf_enum64
            Self::Ptr
            | Self::Fwd
            | Self::Typedef
            | Self::Volatile
            | Self::Const
            | Self::Restrict
            | Self::Func
            | Self::Float
            | Self::TypeTag => 0,
        }
    }

    fn is_modifier(self) -> bool {
        matches!(
            self,
            Self::Typedef | Self::Volatile | Self::Const | Self::Restrict | Self::TypeTag
        )
    }
}

/// Everything that can go wrong; each message says what is wrong and what to do about it.
#[derive(Debug)]
pub enum BtfError {
    /// The BTF file does not exist.
    NoBtf { path: PathBuf, hint: String },
    /// The BTF file exists but could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The blob is not valid BTF (bad magic, truncated, offsets out of range, unknown kind...).
    Malformed { source: String, detail: String },
    /// No struct or union with this name.
    StructNotFound { name: String, source: String },
    /// Structs with this name exist but none has the member.
    MemberNotFound {
        strukt: String,
        member: String,
        candidates: usize,
        source: String,
    },
    /// The member is a bitfield: it has no byte offset.
    Bitfield {
        strukt: String,
        member: String,
        bit_offset: u32,
        bits: u32,
    },
    /// The member's bit offset is not a multiple of 8.
    NotByteAligned {
        strukt: String,
        member: String,
        bit_offset: u32,
    },
    /// A dotted path went through something that is not an embedded struct/union.
    NotAStruct {
        strukt: String,
        path: String,
        what: String,
    },
    /// Several structs with this name have the member at different offsets.
    Ambiguous {
        strukt: String,
        member: String,
        offsets: Vec<u32>,
    },
    /// No FUNC record with this name.
    FuncNotFound { name: String, source: String },
    /// No enumerator with this name.
    EnumeratorNotFound { name: String, source: String },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoBtf { path, hint } => write!(f, "no BTF at {}: {hint}", path.display()),
            Self::Io { path, source } => write!(
                f,
                "cannot read BTF from {}: {source} (reading /sys/kernel/btf needs no privileges; \
                 check the path and that sysfs is mounted)",
                path.display()
            ),
            Self::Malformed { source, detail } => write!(
                f,
                "malformed BTF in {source}: {detail} (is this a raw BTF blob such as \
                 /sys/kernel/btf/vmlinux, and for module BTF, was it parsed against its base?)"
            ),
            Self::StructNotFound { name, source } => write!(
                f,
                "no struct or union named `{name}` in BTF of {source}: this kernel does not have \
                 it (renamed, or in a module whose BTF was not searched?)"
            ),
            Self::MemberNotFound {
                strukt,
                member,
                candidates,
                source,
            } => write!(
                f,
                "struct `{strukt}` in BTF of {source} has no member `{member}` ({candidates} \
                 struct(s) with that name searched, including anonymous sub-structs/unions): the \
                 field was renamed or removed in this kernel version"
            ),
            Self::Bitfield {
                strukt,
                member,
                bit_offset,
                bits,
            } => write!(
                f,
                "`{strukt}.{member}` is a {bits}-bit bitfield at bit {bit_offset}: it has no byte \
                 offset; read the containing word and mask it instead"
            ),
            Self::NotByteAligned {
                strukt,
                member,
                bit_offset,
            } => write!(
                f,
                "`{strukt}.{member}` starts at bit {bit_offset}, which is not byte aligned: it \
                 cannot be read with a byte offset"
            ),
            Self::NotAStruct { strukt, path, what } => write!(
                f,
                "cannot follow `{strukt}.{path}`: {what}; only members of embedded \
                 structs/unions can be reached with one offset (a pointer needs a separate read)"
            ),
            Self::Ambiguous {
                strukt,
                member,
                offsets,
            } => write!(
                f,
                "several structs named `{strukt}` have `{member}` at different byte offsets \
                 {offsets:?}: cannot tell which one the kernel code uses"
            ),
            Self::FuncNotFound { name, source } => write!(
                f,
                "no FUNC record `{name}` in BTF of {source}: the function does not exist, was \
                 inlined, or lives in a module whose BTF was not searched"
            ),
            Self::EnumeratorNotFound { name, source } => {
                write!(f, "no enumerator `{name}` in any enum in BTF of {source}")
            }
        }
    }
}

impl std::error::Error for BtfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct RawMember {
    name_off: u32,
    type_id: u32,
    /// Raw `offset` word: bit offset, or (bitfield size << 24 | bit offset) with kind_flag.
    offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct RawParam {
    name_off: u32,
    type_id: u32,
}

#[derive(Debug, Clone, Copy)]
struct RawEnumerator {
    name_off: u32,
    value: i128,
}

/// Where a type's trailing records are in the kept type section: decoded when a query needs
/// them, not at parse time (a `Vec` per struct, prototype and enum was most of the parse).
#[derive(Debug, Clone, Copy)]
struct Records {
    /// Byte offset in `Inner::type_data`.
    at: u32,
    count: u16,
}

#[derive(Debug, Clone)]
enum Extra {
    None,
    Array {
        elem_type: u32,
        nelems: u32,
    },
    Members(Records),
    Params(Records),
    /// ENUM (8-byte records) or ENUM64 (12-byte records, `wide`).
    Enumerators {
        records: Records,
        wide: bool,
    },
}

#[derive(Debug, Clone)]
struct RawType {
    kind: BtfKind,
    name_off: u32,
    kind_flag: bool,
    /// `size` for INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT; `type` for the others.
    size_or_type: u32,
    extra: Extra,
}

/// A function parameter from a FUNC_PROTO record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncParam {
    /// Empty when the prototype does not name it.
    pub name: String,
    pub type_id: u32,
}

/// What [`Btf::member_info`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Byte offset from the start of the outer struct (anonymous and dotted nesting included).
    pub offset: u32,
    /// Size of the member in bytes, if it can be computed.
    pub size: Option<u32>,
    /// Type id of the member (in the id space of the BTF that was searched).
    pub type_id: u32,
}

struct Inner {
    base: Option<Btf>,
    /// Human-readable origin ("/sys/kernel/btf/vmlinux", "<memory>").
    source: String,
    /// Id of `types[0]`: 1 for base BTF, base's next id for split BTF.
    start_id: u32,
    /// Global offset of `strings[0]`: 0 for base BTF, base's string length for split BTF.
    start_str: u32,
    types: Vec<RawType>,
    /// The type section as read (the records `Records` point into).
    type_data: Vec<u8>,
    big_endian: bool,
    strings: Vec<u8>,
    name_index: OnceLock<NameIndex>,
}

/// Parsed BTF (base or split). Cloning is cheap: the data is shared.
#[derive(Clone)]
pub struct Btf {
    inner: Arc<Inner>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("source", &self.inner.source)
            .field("start_id", &self.inner.start_id)
            .field("types", &self.inner.types.len())
            .field("split", &self.inner.base.is_some())
            .finish()
    }
}

fn malformed(source: &str, detail: impl Into<String>) -> BtfError {
    BtfError::Malformed {
        source: source.to_string(),
        detail: detail.into(),
    }
}

fn read_file(path: &Path, hint: &str) -> Result<Vec<u8>, BtfError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BtfError::NoBtf {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            }
        } else {
            BtfError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

const VMLINUX_HINT: &str = "this kernel was built without CONFIG_DEBUG_INFO_BTF (or sysfs is not \
                            mounted); notify needs it to find struct offsets";

impl Btf {
    /// Parses a base (non-split) BTF blob, e.g. the contents of `/sys/kernel/btf/vmlinux` or a
    /// `.BTF` ELF section.
    pub fn from_bytes(data: &[u8]) -> Result<Self, BtfError> {
        Self::parse(data, None, "<memory>".to_string())
    }

    /// Parses split BTF (module BTF) whose type ids and strings continue those of `base`.
    pub fn from_split_bytes(data: &[u8], base: &Btf) -> Result<Self, BtfError> {
        Self::parse(data, Some(base.clone()), "<memory>".to_string())
    }

    /// Parses a base BTF file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        let data = read_file(path, "the file does not exist")?;
        Self::parse(&data, None, path.display().to_string())
    }

    /// Parses a split BTF file (e.g. `/sys/kernel/btf/xfs`) against `base` (vmlinux).
    pub fn from_split_file(path: impl AsRef<Path>, base: &Btf) -> Result<Self, BtfError> {
        let path = path.as_ref();
        let data = read_file(path, "the file does not exist")?;
        Self::parse(&data, Some(base.clone()), path.display().to_string())
    }

    /// The running kernel's BTF, parsed once and shared (cheap clones) while anyone holds it.
    /// The cache holds it weakly: parsed vmlinux BTF is tens of MiB of heap, needed while the
    /// probes load and never again by a long-running agent.
    pub fn vmlinux() -> Result<Self, BtfError> {
        static CACHE: Mutex<Weak<Inner>> = Mutex::new(Weak::new());
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inner) = cache.upgrade() {
            return Ok(Btf { inner });
        }
        let path = Path::new(VMLINUX_BTF_PATH);
        let data = read_file(path, VMLINUX_HINT)?;
        let btf = Self::parse(&data, None, VMLINUX_BTF_PATH.to_string())?;
        *cache = Arc::downgrade(&btf.inner);
        Ok(btf)
    }

    /// Path of a module's BTF file (whether or not it exists).
    pub fn module_path(module: &str) -> PathBuf {
        Path::new(SYS_BTF_DIR).join(module)
    }

    /// Whether the running kernel exposes BTF for `module` (loaded module with BTF).
    pub fn module_present(module: &str) -> bool {
        valid_module_name(module) && Self::module_path(module).is_file()
    }

    /// BTF of a loaded module, `/sys/kernel/btf/<module>`, parsed against `base` (vmlinux).
    pub fn module(module: &str, base: &Btf) -> Result<Self, BtfError> {
        if !valid_module_name(module) {
            return Err(BtfError::NoBtf {
                path: Self::module_path(module.trim_start_matches('/')),
                hint: format!("`{module}` is not a valid module name"),
            });
        }
        let path = Self::module_path(module);
        let hint = format!(
            "module `{module}` is not loaded, is built into the kernel (then its types are in \
             vmlinux: use Btf::for_module_or_vmlinux), or the kernel lacks \
             CONFIG_DEBUG_INFO_BTF_MODULES"
        );
        let data = read_file(&path, &hint)?;
        Self::parse(&data, Some(base.clone()), path.display().to_string())
    }

    /// Module BTF if `/sys/kernel/btf/<module>` exists (split against vmlinux, so searches fall
    /// back to vmlinux types), else vmlinux itself (the module is built in or not loaded).
    pub fn for_module_or_vmlinux(module: &str) -> Result<Self, BtfError> {
        let vmlinux = Self::vmlinux()?;
        if Self::module_present(module) {
            Self::module(module, &vmlinux)
        } else {
            Ok(vmlinux)
        }
    }

    /// Where this BTF came from (a path or `<memory>`).
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Whether this is split BTF.
    pub fn is_split(&self) -> bool {
        self.inner.base.is_some()
    }

    /// The base BTF of split BTF.
    pub fn base(&self) -> Option<&Btf> {
        self.inner.base.as_ref()
    }

    /// The first type id defined by this blob (1 for base BTF).
    pub fn start_id(&self) -> u32 {
        self.inner.start_id
    }

    /// Number of types defined by this blob (not counting its base).
    pub fn own_type_count(&self) -> usize {
        self.inner.types.len()
    }

    /// One past the largest valid type id, counting the base.
    pub fn next_id(&self) -> u32 {
        self.inner.start_id + self.inner.types.len() as u32
    }

    /// One past the largest valid string offset, counting the base (where split BTF built on
    /// this one starts its strings).
    pub fn str_end(&self) -> u32 {
        self.inner.start_str + self.inner.strings.len() as u32
    }
}

fn strip_tag(name: &str) -> &str {
    name.strip_prefix("struct ")
        .or_else(|| name.strip_prefix("union "))
        .unwrap_or(name)
        .trim()
}

fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name != "vmlinux"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

mod parse;
mod query;

/// Builds raw BTF blobs for tests (here and in `tests/`).
pub mod builder;

#[cfg(test)]
mod tests;
