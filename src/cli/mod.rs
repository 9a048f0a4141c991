//! The `llm-judge run` command: grades a whole file of items (JSON Lines, gzip or CSV) in this
//! process or through a running server, streaming, resumable, with progress and a summary.
//!
//! - [`input`] and [`csv_rows`]: streaming readers yielding `(line number, item or why it is
//!   unreadable)`.
//! - [`output`]: the results file: resume and writing.
//! - [`report`]: the summary over the whole results file.

pub mod csv_rows;
pub mod input;
pub mod output;
pub mod report;
