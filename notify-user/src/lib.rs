//! notify: trace and enforce what happens when persistent memory goes bad under XFS on fsdax.
//!
//! The modules are the stages of the data flow, each depending only on the ones above it
//! (docs/ARCHITECTURE.md; `tests/architecture.rs` checks the direction):
//!
//! - [`kernel`]: facts about the running kernel (BTF, kallsyms, tracefs, pmem devices);
//! - [`probe`]: the hook table, structure offsets, attaching, the ring buffer;
//! - [`stream`]: decode, reorder, holder states and notification verdicts, the event loop;
//! - [`resolve`]: from a damaged range to its filesystem, owners and mapping processes;
//! - [`enforce`]: acting on those processes through pidfds;
//! - [`agent`]: the journal, bad-block reconciliation and replay;
//! - [`export`]: output sinks, metrics;
//! - [`session`]: session files, their findings and their timeline reports;
//! - [`cmd`]: one module per subcommand.
//!
//! The items that flow between them are the types of `notify_model`.

pub mod agent;
pub mod cmd;
pub mod enforce;
pub mod export;
pub mod kernel;
pub mod probe;
pub mod resolve;
pub mod session;
pub mod stream;
