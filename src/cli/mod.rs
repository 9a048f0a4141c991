//! The `llm-judge run` command: grades a whole file of items (JSON Lines, gzip or CSV) in this
//! process or through a running server, streaming, resumable, with progress and a summary; and
//! `llm-judge calibrate`, which measures judges against a file of labelled items.
//!
//! - [`input`] and [`csv_rows`]: streaming readers yielding `(line number, item or why it is
//!   unreadable)`.
//! - [`output`]: the results file: resume and writing.
//! - [`engine`]: the bounded judging loop and signal handling.
//! - [`remote`]: `--server` mode through the batch endpoint.
//! - [`progress`] and [`report`]: what a person sees on standard error.
//! - [`run`]: the arguments, the checks before anything runs, and the exit code.
//! - [`calibrate`]: the `calibrate` command (judges against labelled items, with a gate).

pub mod calibrate;
pub mod csv_rows;
pub mod engine;
pub mod input;
pub mod output;
pub mod progress;
pub mod remote;
pub mod report;
pub mod run;
