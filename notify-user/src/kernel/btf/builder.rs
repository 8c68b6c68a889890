//! Builds raw BTF blobs for tests (here and in `tests/`).

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
        self.raw_named_at(name_off, kind, kind_flag, vlen, size_or_type, trailing)
    }

    /// Like [`BtfBuilder::raw`], naming the type by a string offset already in this blob or,
    /// for split BTF, in its base (as pahole does for names the base has).
    pub fn raw_named_at(
        &mut self,
        name_off: u32,
        kind: u32,
        kind_flag: bool,
        vlen: u16,
        size_or_type: u32,
        trailing: &[u32],
    ) -> u32 {
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
