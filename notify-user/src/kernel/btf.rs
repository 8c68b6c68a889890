//! A minimal, self-contained BTF parser: enough to find struct member offsets, function
//! records and enumerator values in the kernel's BTF (`/sys/kernel/btf/vmlinux`) and in module
//! BTF (`/sys/kernel/btf/<module>`), which is *split* BTF: its type ids and string offsets
//! continue where vmlinux's end.
//!
//! Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst in the kernel tree.
//! Nothing here panics on bad input: a truncated or garbage blob gives a [`BtfError`].

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, Weak},
};

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

#[derive(Debug, Clone)]
enum Extra {
    None,
    Array { elem_type: u32, nelems: u32 },
    Members(Vec<RawMember>),
    Params(Vec<RawParam>),
    Enumerators(Vec<RawEnumerator>),
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
    strings: Vec<u8>,
    name_index: OnceLock<HashMap<String, Vec<u32>>>,
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

struct Reader<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u32_at(&self, pos: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
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

    fn parse(data: &[u8], base: Option<Btf>, source: String) -> Result<Self, BtfError> {
        let src = source.as_str();
        if data.len() < MIN_HDR_LEN {
            return Err(malformed(
                src,
                format!(
                    "{} bytes is shorter than the {MIN_HDR_LEN}-byte header",
                    data.len()
                ),
            ));
        }
        let magic_le = u16::from_le_bytes([data[0], data[1]]);
        let big_endian = match magic_le {
            BTF_MAGIC => false,
            m if m.swap_bytes() == BTF_MAGIC => true,
            m => {
                return Err(malformed(
                    src,
                    format!("bad magic {m:#06x}, expected {BTF_MAGIC:#06x}"),
                ));
            }
        };
        let version = data[2];
        if version != 1 {
            return Err(malformed(
                src,
                format!("unsupported BTF version {version} (this parser knows version 1)"),
            ));
        }
        let r = Reader { data, big_endian };
        let field = |pos| {
            r.u32_at(pos)
                .ok_or_else(|| malformed(src, "truncated header"))
        };
        let hdr_len = field(4)? as usize;
        let type_off = field(8)? as usize;
        let type_len = field(12)? as usize;
        let str_off = field(16)? as usize;
        let str_len = field(20)? as usize;
        if hdr_len < MIN_HDR_LEN || hdr_len > data.len() {
            return Err(malformed(
                src,
                format!(
                    "header length {hdr_len} out of range (blob is {} bytes)",
                    data.len()
                ),
            ));
        }
        // A longer header (future version) must have zeroes in the part we do not know.
        if data[MIN_HDR_LEN..hdr_len].iter().any(|&b| b != 0) {
            return Err(malformed(
                src,
                "header has unknown non-zero fields (newer BTF format?)",
            ));
        }
        let section = |off: usize, len: usize, what: &str| {
            let start = hdr_len
                .checked_add(off)
                .ok_or_else(|| malformed(src, format!("{what} offset overflows")))?;
            let end = start
                .checked_add(len)
                .ok_or_else(|| malformed(src, format!("{what} length overflows")))?;
            if end > data.len() {
                return Err(malformed(
                    src,
                    format!(
                        "{what} [{start}, {end}) runs past the end of the {}-byte blob (truncated?)",
                        data.len()
                    ),
                ));
            }
            Ok((start, end))
        };
        let (t_start, t_end) = section(type_off, type_len, "type section")?;
        let (s_start, s_end) = section(str_off, str_len, "string section")?;
        if t_start < s_end && s_start < t_end {
            return Err(malformed(src, "type and string sections overlap"));
        }
        if !type_len.is_multiple_of(4) {
            return Err(malformed(
                src,
                format!("type section length {type_len} is not a multiple of 4"),
            ));
        }

        let strings = data[s_start..s_end].to_vec();
        let (start_id, start_str) = match &base {
            None => {
                if strings.first().is_some_and(|&b| b != 0) {
                    return Err(malformed(
                        src,
                        "string section does not start with the empty string (is this split \
                         BTF that needs a base?)",
                    ));
                }
                (1u32, 0u32)
            }
            Some(b) => (b.next_id(), b.str_end()),
        };
        if strings.last().is_some_and(|&b| b != 0) {
            return Err(malformed(src, "string section is not NUL-terminated"));
        }
        if u32::try_from(strings.len())
            .ok()
            .and_then(|l| l.checked_add(start_str))
            .is_none()
        {
            return Err(malformed(src, "string section too large"));
        }

        let mut types = Vec::new();
        let mut pos = t_start;
        while pos < t_end {
            let id = u64::from(start_id) + types.len() as u64;
            let at = |detail: String| {
                malformed(
                    src,
                    format!(
                        "type id {id} at byte {} of the type section: {detail}",
                        pos - t_start
                    ),
                )
            };
            if id >= u64::from(u32::MAX) {
                return Err(at("too many types".into()));
            }
            if pos + 12 > t_end {
                return Err(at("truncated btf_type record".into()));
            }
            let word = |off: usize| r.u32_at(off).ok_or_else(|| at("truncated".into()));
            let name_off = word(pos)?;
            let info = word(pos + 4)?;
            let size_or_type = word(pos + 8)?;
            let raw_kind = (info >> 24) & 0x1f;
            let kind = BtfKind::from_raw(raw_kind).ok_or_else(|| {
                at(format!(
                    "unknown BTF kind {raw_kind} (this parser knows kinds 1-19; newer kernel?)"
                ))
            })?;
            let vlen = (info & 0xffff) as u16;
            let kind_flag = info >> 31 == 1;
            let body = pos + 12;
            let trailing = kind.trailing_len(vlen);
            let end = body + trailing;
            if end > t_end {
                return Err(at(format!(
                    "{kind:?} with vlen {vlen} needs {trailing} more bytes than the section has"
                )));
            }
            let extra = match kind {
                BtfKind::Array => Extra::Array {
                    elem_type: word(body)?,
                    nelems: word(body + 8)?,
                },
                BtfKind::Struct | BtfKind::Union => Extra::Members(
                    (0..usize::from(vlen))
                        .map(|i| {
                            let p = body + 12 * i;
                            Ok(RawMember {
                                name_off: word(p)?,
                                type_id: word(p + 4)?,
                                offset: word(p + 8)?,
                            })
                        })
                        .collect::<Result<_, BtfError>>()?,
                ),
                BtfKind::FuncProto => Extra::Params(
                    (0..usize::from(vlen))
                        .map(|i| {
                            let p = body + 8 * i;
                            Ok(RawParam {
                                name_off: word(p)?,
                                type_id: word(p + 4)?,
                            })
                        })
                        .collect::<Result<_, BtfError>>()?,
                ),
                BtfKind::Enum => Extra::Enumerators(
                    (0..usize::from(vlen))
                        .map(|i| {
                            let p = body + 8 * i;
                            let v = word(p + 4)?;
                            let value = if kind_flag {
                                i128::from(v as i32)
                            } else {
                                i128::from(v)
                            };
                            Ok(RawEnumerator {
                                name_off: word(p)?,
                                value,
                            })
                        })
                        .collect::<Result<_, BtfError>>()?,
                ),
                BtfKind::Enum64 => Extra::Enumerators(
                    (0..usize::from(vlen))
                        .map(|i| {
                            let p = body + 12 * i;
                            let v = u64::from(word(p + 4)?) | (u64::from(word(p + 8)?) << 32);
                            let value = if kind_flag {
                                i128::from(v as i64)
                            } else {
                                i128::from(v)
                            };
                            Ok(RawEnumerator {
                                name_off: word(p)?,
                                value,
                            })
                        })
                        .collect::<Result<_, BtfError>>()?,
                ),
                _ => Extra::None,
            };
            types.push(RawType {
                kind,
                name_off,
                kind_flag,
                size_or_type,
                extra,
            });
            pos = end;
        }

        Ok(Self {
            inner: Arc::new(Inner {
                base,
                source,
                start_id,
                start_str,
                types,
                strings,
                name_index: OnceLock::new(),
            }),
        })
    }

    /// The string at a global string offset (`None` when out of range or not UTF-8).
    fn string(&self, off: u32) -> Option<&str> {
        if off < self.inner.start_str {
            return self.inner.base.as_ref()?.string(off);
        }
        let rel = (off - self.inner.start_str) as usize;
        let tail = self.inner.strings.get(rel..)?;
        let len = tail.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&tail[..len]).ok()
    }

    /// The type record with global id `id` (id 0 is `void`: `None`).
    fn get(&self, id: u32) -> Option<(&Btf, &RawType)> {
        if id < self.inner.start_id {
            return self.inner.base.as_ref()?.get(id);
        }
        let t = self.inner.types.get((id - self.inner.start_id) as usize)?;
        Some((self, t))
    }

    fn name_index(&self) -> &HashMap<String, Vec<u32>> {
        self.inner.name_index.get_or_init(|| {
            let mut index: HashMap<String, Vec<u32>> = HashMap::new();
            for (i, t) in self.inner.types.iter().enumerate() {
                if t.name_off == 0 {
                    continue;
                }
                if let Some(name) = self.string(t.name_off).filter(|n| !n.is_empty()) {
                    index
                        .entry(name.to_string())
                        .or_default()
                        .push(self.inner.start_id + i as u32);
                }
            }
            index
        })
    }

    /// Ids of all types named `name` of one of `kinds`, this blob first, then its base.
    fn find_ids(&self, name: &str, kinds: &[BtfKind]) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .name_index()
            .get(name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&id| self.get(id).is_some_and(|(_, t)| kinds.contains(&t.kind)))
            .collect();
        if let Some(base) = &self.inner.base {
            out.extend(base.find_ids(name, kinds));
        }
        out
    }

    /// Type ids of every type with this name and kind (this blob first, then the base).
    pub fn find_types(&self, name: &str, kind: BtfKind) -> Vec<u32> {
        self.find_ids(name, &[kind])
    }

    /// Kind and name of a type id (`None` for void or an unknown id).
    pub fn type_kind_and_name(&self, id: u32) -> Option<(BtfKind, &str)> {
        let (owner, t) = self.get(id)?;
        Some((t.kind, owner.string(t.name_off).unwrap_or("")))
    }

    /// Follows typedefs and const/volatile/restrict/type_tag to the underlying type id.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.get(id) {
                Some((_, t)) if t.kind.is_modifier() => id = t.size_or_type,
                _ => return id,
            }
        }
        id
    }

    /// Size in bytes of a type, when it has one (pointers count as the host's pointer size).
    pub fn type_size(&self, id: u32) -> Option<u32> {
        self.type_size_depth(id, 0)
    }

    fn type_size_depth(&self, id: u32, depth: usize) -> Option<u32> {
        if depth > MAX_RESOLVE_DEPTH {
            return None;
        }
        let (_, t) = self.get(id)?;
        match t.kind {
            BtfKind::Int
            | BtfKind::Struct
            | BtfKind::Union
            | BtfKind::Enum
            | BtfKind::Enum64
            | BtfKind::Float
            | BtfKind::Datasec => Some(t.size_or_type),
            BtfKind::Ptr => Some(std::mem::size_of::<usize>() as u32),
            BtfKind::Array => match t.extra {
                Extra::Array { elem_type, nelems } => self
                    .type_size_depth(elem_type, depth + 1)?
                    .checked_mul(nelems),
                _ => None,
            },
            k if k.is_modifier() => self.type_size_depth(t.size_or_type, depth + 1),
            BtfKind::Var => self.type_size_depth(t.size_or_type, depth + 1),
            _ => None,
        }
    }

    /// Size in bytes of the struct or union `name` (the first one if several share the name).
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let name = strip_tag(name);
        self.find_ids(name, &[BtfKind::Struct, BtfKind::Union])
            .first()
            .and_then(|&id| self.type_size(id))
            .ok_or_else(|| BtfError::StructNotFound {
                name: name.to_string(),
                source: self.source().to_string(),
            })
    }

    /// Byte offset of `member` in struct/union `strukt`. `member` may be a dotted path through
    /// embedded structs (`"m_sb.sb_blocksize"`); members of anonymous structs/unions are found
    /// directly. `strukt` may carry a `struct `/`union ` prefix.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        self.member_info(strukt, member).map(|m| m.offset)
    }

    /// Like [`Btf::member_offset`], with the member's size and type.
    pub fn member_info(&self, strukt: &str, member: &str) -> Result<MemberInfo, BtfError> {
        let strukt = strip_tag(strukt);
        let candidates = self.find_ids(strukt, &[BtfKind::Struct, BtfKind::Union]);
        if candidates.is_empty() {
            return Err(BtfError::StructNotFound {
                name: strukt.to_string(),
                source: self.source().to_string(),
            });
        }
        let mut found: Vec<MemberInfo> = Vec::new();
        let mut first_err: Option<BtfError> = None;
        for &id in &candidates {
            match self.member_path(strukt, id, member) {
                Ok(Some(info)) => {
                    if !found.iter().any(|f| f.offset == info.offset) {
                        found.push(info);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match found.len() {
            0 => Err(first_err.unwrap_or_else(|| BtfError::MemberNotFound {
                strukt: strukt.to_string(),
                member: member.to_string(),
                candidates: candidates.len(),
                source: self.source().to_string(),
            })),
            1 => Ok(found.remove(0)),
            _ => Err(BtfError::Ambiguous {
                strukt: strukt.to_string(),
                member: member.to_string(),
                offsets: found.iter().map(|f| f.offset).collect(),
            }),
        }
    }

    /// Resolves a dotted member path in struct `id`. `Ok(None)`: the first component is absent
    /// (try another struct of the same name).
    fn member_path(
        &self,
        strukt: &str,
        id: u32,
        path: &str,
    ) -> Result<Option<MemberInfo>, BtfError> {
        let mut container = id;
        let mut total = 0u32;
        let mut last: Option<MemberInfo> = None;
        for (i, component) in path.split('.').enumerate() {
            let walked = path.split('.').take(i + 1).collect::<Vec<_>>().join(".");
            if i > 0 {
                let resolved = self.resolve(container);
                match self.get(resolved) {
                    Some((_, t)) if matches!(t.kind, BtfKind::Struct | BtfKind::Union) => {
                        container = resolved;
                    }
                    other => {
                        let what = match other {
                            Some((_, t)) => format!("{:?}", t.kind).to_lowercase(),
                            None => "void".into(),
                        };
                        return Err(BtfError::NotAStruct {
                            strukt: strukt.to_string(),
                            path: walked,
                            what: format!("the part before `{component}` is a {what}"),
                        });
                    }
                }
            }
            match self.find_member(container, component, 0)? {
                Some((bit_offset, bits, type_id)) => {
                    if bits != 0 {
                        return Err(BtfError::Bitfield {
                            strukt: strukt.to_string(),
                            member: walked,
                            bit_offset,
                            bits,
                        });
                    }
                    if bit_offset % 8 != 0 {
                        return Err(BtfError::NotByteAligned {
                            strukt: strukt.to_string(),
                            member: walked,
                            bit_offset,
                        });
                    }
                    total = total
                        .checked_add(bit_offset / 8)
                        .ok_or_else(|| malformed(self.source(), "member offsets overflow u32"))?;
                    container = type_id;
                    last = Some(MemberInfo {
                        offset: total,
                        size: self.type_size(type_id),
                        type_id,
                    });
                }
                None if i == 0 => return Ok(None),
                None => {
                    return Err(BtfError::MemberNotFound {
                        strukt: strukt.to_string(),
                        member: walked,
                        candidates: 1,
                        source: self.source().to_string(),
                    });
                }
            }
        }
        Ok(last)
    }

    /// Finds `name` in struct/union `id`, descending into anonymous members. Returns the bit
    /// offset from the start of `id`, the bitfield size (0: not a bitfield) and the type id.
    fn find_member(
        &self,
        id: u32,
        name: &str,
        depth: usize,
    ) -> Result<Option<(u32, u32, u32)>, BtfError> {
        if depth > MAX_RESOLVE_DEPTH {
            return Err(malformed(
                self.source(),
                "anonymous member nesting too deep (type cycle?)",
            ));
        }
        let Some((owner, t)) = self.get(id) else {
            return Ok(None);
        };
        let Extra::Members(members) = &t.extra else {
            return Ok(None);
        };
        let split = |m: &RawMember| {
            if t.kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            }
        };
        for m in members {
            let mname = owner.string(m.name_off).unwrap_or("");
            if !mname.is_empty() && mname == name {
                let (bit_offset, bits) = split(m);
                return Ok(Some((bit_offset, bits, m.type_id)));
            }
        }
        for m in members {
            if owner.string(m.name_off).unwrap_or("").is_empty() {
                let inner = self.resolve(m.type_id);
                let is_aggregate = self
                    .get(inner)
                    .is_some_and(|(_, it)| matches!(it.kind, BtfKind::Struct | BtfKind::Union));
                if !is_aggregate {
                    continue;
                }
                if let Some((off, bits, ty)) = self.find_member(inner, name, depth + 1)? {
                    let (base_off, _) = split(m);
                    let off = base_off
                        .checked_add(off)
                        .ok_or_else(|| malformed(self.source(), "member offsets overflow u32"))?;
                    return Ok(Some((off, bits, ty)));
                }
            }
        }
        Ok(None)
    }

    /// Whether a FUNC record named `name` exists (here or in the base).
    pub fn has_func(&self, name: &str) -> bool {
        !self.find_ids(name, &[BtfKind::Func]).is_empty()
    }

    /// Parameters of function `name` from its FUNC_PROTO. A trailing `...` is not listed.
    pub fn func_params(&self, name: &str) -> Result<Vec<FuncParam>, BtfError> {
        let not_found = || BtfError::FuncNotFound {
            name: name.to_string(),
            source: self.source().to_string(),
        };
        let id = *self
            .find_ids(name, &[BtfKind::Func])
            .first()
            .ok_or_else(not_found)?;
        let (_, func) = self.get(id).ok_or_else(not_found)?;
        let (owner, proto) = self.get(func.size_or_type).ok_or_else(|| {
            malformed(
                self.source(),
                format!("FUNC `{name}` points at missing type {}", func.size_or_type),
            )
        })?;
        let Extra::Params(params) = &proto.extra else {
            return Err(malformed(
                self.source(),
                format!(
                    "FUNC `{name}` points at a {:?}, not a FUNC_PROTO",
                    proto.kind
                ),
            ));
        };
        Ok(params
            .iter()
            .filter(|p| !(p.type_id == 0 && p.name_off == 0))
            .map(|p| FuncParam {
                name: owner.string(p.name_off).unwrap_or("").to_string(),
                type_id: p.type_id,
            })
            .collect())
    }

    /// Number of named parameters of function `name` (varargs not counted).
    pub fn func_proto_arg_count(&self, name: &str) -> Result<usize, BtfError> {
        self.func_params(name).map(|p| p.len())
    }

    /// Value of enumerator `name` in any ENUM/ENUM64 (e.g. `MF_MSG_DAX`).
    pub fn enumerator_value(&self, name: &str) -> Result<i128, BtfError> {
        let mut btf = Some(self);
        while let Some(b) = btf {
            for t in &b.inner.types {
                if let Extra::Enumerators(values) = &t.extra
                    && let Some(e) = values.iter().find(|e| b.string(e.name_off) == Some(name))
                {
                    return Ok(e.value);
                }
            }
            btf = b.inner.base.as_ref();
        }
        Err(BtfError::EnumeratorNotFound {
            name: name.to_string(),
            source: self.source().to_string(),
        })
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

/// Builds raw BTF blobs for tests (here and in `tests/`).
#[doc(hidden)]
pub mod builder {
    /// Little-endian BTF blob builder.
    #[derive(Default)]
    pub struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        /// Global offset of `strings[0]` (base's string length for split BTF).
        str_base: u32,
        count: u32,
        start_id: u32,
    }

    impl BtfBuilder {
        /// A builder for base BTF (ids from 1, strings from offset 0).
        pub fn new() -> Self {
            Self {
                strings: vec![0],
                start_id: 1,
                ..Default::default()
            }
        }

        /// A builder for split BTF continuing at type id `start_id` and string offset `str_base`.
        pub fn split(start_id: u32, str_base: u32) -> Self {
            Self {
                str_base,
                start_id,
                ..Default::default()
            }
        }

        /// Adds a string, returning its global offset (0 for "" in base BTF).
        pub fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() && self.str_base == 0 {
                return 0;
            }
            let off = self.str_base + self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        /// Adds a raw type record; returns its id.
        pub fn raw(
            &mut self,
            name: &str,
            kind: u32,
            kind_flag: bool,
            vlen: u16,
            size_or_type: u32,
            trailing: &[u32],
        ) -> u32 {
            let name_off = self.string(name);
            let info = (u32::from(kind_flag) << 31) | (kind << 24) | u32::from(vlen);
            for w in [name_off, info, size_or_type].iter().chain(trailing) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            let id = self.start_id + self.count;
            self.count += 1;
            id
        }

        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            self.raw(name, 1, false, 0, size, &[size * 8])
        }

        pub fn ptr(&mut self, target: u32) -> u32 {
            self.raw("", 2, false, 0, target, &[])
        }

        /// Struct (or union when `union`) with members `(name, type, bit offset, bitfield bits)`.
        pub fn composite(
            &mut self,
            name: &str,
            union: bool,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let kind_flag = members.iter().any(|m| m.3 != 0);
            let mut trailing = Vec::new();
            for &(mname, ty, bit_off, bits) in members {
                trailing.push(self.string(mname));
                trailing.push(ty);
                trailing.push(if kind_flag {
                    (bits << 24) | bit_off
                } else {
                    bit_off
                });
            }
            self.raw(
                name,
                if union { 5 } else { 4 },
                kind_flag,
                members.len() as u16,
                size,
                &trailing,
            )
        }

        pub fn func(&mut self, name: &str, params: &[(&str, u32)], ret: u32) -> u32 {
            let mut trailing = Vec::new();
            for &(pname, ty) in params {
                trailing.push(self.string(pname));
                trailing.push(ty);
            }
            let proto = self.raw("", 13, false, params.len() as u16, ret, &trailing);
            self.raw(name, 12, false, 1, proto, &[])
        }

        /// The finished blob.
        pub fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9fu16.to_le_bytes());
            out.push(1); // version
            out.push(0); // flags
            for w in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }

        /// Global string length after this blob (for chaining split builders).
        pub fn str_end(&self) -> u32 {
            self.str_base + self.strings.len() as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{builder::BtfBuilder, *};

    /// A small base BTF: int, struct outer { int a; union { int b; struct { int c; }; }; int d:3;
    /// int e:5 (at bit 3); }, two structs `dup`, a pointer struct, a function.
    fn sample() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4); // 1
        let inner_s = b.composite("", false, 4, &[("c", int, 0, 0)]); // 2
        let anon_u = b.composite("", true, 4, &[("b", int, 0, 0), ("", inner_s, 0, 0)]); // 3
        let _outer = b.composite(
            "outer",
            false,
            16,
            &[
                ("a", int, 0, 0),
                ("", anon_u, 32, 0),
                ("d", int, 64, 3),
                ("e", int, 67, 5),
            ],
        );
        b.composite("dup", false, 4, &[("x", int, 0, 0)]);
        b.composite("dup", false, 8, &[("y", int, 32, 0)]);
        let outer_ptr = b.ptr(4);
        b.composite(
            "holder",
            false,
            24,
            &[("p", outer_ptr, 0, 0), ("o", 4, 64, 0)],
        );
        b.composite("odd", false, 4, &[("q", int, 4, 0)]);
        b.func("do_thing", &[("x", int), ("y", outer_ptr)], int);
        b.build()
    }

    #[test]
    fn parses_sample_and_finds_members() {
        let btf = Btf::from_bytes(&sample()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 4);
        assert_eq!(btf.member_offset("struct outer", "c").unwrap(), 4);
        assert_eq!(btf.member_info("outer", "a").unwrap().size, Some(4));
        assert_eq!(btf.struct_size("outer").unwrap(), 16);
        // Dotted paths through embedded structs, not through pointers.
        assert_eq!(btf.member_offset("holder", "o.b").unwrap(), 12);
        assert!(matches!(
            btf.member_offset("holder", "p.a"),
            Err(BtfError::NotAStruct { .. })
        ));
        // Several structs named `dup`: the one with the member wins.
        assert_eq!(btf.member_offset("dup", "x").unwrap(), 0);
        assert_eq!(btf.member_offset("dup", "y").unwrap(), 4);
        assert!(btf.has_func("do_thing"));
        assert!(!btf.has_func("outer"));
        assert_eq!(btf.func_proto_arg_count("do_thing").unwrap(), 2);
        assert_eq!(btf.func_params("do_thing").unwrap()[1].name, "y");
    }

    #[test]
    fn member_errors_are_specific() {
        let btf = Btf::from_bytes(&sample()).unwrap();
        let e = btf.member_offset("outer", "d").unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::Bitfield {
                    bits: 3,
                    bit_offset: 64,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("bitfield"));
        let e = btf.member_offset("outer", "e").unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::Bitfield {
                    bits: 5,
                    bit_offset: 67,
                    ..
                }
            ),
            "{e}"
        );
        let e = btf.member_offset("odd", "q").unwrap_err();
        assert!(
            matches!(e, BtfError::NotByteAligned { bit_offset: 4, .. }),
            "{e}"
        );
        let e = btf.member_offset("nope", "a").unwrap_err();
        assert!(matches!(e, BtfError::StructNotFound { .. }), "{e}");
        assert!(e.to_string().contains("`nope`"));
        let e = btf.member_offset("dup", "z").unwrap_err();
        assert!(
            matches!(e, BtfError::MemberNotFound { candidates: 2, .. }),
            "{e}"
        );
        let e = btf.member_offset("outer", "b.zz").unwrap_err();
        assert!(matches!(e, BtfError::NotAStruct { .. }), "{e}");
        assert!(matches!(
            btf.func_params("missing"),
            Err(BtfError::FuncNotFound { .. })
        ));
        assert!(matches!(
            btf.enumerator_value("MISSING"),
            Err(BtfError::EnumeratorNotFound { .. })
        ));
    }

    #[test]
    fn ambiguous_offsets_are_reported() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        b.composite("twin", false, 8, &[("m", int, 0, 0)]);
        b.composite("twin", false, 8, &[("m", int, 32, 0)]);
        let btf = Btf::from_bytes(&b.build()).unwrap();
        let e = btf.member_offset("twin", "m").unwrap_err();
        assert!(
            matches!(&e, BtfError::Ambiguous { offsets, .. } if offsets == &[0, 4]),
            "{e}"
        );
    }

    #[test]
    fn every_kind_is_walked() {
        // One record of every kind, then a struct after them: if any trailing size were wrong
        // the struct would not parse.
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4); // 1 INT
        b.raw("", 2, false, 0, int, &[]); // 2 PTR
        b.raw("", 3, false, 0, 0, &[int, int, 7]); // 3 ARRAY int[7]
        b.composite("s", false, 4, &[("f", int, 0, 0)]); // 4 STRUCT
        b.composite("u", true, 4, &[("f", int, 0, 0)]); // 5 UNION
        let a = b.string("A");
        let bb = b.string("B");
        b.raw("e", 6, true, 2, 4, &[a, (-1i32) as u32, bb, 2]); // 6 ENUM (signed)
        b.raw("fwd", 7, false, 0, 0, &[]); // 7 FWD
        b.raw("td", 8, false, 0, 3, &[]); // 8 TYPEDEF -> array
        b.raw("", 9, false, 0, int, &[]); // 9 VOLATILE
        b.raw("", 10, false, 0, 8, &[]); // 10 CONST -> typedef
        b.raw("", 11, false, 0, 2, &[]); // 11 RESTRICT
        let fid = b.func("f", &[("x", int), ("", 0)], int); // 12 FUNC_PROTO, 13 FUNC
        b.raw("v", 14, false, 0, int, &[1]); // 14 VAR
        b.raw(".data", 15, false, 1, 4, &[14, 0, 4]); // 15 DATASEC
        b.raw("double", 16, false, 0, 8, &[]); // 16 FLOAT
        b.raw("tag", 17, false, 0, fid, &[u32::MAX]); // 17 DECL_TAG
        b.raw("user", 18, false, 0, int, &[]); // 18 TYPE_TAG
        let c = b.string("BIG");
        b.raw("e64", 19, false, 1, 8, &[c, 0, 0x8000_0000]); // 19 ENUM64 unsigned
        b.composite("last", false, 32, &[("g", 10, 0, 0), ("h", 6, 224, 0)]); // 20
        let btf = Btf::from_bytes(&b.build()).unwrap();
        assert_eq!(btf.own_type_count(), 20);
        assert_eq!(btf.member_offset("last", "h").unwrap(), 28);
        assert_eq!(btf.member_info("last", "g").unwrap().size, Some(28));
        assert_eq!(btf.enumerator_value("A").unwrap(), -1);
        assert_eq!(btf.enumerator_value("B").unwrap(), 2);
        assert_eq!(btf.enumerator_value("BIG").unwrap(), 1i128 << 63);
        assert_eq!(
            btf.func_proto_arg_count("f").unwrap(),
            1,
            "varargs not counted"
        );
        assert_eq!(btf.type_kind_and_name(16), Some((BtfKind::Float, "double")));
        assert_eq!(btf.type_kind_and_name(18), Some((BtfKind::TypeTag, "user")));
    }

    #[test]
    fn split_btf_continues_ids_and_strings() {
        let base_blob = sample();
        let base = Btf::from_bytes(&base_blob).unwrap();
        let mut m = BtfBuilder::split(base.next_id(), base.str_end());
        // A module struct embedding base's `outer` and pointing at base's `int` (id 1).
        let mod_s = m.composite("mod_s", false, 24, &[("x", 1, 0, 0), ("o", 4, 64, 0)]);
        assert_eq!(mod_s, base.next_id());
        m.func("mod_fn", &[("s", mod_s)], 1);
        let split = Btf::from_split_bytes(&m.build(), &base).unwrap();
        assert!(split.is_split());
        assert_eq!(split.member_offset("mod_s", "o.c").unwrap(), 12);
        // Base types are visible through the split BTF.
        assert_eq!(split.member_offset("outer", "b").unwrap(), 4);
        assert!(split.has_func("mod_fn") && split.has_func("do_thing"));
        assert!(!base.has_func("mod_fn"));
        // The same blob without its base is rejected or at least cannot resolve names.
        assert!(Btf::from_bytes(&m.build()).is_err());
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let blob = sample();
        for len in 0..blob.len() {
            let _ = Btf::from_bytes(&blob[..len]);
        }
        assert!(Btf::from_bytes(&blob[..blob.len() - 1]).is_err());
        assert!(Btf::from_bytes(&[]).is_err());
        assert!(Btf::from_bytes(&[0u8; 64]).is_err());
        // Flip every byte (one at a time) and query: errors are fine, panics are not.
        for i in 0..blob.len() {
            for x in [0xff, 0x80, 0x01] {
                let mut b = blob.clone();
                b[i] ^= x;
                if let Ok(btf) = Btf::from_bytes(&b) {
                    let _ = btf.member_offset("outer", "c");
                    let _ = btf.member_offset("holder", "o.b");
                    let _ = btf.func_params("do_thing");
                    let _ = btf.struct_size("outer");
                    let _ = btf.enumerator_value("X");
                    for id in 0..btf.next_id() + 2 {
                        let _ = btf.type_size(id);
                        let _ = btf.resolve(id);
                    }
                }
            }
        }
        // Pseudo-random garbage with a valid header.
        let mut seed = 0x1234_5678u32;
        for _ in 0..200 {
            let mut b = blob[..24].to_vec();
            for _ in 0..blob.len() - 24 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b.push((seed >> 16) as u8);
            }
            if let Ok(btf) = Btf::from_bytes(&b) {
                let _ = btf.member_offset("outer", "c");
            }
        }
    }

    #[test]
    fn header_errors_are_explained() {
        let e = Btf::from_bytes(&[0x9f, 0xeb, 2, 0]).unwrap_err();
        assert!(e.to_string().contains("shorter"), "{e}");
        let mut blob = sample();
        blob[2] = 2;
        assert!(
            Btf::from_bytes(&blob)
                .unwrap_err()
                .to_string()
                .contains("version")
        );
        let mut blob = sample();
        blob[0] = 0;
        assert!(
            Btf::from_bytes(&blob)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        let e = Btf::from_file("/nonexistent/btf").unwrap_err();
        assert!(matches!(e, BtfError::NoBtf { .. }), "{e}");
    }

    #[test]
    fn type_cycles_do_not_hang() {
        let mut b = BtfBuilder::new();
        b.raw("a", 8, false, 0, 2, &[]); // typedef a -> 2
        b.raw("b", 8, false, 0, 1, &[]); // typedef b -> 1
        // struct self with an anonymous member of its own type.
        b.composite("selfref", false, 4, &[("", 3, 0, 0)]);
        let btf = Btf::from_bytes(&b.build()).unwrap();
        assert_eq!(btf.type_size(1), None);
        let _ = btf.resolve(1);
        assert!(btf.member_offset("selfref", "zz").is_err());
    }

    #[test]
    fn module_names_are_checked() {
        assert!(!Btf::module_present("../vmlinux"));
        assert!(!Btf::module_present(""));
        let base = Btf::from_bytes(&sample()).unwrap();
        let e = Btf::module("no_such_module_notify", &base).unwrap_err();
        assert!(e.to_string().contains("not loaded"), "{e}");
    }
}
