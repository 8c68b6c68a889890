//! The event stream: raw ring-buffer records decoded into typed kernel events, put back in
//! true kernel order, and followed by what they mean (holder states, notification verdicts);
//! then handed, item by item, to the listeners.

pub mod decode;
pub mod devices;
pub mod fswatch;
pub mod holders;
pub mod listen;
pub mod pipeline;
#[cfg(test)]
pub mod recorded;
pub mod reorder;

pub use listen::{Listener, Stream};
pub use pipeline::{Pipeline, Totals};
