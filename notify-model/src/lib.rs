//! notify's vocabulary: the typed items of the stream and their JSON form (docs/EVENTS.md), the
//! agent's records and journal listing, and the session file (docs/SESSIONS.md).
//!
//! Plain data and pure functions. Every stage of notify-user speaks these types, and xtask reads
//! the VM lab's evidence with them, so one definition serves the agent, the report and the tests.

pub mod civil;
pub mod decision;
pub mod dev;
pub mod event;
pub mod fserror;
pub mod health;
pub mod holder;
pub mod item;
pub mod journal;
pub mod record;
pub mod session;

pub use dev::Dev;
pub use event::{EventData, Header, MountStep, Phase, Readiness, TraceEvent};
pub use holder::{DevFrom, Kill, Notification, State, Transition, Verdict};
pub use item::{Derived, Item};
pub use record::AgentRecord;
