//! The `llm-judge run` command: grades a whole file of items (JSON Lines, gzip or CSV) in this
//! process or through a running server, streaming, resumable, with progress and a summary.
//!
//! - [`input`] and [`csv_rows`]: streaming readers yielding `(line number, item or why it is
//!   unreadable)`.
//! - [`output`]: the results file: resume and writing.
//! - [`engine`]: the bounded judging loop and signal handling.
//! - [`remote`]: `--server` mode through the batch endpoint.
//! - [`progress`] and [`report`]: what a person sees on standard error.
//! - [`run`]: the arguments, the checks before anything runs, and the exit code.

pub mod csv_rows;
pub mod engine;
pub mod input;
pub mod output;
pub mod progress;
pub mod remote;
pub mod report;
pub mod run;
