//! Unit tests of the BTF parser and queries, on blobs the builder makes.

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

/// A module type named by a string of vmlinux's string section is found by that name (split
/// BTF may name its types with its base's strings).
#[test]
fn split_types_named_by_base_strings_are_found() {
    let mut b = BtfBuilder::new();
    b.int("int", 4);
    let shared = b.string("shared_name");
    let base = Btf::from_bytes(&b.build()).unwrap();
    let mut m = BtfBuilder::split(base.next_id(), base.str_end());
    let own = m.composite("own_s", false, 4, &[("x", 1, 0, 0)]);
    let by_base = m.raw_named_at(shared, 4, false, 0, 16, &[]);
    let split = Btf::from_split_bytes(&m.build(), &base).unwrap();
    assert_eq!(
        split.find_types("shared_name", BtfKind::Struct),
        vec![by_base]
    );
    assert_eq!(split.find_types("own_s", BtfKind::Struct), vec![own]);
    assert_eq!(split.struct_size("shared_name").unwrap(), 16);
    assert!(base.find_types("shared_name", BtfKind::Struct).is_empty());
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
