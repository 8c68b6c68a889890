//! notify: trace and enforce what happens when persistent memory goes bad under XFS on fsdax.
//!
//! The library holds every part of the agent so that tests and xtask can drive them directly;
//! `src/main.rs` is only the command line.

pub mod btf;
pub mod event;
pub mod kallsyms;
pub mod kernel;
pub mod readiness;
pub mod reorder;
pub mod tracefs;
pub mod badblocks;
pub mod enforce;
pub mod fsmap;
pub mod journal;
pub mod mappers;
