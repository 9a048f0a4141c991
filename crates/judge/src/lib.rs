//! Judging: turns items into prompts, sends them along a route of the pool, and parses the
//! answers into three-state verdicts (correct, incorrect, unscored with a reason).
//!
//! Knows templates, parsing, the verdict cache, the rules pre-check, confidence (from log
//! probabilities, panels and swapped comparisons) and panels of judges; knows nothing of HTTP.
//! Also passes a client's own chat requests through to a route, with the verdict cache
//! ([`passthrough`]).

pub mod cache;
pub mod confidence;
pub mod items;
pub mod panel;
pub mod parse;
pub mod passthrough;
pub mod prompts;
pub mod rules;
pub mod settings;
pub mod stats;

mod dispatch;
mod error;
mod estimate;
mod judge;
mod judgment;
mod record;
mod render;
mod single;
mod verdict;

pub use confidence::ConfidenceSource;
pub use error::JudgeError;
pub use items::{BinaryItem, CompareItem, FieldError, HumanLabel, Options, ScoreItem};
pub use judge::Judge;
pub use judgment::{CompareJudgment, Judgment, PanelReport, PanelVote, ScoreJudgment};
pub use verdict::{JudgeKind, Verdict};
