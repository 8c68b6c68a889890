//! notify: trace and enforce what happens when persistent memory goes bad under XFS on fsdax.
//!
//! The library holds every part of the agent so that tests and xtask can drive them directly;
//! `src/main.rs` is only the command line.

pub mod agent;
pub mod agent_config;
pub mod badblocks;
pub mod btf;
pub mod doctor;
pub mod enforce;
pub mod event;
pub mod fleet;
pub mod fsmap;
pub mod journal;
pub mod kallsyms;
pub mod kernel;
pub mod mappers;
pub mod metrics;
pub mod mountinfo;
pub mod output;
pub mod pmem;
pub mod probes;
pub mod readiness;
pub mod record;
pub mod reorder;
pub mod replay;
pub mod report;
pub mod rotate;
pub mod session;
pub mod session_file;
pub mod trace;
pub mod tracefs;
