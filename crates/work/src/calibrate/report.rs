//! What a calibration reports: each judge's agreement with the labels (and, for panels, its
//! members'), every item's verdicts on request, and the form a run is kept in.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::item::InvalidItem;
use crate::batch;
use llm_judge_chat::Usage;
use llm_judge_judge::JudgeKind;
use llm_judge_judge::stats::round6;

/// A confusion matrix: `matrix[label][verdict]`, rows and columns in the order of `labels`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Confusion {
    pub labels: Vec<&'static str>,
    /// Rows: the labels; columns: the judge's verdicts.
    pub matrix: Vec<Vec<usize>>,
}

/// Accuracy within one group of items.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct GroupFigures {
    pub items: usize,
    pub graded: usize,
    pub unscored: usize,
    pub accuracy: Option<f64>,
    /// The accuracy's 95% Wilson interval, `[low, high]`.
    pub accuracy_interval: Option<[f64; 2]>,
}

/// Pairwise position bias of one judge.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PositionFigures {
    /// Of the items asked in both orders with both answers read, the share whose orders chose
    /// different winners.
    pub flip_rate: Option<f64>,
    /// Of the answers that preferred a position, the share that preferred the first one shown.
    pub first_position_rate: Option<f64>,
}

/// One panel member's agreement with the labels.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberFigures {
    pub judge: String,
    pub graded: usize,
    /// Items it gave no verdict on (unscored, failed, or not asked under escalation).
    pub absent: usize,
    pub accuracy: Option<f64>,
    /// The accuracy's 95% Wilson interval, `[low, high]`.
    pub accuracy_interval: Option<[f64; 2]>,
    /// Binary and pairwise (null when undefined).
    pub cohen_kappa: Option<f64>,
    /// Scores.
    pub mean_abs_error: Option<f64>,
}

/// A panel's own figures in a calibration.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PanelFigures {
    /// Fleiss' kappa of the members' votes (agreement among themselves, not with the labels).
    pub fleiss_kappa: Option<f64>,
    pub members: Vec<MemberFigures>,
}

/// One judge's agreement with the labels.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JudgeFigures {
    /// The route or panel.
    pub judge: String,
    /// Items judged.
    pub items: usize,
    /// Items with a verdict (correct / incorrect, a score, a winner).
    pub graded: usize,
    pub unscored: usize,
    /// Items where every provider failed.
    pub errors: usize,
    /// unscored / items.
    pub unscored_rate: Option<f64>,
    /// Share of graded items where the verdict equals the label (scores: exactly).
    pub accuracy: Option<f64>,
    /// The accuracy's 95% Wilson interval, `[low, high]`: how far the measured agreement may be
    /// from the judge's agreement on items like these.
    pub accuracy_interval: Option<[f64; 2]>,
    /// Binary and pairwise: Cohen's kappa of the verdicts against the labels, over graded items
    /// (1 perfect, 0 no better than chance given both sides' base rates); null when undefined
    /// (one class only on both sides, or nothing graded).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub cohen_kappa: Option<Option<f64>>,
    /// Binary and pairwise: the kappa's 95% interval, `[low, high]`, from its large-sample
    /// standard error (Fleiss, Cohen and Everitt 1969, as statsmodels' `cohens_kappa` gives it),
    /// cut to -1 to 1; null where kappa is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<f64>>)]
    pub cohen_kappa_interval: Option<Option<[f64; 2]>>,
    /// Binary: the share of graded items labelled correct.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub base_rate: Option<Option<f64>>,
    /// Binary: the share of graded items the judge called correct.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub predicted_rate: Option<Option<f64>>,
    /// Binary: precision, recall and F1 of `correct`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub precision: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub recall: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub f1: Option<Option<f64>>,
    /// Binary and pairwise, over graded items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Confusion>,
    /// Scores: Spearman's rank correlation (ties share their average rank) and Pearson's with
    /// the labels, null when either side is constant; the mean absolute error, and the share
    /// within one point of the label.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub spearman: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub pearson: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub mean_abs_error: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub within_one: Option<Option<f64>>,
    /// Pairwise: position bias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_bias: Option<PositionFigures>,
    /// The figures per `group`, when items have one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupFigures>,
    /// Panels: each member's figures and their Fleiss' kappa.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panel: Option<PanelFigures>,
    pub usage: Usage,
    /// Summed cost; null when some model has no price.
    pub cost_usd: Option<f64>,
}

/// What one judge said of one item, in per-item results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemVerdict {
    pub verdict: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<&'static str>,
    /// Whether it equals the label; null when there is no verdict.
    pub agrees: Option<bool>,
}

/// One item with the label and every judge's verdict.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub label: Value,
    /// By judge.
    pub verdicts: BTreeMap<String, ItemVerdict>,
}

/// A calibration's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub run_id: String,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: JudgeKind,
    /// A digest of the labelled items: runs on the same gold set share it.
    pub dataset: String,
    /// Labelled items judged.
    pub items: usize,
    /// Items left out (unreadable, or failing validation), each with the field at fault.
    pub invalid_items: Vec<InvalidItem>,
    /// Binary: the share of items labelled correct.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_rate: Option<f64>,
    /// Binary and pairwise: how many items carry each label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub label_counts: BTreeMap<String, usize>,
    pub judges: Vec<JudgeFigures>,
    /// With `include_items`: every item's label and verdicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ItemResult>>,
    pub duration_ms: f64,
    /// Whether the run was kept in the run store (see `GET /v1/calibrate/runs`).
    pub stored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// Under a budget: what was spent, and whether the budget stopped the run (its judges'
    /// figures then leave out the items not judged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<batch::BudgetReport>,
}

/// A share, as reported; `None` when there is nothing to share.
pub(super) fn rate(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| round6(n as f64 / d as f64))
}

/// A report without its per-item results, as kept in the run store.
pub fn stored_form(report: &Report) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("results");
        m.remove("stored");
        m.remove("store_error");
        let invalid = m
            .remove("invalid_items")
            .and_then(|i| i.as_array().map(Vec::len))
            .unwrap_or(0);
        m.insert("invalid_items".into(), Value::from(invalid));
    }
    v
}

/// The report's judges, only `judge` kept when one is named (for following one judge).
pub fn only_judge(mut run: Value, judge: Option<&str>) -> Option<Value> {
    let Some(judge) = judge else {
        return Some(run);
    };
    let judges = run.get_mut("judges")?.as_array_mut()?;
    judges.retain(|j| j["judge"] == judge);
    if judges.is_empty() {
        return None;
    }
    Some(run)
}
