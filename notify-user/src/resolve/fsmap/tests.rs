//! Unit tests of GETFSMAP decoding and clipping, and of the dax -> filesystem translation.

use super::*;
use crate::resolve::geometry::dax_to_fs_range;
use notify_model::record::FsRange;

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
