//! Looking things up in parsed BTF: names, kinds, sizes, struct members (through anonymous
//! unions and typedefs), functions and their parameters, enumerators.

use super::*;

impl Btf {
    /// The string at a global string offset (`None` when out of range or not UTF-8).
    pub(super) fn string(&self, off: u32) -> Option<&str> {
        if off < self.inner.start_str {
            return self.inner.base.as_ref()?.string(off);
        }
        let rel = (off - self.inner.start_str) as usize;
        let tail = self.inner.strings.get(rel..)?;
        let len = tail.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&tail[..len]).ok()
    }

    /// The type record with global id `id` (id 0 is `void`: `None`).
    pub(super) fn get(&self, id: u32) -> Option<(&Btf, &RawType)> {
        if id < self.inner.start_id {
            return self.inner.base.as_ref()?.get(id);
        }
        let t = self.inner.types.get((id - self.inner.start_id) as usize)?;
        Some((self, t))
    }

    /// The raw name bytes of this blob's own type `i` (not its base's), None when unnamed.
    fn own_name(&self, i: usize) -> Option<&[u8]> {
        let off = self.inner.types.get(i)?.name_off;
        if off == 0 {
            return None;
        }
        match self.inner.base.as_ref() {
            // A split blob's type may be named by a string of its base.
            Some(b) if off < self.inner.start_str => b.string(off).map(str::as_bytes),
            _ => {
                let rel = off.checked_sub(self.inner.start_str)? as usize;
                let tail = self.inner.strings.get(rel..)?;
                let len = tail.iter().position(|&b| b == 0)?;
                Some(&tail[..len])
            }
        }
        .filter(|n| !n.is_empty())
    }

    /// Names -> this blob's type indexes, built on the first lookup (no allocation per name:
    /// [`NameIndex`]).
    fn name_index(&self) -> &NameIndex {
        self.inner
            .name_index
            .get_or_init(|| NameIndex::build(self.inner.types.len(), |i| self.own_name(i)))
    }

    /// Ids of all types named `name` of one of `kinds`, this blob first, then its base.
    pub(super) fn find_ids(&self, name: &str, kinds: &[BtfKind]) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .name_index()
            .find(name.as_bytes(), |i| self.own_name(i))
            .filter(|&i| kinds.contains(&self.inner.types[i].kind))
            .map(|i| self.inner.start_id + i as u32)
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

    pub(super) fn type_size_depth(&self, id: u32, depth: usize) -> Option<u32> {
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
    pub(super) fn member_path(
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
    pub(super) fn find_member(
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
        let Extra::Members(records) = t.extra else {
            return Ok(None);
        };
        let members: Vec<RawMember> = owner.members(records).collect();
        let split = |m: &RawMember| {
            if t.kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            }
        };
        for m in &members {
            let mname = owner.string(m.name_off).unwrap_or("");
            if !mname.is_empty() && mname == name {
                let (bit_offset, bits) = split(m);
                return Ok(Some((bit_offset, bits, m.type_id)));
            }
        }
        for m in &members {
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
        let Extra::Params(records) = proto.extra else {
            return Err(malformed(
                self.source(),
                format!(
                    "FUNC `{name}` points at a {:?}, not a FUNC_PROTO",
                    proto.kind
                ),
            ));
        };
        Ok(owner
            .params(records)
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
                if let Extra::Enumerators { records, wide } = t.extra
                    && let Some(e) = b
                        .enumerators(records, wide, t.kind_flag)
                        .find(|e| b.string(e.name_off) == Some(name))
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
