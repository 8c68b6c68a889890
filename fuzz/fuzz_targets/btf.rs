//! BTF blobs: a base (vmlinux-like) and, split at the input's first byte, a split BTF on top
//! of it (a module's); then the queries the probes make of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::kernel::btf::Btf;

fn query(b: &Btf) {
    for s in ["dax_device", "xfs_mount", "super_block", "page"] {
        let _ = b.struct_size(s);
        let _ = b.member_offset(s, "flags");
    }
    let _ = b.func_params("xfs_dax_notify_failure");
    let _ = b.enumerator_value("MF_ACTION_REQUIRED");
    for id in 0..b.next_id().min(64) {
        let _ = b.type_kind_and_name(id);
        let _ = b.type_size(id);
        let _ = b.resolve(id);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Btf::from_bytes(data) {
        query(&b);
    }
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * rest.len() / 255).min(rest.len());
    let (base, split) = rest.split_at(cut);
    if let Ok(base) = Btf::from_bytes(base) {
        if let Ok(m) = Btf::from_split_bytes(split, &base) {
            query(&m);
        }
    }
});
