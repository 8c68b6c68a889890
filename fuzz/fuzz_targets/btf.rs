//! BTF blobs: the whole input as a base (vmlinux-like) BTF; then, the first two bytes giving
//! the base's length (little endian), a base and a split BTF on top of it (a module's, as the
//! XFS module's is read over vmlinux); then the queries the probes make of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use notify::kernel::btf::Btf;

fn query(b: &Btf) {
    for (s, m) in [
        ("dax_device", "holder_data"),
        ("xfs_mount", "m_super"),
        ("xlog", "l_mp"),
        ("super_block", "s_flags"),
    ] {
        let _ = b.struct_size(s);
        let _ = b.member_offset(s, m);
    }
    let _ = b.func_params("xlog_recover");
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
    let (Some(&lo), Some(&hi)) = (data.first(), data.get(1)) else {
        return;
    };
    let rest = &data[2..];
    let (base, split) = rest.split_at(usize::from(u16::from_le_bytes([lo, hi])).min(rest.len()));
    if let Ok(base) = Btf::from_bytes(base) {
        if let Ok(m) = Btf::from_split_bytes(split, &base) {
            query(&m);
        }
    }
});
