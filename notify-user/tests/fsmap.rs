//! GETFSMAP owner resolution against a real XFS on a loop device.
//!
//! Each test makes its own 512 MiB sparse XFS, writes files, finds their physical blocks with
//! FIEMAP (the other direction), and checks that `fsmap::Filesystem::resolve` names the same
//! inode and file offsets; metadata and error paths are checked against the kernel and against
//! `xfs_io -c 'fsmap -m'`.

mod common;

use std::{fs::File, process::Command};

use common::{Xfs, ino, write_file};
use notify::resolve::{
    fiemap::{self, fiemap},
    fsmap::{self, Filesystem, FsmapError, HitKind, Owner, SpecialOwner},
    geometry,
    paths::{self, InodePaths},
};

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn file_extent_resolves_to_its_inode_and_file_offsets() {
    common::require_root("file_extent_resolves_to_its_inode_and_file_offsets");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let a = x.path("a.dat");
    let b = x.path("b.dat");
    write_file(&b, 256 << 10, 7); // a neighbour so that a's blocks are not alone
    write_file(&a, 1 << 20, 1);
    let ext = fiemap(&File::open(&a).unwrap()).unwrap();
    assert!(!ext.is_empty(), "a.dat has no extents");
    let e = ext[0];
    assert!(e.length >= 128 << 10, "first extent too small: {e:?}");

    let fs = Filesystem::open(&x.mnt).unwrap();
    assert!(fs.geometry.has_rmapbt() && fs.geometry.has_reflink());

    // 8 KiB, 64 KiB into the extent.
    let r = fs.resolve(e.physical + (64 << 10), 8 << 10).unwrap();
    assert_eq!(r.hits.len(), 1, "{r:#?}");
    assert_eq!(
        r.hits[0].kind,
        HitKind::FileData {
            ino: ino(&a),
            file_offset: e.logical + (64 << 10),
            shared: false,
            unwritten: false
        }
    );
    assert_eq!(r.hits[0].physical, e.physical + (64 << 10));
    assert_eq!(r.hits[0].length, 8 << 10);

    // The whole extent, and one block either side: a.dat's range exactly, plus whatever
    // owns the neighbouring blocks (never a.dat beyond its extent).
    let r = fs.resolve(e.physical - 4096, e.length + 8192).unwrap();
    let files = r.files();
    assert_eq!(
        files[&ino(&a)],
        vec![fsmap::FileRange {
            offset: e.logical,
            length: e.length
        }]
    );
    assert!(r.hits.iter().all(|h| h.physical >= e.physical - 4096));

    // inode -> path for reports.
    let mut paths = InodePaths::new(&x.mnt).unwrap();
    assert_eq!(paths.lookup(ino(&a)).unwrap(), std::slice::from_ref(&a));
    assert_eq!(paths.lookup(ino(&b)).unwrap(), std::slice::from_ref(&b));
    assert!(paths.lookup(999_999_999).unwrap().is_empty());
    // Hard link: both names.
    std::fs::hard_link(&a, x.path("a.link")).unwrap();
    paths.invalidate();
    let mut p = paths.lookup(ino(&a)).unwrap().to_vec();
    p.sort();
    assert_eq!(p, vec![a.clone(), x.path("a.link")]);
    assert_eq!(
        paths::mount_root(&a).unwrap(),
        x.mnt.canonicalize().unwrap()
    );
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn reflinked_extent_resolves_to_both_inodes() {
    common::require_root("reflinked_extent_resolves_to_both_inodes");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let a = x.path("orig");
    let c = x.path("clone");
    write_file(&a, 512 << 10, 3);
    let st = Command::new("cp")
        .arg("--reflink=always")
        .arg(&a)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    File::open(&c).unwrap().sync_all().unwrap();
    let ea = fiemap(&File::open(&a).unwrap()).unwrap();
    let ec = fiemap(&File::open(&c).unwrap()).unwrap();
    assert_eq!(ea[0].physical, ec[0].physical, "cp did not share blocks");
    assert!(ea[0].flags & fiemap::FIEMAP_EXTENT_SHARED != 0);

    let fs = Filesystem::open(&a).unwrap();
    let r = fs.resolve(ea[0].physical + 4096, 4096).unwrap();
    let mut owners: Vec<(u64, u64, bool)> = r
        .hits
        .iter()
        .map(|h| match h.kind {
            HitKind::FileData {
                ino,
                file_offset,
                shared,
                ..
            } => (ino, file_offset, shared),
            ref k => panic!("unexpected {k:?}"),
        })
        .collect();
    owners.sort();
    let mut want = vec![(ino(&a), 4096, true), (ino(&c), 4096, true)];
    want.sort();
    assert_eq!(owners, want);
    assert_eq!(r.files().len(), 2);
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn ag_header_is_static_fs_metadata_and_full_map_matches_xfs_io() {
    common::require_root("ag_header_is_static_fs_metadata_and_full_map_matches_xfs_io");
    let x = Xfs::new("rmapbt=1,reflink=1");
    // Enough small files that the whole-device map has more records than one ioctl batch
    // (128), so the fsmap_advance() iteration is exercised.
    for i in 0..200 {
        write_file(&x.path(&format!("f{i}")), 4096, i as u8);
    }
    let fs = Filesystem::open(&x.mnt).unwrap();
    let r = fs.resolve(0, 4096).unwrap();
    assert_eq!(r.hits.len(), 1, "{r:#?}");
    assert_eq!(
        r.hits[0].kind,
        HitKind::Special {
            owner: SpecialOwner::XfsFs
        }
    );
    assert_eq!(
        SpecialOwner::XfsFs.name(),
        "static fs metadata",
        "named as xfs_io names it"
    );
    assert_eq!(r.metadata().len(), 1);
    assert!(r.files().is_empty());

    // Full map, decoded by us and by xfs_io (machine format, 512-byte units).
    let ours = fs.query(0, fs.geometry.data_bytes()).unwrap();
    assert!(ours.len() > 200, "only {} records", ours.len());
    assert!(ours.last().unwrap().flags.last());
    let out = Command::new("xfs_io")
        .args(["-c", "fsmap -m -d"])
        .arg(&x.mnt)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let theirs: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(ours.len(), theirs.len(), "record count differs from xfs_io");
    let mut saw_log = false;
    for (o, t) in ours.iter().zip(&theirs) {
        let (maj, min) = fsmap::new_decode_dev(o.device);
        assert_eq!(
            (maj.to_string(), min.to_string()),
            (t[1].clone(), t[2].clone())
        );
        assert_eq!((o.physical / 512).to_string(), t[3], "{o:?} vs {t:?}");
        assert_eq!(((o.physical + o.length) / 512 - 1).to_string(), t[4]);
        assert_eq!((o.length / 512).to_string(), t[8]);
        let owner = match o.owner {
            Owner::Inode { ino } if o.flags.attr_fork() => format!("inode_{ino}_attr"),
            Owner::Inode { ino } if o.flags.extent_map() => format!("inode_{ino}_bmbt"),
            Owner::Inode { ino } => format!("inode_{ino}_data"),
            Owner::Special { .. } => {
                let raw = special_code(o);
                format!("special_{}:{}", raw >> 32, raw & 0xffff_ffff)
            }
        };
        assert_eq!(owner, t[5], "{o:?}");
        if let Owner::Inode { .. } = o.owner {
            assert_eq!((o.offset / 512).to_string(), t[6]);
        }
        saw_log |= o.owner
            == Owner::Special {
                owner: SpecialOwner::XfsLog,
            };
    }
    assert!(saw_log, "internal log not found in the map");
}

/// The raw special owner code back from the decoded enum (for comparing with xfs_io).
fn special_code(r: &fsmap::FsmapRecord) -> u64 {
    let Owner::Special { owner } = r.owner else {
        unreachable!()
    };
    let x = |c| fsmap::fmr_owner(b'X', c);
    match owner {
        SpecialOwner::Free => fsmap::FMR_OWN_FREE,
        SpecialOwner::Unknown => fsmap::FMR_OWN_UNKNOWN,
        SpecialOwner::Metadata => fsmap::FMR_OWN_METADATA,
        SpecialOwner::XfsFs => x(1),
        SpecialOwner::XfsLog => x(2),
        SpecialOwner::XfsAg => x(3),
        SpecialOwner::XfsInobt => x(4),
        SpecialOwner::XfsInodes => x(5),
        SpecialOwner::XfsRefc => x(6),
        SpecialOwner::XfsCow => x(7),
        SpecialOwner::XfsDefective => x(8),
        SpecialOwner::Other { ty, code } => ((ty as u64) << 32) | code as u64,
    }
}

#[test]
fn __child_entry() {
    common::child_main();
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn without_cap_sys_admin_the_kernel_hides_owners_and_we_say_so() {
    common::require_root("without_cap_sys_admin_the_kernel_hides_owners_and_we_say_so");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let a = x.path("a");
    write_file(&a, 64 << 10, 1);
    let e = fiemap(&File::open(&a).unwrap()).unwrap()[0];
    let args = [
        x.mnt.to_str().unwrap().to_string(),
        e.physical.to_string(),
        "4096".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = common::Helper::spawn("fsmap-nocap", &args);
    h.wait_ready();
    let msg = h.next_msg().unwrap();
    assert!(
        msg.starts_with("ERR ") && msg.contains("CAP_SYS_ADMIN"),
        "without CAP_SYS_ADMIN: {msg}"
    );
    // With the capability (this process) the same range resolves to the file.
    let r = Filesystem::open(&x.mnt)
        .unwrap()
        .resolve(e.physical, 4096)
        .unwrap();
    assert_eq!(r.files().keys().copied().collect::<Vec<_>>(), vec![ino(&a)]);
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn no_rmapbt_gives_a_clear_error() {
    common::require_root("no_rmapbt_gives_a_clear_error");
    let x = Xfs::new("rmapbt=0");
    let a = x.path("a");
    write_file(&a, 64 << 10, 1);
    let e = fiemap(&File::open(&a).unwrap()).unwrap()[0];
    let fs = Filesystem::open(&x.mnt).unwrap();
    assert!(!fs.geometry.has_rmapbt());
    let err = fs.resolve(e.physical, 4096).unwrap_err();
    assert!(matches!(err, FsmapError::NoRmapbt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "no reverse-mapping btree (mkfs.xfs -m rmapbt=1): notify cannot resolve owners"
        ),
        "{msg}"
    );
    // The kernel fact behind the geometry check: without rmapbt XFS does not fail GETFSMAP, it
    // answers from the free-space btree with owner "unknown" for the file's blocks.
    let raw = fs.query(e.physical, 4096).unwrap();
    assert!(!raw.is_empty());
    assert!(raw.iter().all(|r| r.owner
        == Owner::Special {
            owner: SpecialOwner::Unknown
        }));
}

#[test]
#[ignore = "needs root (BPF, loop devices, mount): run as root with --include-ignored"]
fn ranges_outside_the_device_and_non_xfs_are_errors() {
    common::require_root("ranges_outside_the_device_and_non_xfs_are_errors");
    let x = Xfs::new("rmapbt=1,reflink=1");
    let fs = Filesystem::open(&x.mnt).unwrap();
    let size = fs.geometry.data_bytes();
    assert_eq!(size, 512 << 20);
    let err = fs.resolve(size, 4096).unwrap_err();
    assert!(
        matches!(err, FsmapError::RangeOutsideDevice { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("outside the data device"));
    // Straddling the end: the inside part is resolved, and the cut is reported.
    let r = fs.resolve(size - 4096, 8192).unwrap();
    assert_eq!((r.length, r.clipped_from), (4096, Some(8192)));
    assert!(matches!(fs.resolve(0, 0), Err(FsmapError::EmptyRange)));

    // tmpfs is not XFS.
    let err = Filesystem::open("/dev/shm").err().expect("tmpfs accepted");
    assert!(matches!(err, FsmapError::NotXfs { .. }), "{err}");
    assert!(err.to_string().contains("not on XFS"));

    // The loop device is a whole disk: it starts at 0 of itself, 512 MiB long.
    let (start, bytes) = geometry::partition_geometry(fs.dev).unwrap();
    assert_eq!((start, bytes), (0, 512 << 20));
    let fr = geometry::dax_to_fs_range(8192, 4096, start, bytes).unwrap();
    assert_eq!((fr.physical, fr.length, fr.clipped), (8192, 4096, false));
}
