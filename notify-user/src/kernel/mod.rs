//! Kernel facts: what the running kernel is and offers, read once from its own interfaces
//! (BTF, kallsyms, tracefs, sysfs, procfs). Nothing here loads BPF or changes kernel state.

pub mod btf;
pub mod channels;
pub mod facts;
pub mod kallsyms;
pub mod mountinfo;
pub mod names;
pub mod pmem;
pub mod tracefs;
