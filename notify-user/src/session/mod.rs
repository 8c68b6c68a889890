//! Sessions: a run's items kept in a file (`notify record`, `--session`), its `--fail-on`
//! findings, and its timeline per device rendered as text and SVG (`notify report`).

pub mod file;
pub mod findings;
pub mod log;
pub mod svg;
pub mod text;
pub mod timeline;

#[cfg(test)]
mod tests;
