//! The agent's Prometheus endpoint: `/metrics` (OpenMetrics text, `prometheus-client`) and
//! `/healthz`, served by a minimal HTTP/1.1 responder on tokio's TcpListener.
//!
//! Metrics are event-driven: counters move as items of the stream flow through
//! [`Metrics::on_item`]. The one thing read at scrape time is the
//! kernel's per-CPU LOST counter map (a map lookup, no polling loop).
//!
//! The list of metrics is in docs/AGENT.md.

pub mod families;
pub mod health;
pub mod http;
pub mod registry;

pub use health::Health;
pub use http::{bind, serve};
pub use registry::Metrics;

#[cfg(test)]
mod tests;
