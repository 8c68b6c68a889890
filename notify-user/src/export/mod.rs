//! Export: where the stream goes out of the process: JSON lines or a table (to standard output
//! or a size-rotated file), and Prometheus metrics with a health endpoint.

pub mod metrics;
pub mod rotate;
pub mod sd_notify;
pub mod sink;
pub mod stamp;
