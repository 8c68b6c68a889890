//! Parsing raw BTF: the header, the type section (every kind's extra records) and the string
//! section, checked as they are read; split BTF (modules) continues its base's ids.

use super::*;

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

impl Btf {
    pub(super) fn parse(data: &[u8], base: Option<Btf>, source: String) -> Result<Self, BtfError> {
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
            // Offsets are relative to the type section, which is kept as is (below).
            let records = Records {
                at: (body - t_start) as u32,
                count: vlen,
            };
            let extra = match kind {
                BtfKind::Array => Extra::Array {
                    elem_type: word(body)?,
                    nelems: word(body + 8)?,
                },
                BtfKind::Struct | BtfKind::Union => Extra::Members(records),
                BtfKind::FuncProto => Extra::Params(records),
                BtfKind::Enum => Extra::Enumerators {
                    records,
                    wide: false,
                },
                BtfKind::Enum64 => Extra::Enumerators {
                    records,
                    wide: true,
                },
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
                type_data: data[t_start..t_end].to_vec(),
                big_endian,
                strings,
                name_index: OnceLock::new(),
            }),
        })
    }
}

/// Decoding a type's trailing records from the kept type section. Their bounds were checked
/// when the blob was parsed; a word out of range would read 0, never panic.
impl Btf {
    fn word_at(&self, pos: usize) -> u32 {
        Reader {
            data: &self.inner.type_data,
            big_endian: self.inner.big_endian,
        }
        .u32_at(pos)
        .unwrap_or(0)
    }

    /// A struct's or union's members (`records` from this blob's own type).
    pub(super) fn members(&self, r: Records) -> impl Iterator<Item = RawMember> + '_ {
        (0..usize::from(r.count)).map(move |i| {
            let p = r.at as usize + 12 * i;
            RawMember {
                name_off: self.word_at(p),
                type_id: self.word_at(p + 4),
                offset: self.word_at(p + 8),
            }
        })
    }

    /// A function prototype's parameters.
    pub(super) fn params(&self, r: Records) -> impl Iterator<Item = RawParam> + '_ {
        (0..usize::from(r.count)).map(move |i| {
            let p = r.at as usize + 8 * i;
            RawParam {
                name_off: self.word_at(p),
                type_id: self.word_at(p + 4),
            }
        })
    }

    /// An enum's values, signed when `signed` (the type's kind_flag).
    pub(super) fn enumerators(
        &self,
        r: Records,
        wide: bool,
        signed: bool,
    ) -> impl Iterator<Item = RawEnumerator> + '_ {
        (0..usize::from(r.count)).map(move |i| {
            if wide {
                let p = r.at as usize + 12 * i;
                let v = u64::from(self.word_at(p + 4)) | (u64::from(self.word_at(p + 8)) << 32);
                RawEnumerator {
                    name_off: self.word_at(p),
                    value: if signed {
                        i128::from(v as i64)
                    } else {
                        i128::from(v)
                    },
                }
            } else {
                let p = r.at as usize + 8 * i;
                let v = self.word_at(p + 4);
                RawEnumerator {
                    name_off: self.word_at(p),
                    value: if signed {
                        i128::from(v as i32)
                    } else {
                        i128::from(v)
                    },
                }
            }
        })
    }
}
