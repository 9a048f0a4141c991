//! Batches: many items judged with bounded concurrency, results in input order, one summary.
//!
//! A failing item becomes an `error` entry; it never fails the batch. With a [`Budget`], an item
//! is sent only when its cost estimate still fits; the others become `budget_exhausted` entries.

mod answer;
mod entry;
mod item;
mod judging;
mod ndjson;
pub mod summary;
mod task;

pub use crate::budget::{Budget, BudgetReport, Limits};
pub use answer::json;
pub use entry::{Entry, Outage, error_entry};
pub use item::BatchItem;
pub use judging::{Admitted, admit, admit_when_room, estimate, judge_one, settle};
pub use ndjson::stream;
pub use summary::{
    CorrectedAccuracy, Delivery, JudgeCounts, JudgeVote, PanelTally, Position, Progress,
    ProviderBatchProgress, Summary, Tally, Waiting,
};
