//! Probes: the hook table, the structure offsets they read, attaching them with the best method
//! the kernel allows, and the ring buffer they write into.

pub mod attach;
pub mod bbnotify;
pub mod fdread;
pub mod fserror;
pub mod healthmon;
pub mod hooks;
pub mod offsets;
pub mod open;
pub mod phases;
pub mod preload;
pub mod ring;
pub mod vma_iter;
pub mod witness;

pub use attach::{AttachMode, Method, Outcome};
pub use open::Probes;
pub use ring::Ring;
