//! Calibration: how far a judge can be trusted, measured on items a careful person labelled.
//!
//! Every labelled item is judged by every judge named (routes or panels), with bounded
//! concurrency, and each judge's verdicts are compared with the labels: accuracy, Cohen's kappa
//! (binary and pairwise), the confusion matrix and base rates, Spearman and Pearson correlation
//! and mean absolute error (scores), the unscored rate, and for pairwise items the flip rate and
//! first-position preference. Unscored items and errors are left out of the agreement figures
//! and counted apart, so that a judge cannot look better by declining hard items without it
//! showing. For panels, each member's agreement with the labels and the members' Fleiss' kappa
//! are given too.
//!
//! A run's report (without per-item results) can be kept in a [`store::RunStore`], so that the
//! same judge's figures on the same gold set (`dataset`, a digest of the labelled items) can be
//! followed over time.

mod figures;
mod item;
mod label;
mod panel;
mod plan;
mod report;
mod said;
pub mod store;

pub use item::{InvalidItem, LabelledItem, dataset_digest, parse_item, read_items, unreadable};
pub use label::Label;
pub use plan::{MAX_JUDGES, Plan, run};
pub use report::{
    Confusion, GroupFigures, ItemResult, ItemVerdict, JudgeFigures, MemberFigures, PanelFigures,
    PositionFigures, Report, only_judge, stored_form,
};
