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

pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::batch::{self, BatchItem, Position, Tally};
use llm_judge_chat::Usage;
use llm_judge_judge::stats::{self, round6};
use llm_judge_judge::{FieldError, Judge, JudgeKind};
use llm_judge_pool::Via;

/// Most judges one calibration may name.
pub const MAX_JUDGES: usize = 16;

/// A label as a person gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    /// Binary: true for correct.
    Binary(bool),
    Score(f64),
    /// Pairwise: 0 for A, 1 for B, 2 for a tie.
    Pairwise(usize),
}

const PAIRWISE: [&str; 3] = ["a", "b", "tie"];
const BINARY: [&str; 2] = ["correct", "incorrect"];

impl Label {
    /// The label as it appears in reports.
    fn to_value(self) -> Value {
        match self {
            Label::Binary(true) => Value::from("correct"),
            Label::Binary(false) => Value::from("incorrect"),
            Label::Score(s) => Value::from(s),
            Label::Pairwise(w) => Value::from(PAIRWISE[w]),
        }
    }

    /// The category index (binary: 0 correct, 1 incorrect; pairwise: a, b, tie).
    fn category(self) -> Option<usize> {
        match self {
            Label::Binary(c) => Some(usize::from(!c)),
            Label::Pairwise(w) => Some(w),
            Label::Score(_) => None,
        }
    }
}

/// A labelled item, read and checked.
#[derive(Debug, Clone)]
pub struct LabelledItem {
    /// Its position in the input.
    pub index: usize,
    /// The client's own id, echoed in per-item results.
    pub id: Option<Value>,
    /// A free label the figures are also broken down by (a topic, a source).
    pub group: Option<String>,
    pub label: Label,
    pub item: BatchItem,
}

/// An item left out of a calibration, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvalidItem {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// Reads one labelled item: the kind's fields plus `label`, and optionally `id` and `group`.
/// Errors name the field as `items[i].field`.
pub fn parse_item(kind: JudgeKind, index: usize, value: Value) -> Result<LabelledItem, FieldError> {
    let at = |f: &str| format!("items[{index}].{f}");
    let Value::Object(mut map) = value else {
        return Err(FieldError::new(
            format!("items[{index}]"),
            "an item must be a JSON object",
        ));
    };
    if map.contains_key("judge") {
        return Err(FieldError::new(
            at("judge"),
            "calibration items do not name a judge: the request's `judges` are used for every item",
        ));
    }
    let raw_label = map
        .remove("label")
        .ok_or_else(|| FieldError::new(at("label"), label_hint(kind)))?;
    let id = map.remove("id");
    let group = match map.remove("group") {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) => Some(g),
        Some(_) => return Err(FieldError::new(at("group"), "group must be a string")),
    };
    let (min, max) = (
        map.get("min").and_then(Value::as_f64).unwrap_or(1.0),
        map.get("max").and_then(Value::as_f64).unwrap_or(10.0),
    );
    let item = match BatchItem::parse(kind, index, Value::Object(map)) {
        BatchItem::Invalid(e) => return Err(e),
        item => item,
    };
    let label = read_label(kind, &raw_label, min, max)
        .ok_or_else(|| FieldError::new(at("label"), label_hint(kind)))?;
    Ok(LabelledItem {
        index,
        id,
        group,
        label,
        item,
    })
}

fn label_hint(kind: JudgeKind) -> &'static str {
    match kind {
        JudgeKind::Binary => {
            "label must be \"correct\" or \"incorrect\" (also accepted: true/false, 1/0, \"yes\"/\"no\")"
        }
        JudgeKind::Score => "label must be a number between the item's min and max",
        JudgeKind::Compare => "label must be \"a\", \"b\" or \"tie\"",
    }
}

fn read_label(kind: JudgeKind, v: &Value, min: f64, max: f64) -> Option<Label> {
    match kind {
        JudgeKind::Binary => match v {
            Value::Bool(b) => Some(Label::Binary(*b)),
            Value::Number(n) => match n.as_f64() {
                Some(1.0) => Some(Label::Binary(true)),
                Some(0.0) => Some(Label::Binary(false)),
                _ => None,
            },
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "correct" | "yes" | "true" | "1" => Some(Label::Binary(true)),
                "incorrect" | "no" | "false" | "0" => Some(Label::Binary(false)),
                _ => None,
            },
            _ => None,
        },
        JudgeKind::Score => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= min && *s <= max)
            .map(Label::Score),
        JudgeKind::Compare => match v.as_str()?.trim().to_ascii_lowercase().as_str() {
            "a" => Some(Label::Pairwise(0)),
            "b" => Some(Label::Pairwise(1)),
            "tie" | "c" => Some(Label::Pairwise(2)),
            _ => None,
        },
    }
}

/// A digest of the labelled items (their JSON, in order): runs on the same gold set share it.
pub fn dataset_digest<'a>(items: impl IntoIterator<Item = &'a Value>) -> String {
    let mut h = Sha256::new();
    for v in items {
        let text = v.to_string();
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    /// Binary and pairwise: Cohen's kappa of the verdicts against the labels, over graded items
    /// (1 perfect, 0 no better than chance given both sides' base rates); null when undefined
    /// (one class only on both sides, or nothing graded).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub cohen_kappa: Option<Option<f64>>,
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

/// What to run.
pub struct Plan {
    pub kind: JudgeKind,
    /// Resolved route or panel names.
    pub judges: Vec<String>,
    pub items: Vec<LabelledItem>,
    pub invalid: Vec<InvalidItem>,
    pub dataset: String,
    pub name: Option<String>,
    pub max_concurrent: usize,
    pub include_items: bool,
    /// What the run may spend (a client token's daily budget): calls that do not fit are not
    /// sent, and their items count as errors of their judge.
    pub budget: Option<Arc<batch::Budget>>,
}

/// Judges every item with every judge and reports the figures (not stored: see [`store`]).
pub async fn run(judge: Arc<Judge>, plan: Plan) -> Report {
    let started = Instant::now();
    let created_at_ms = store::now_ms();
    let n = plan.items.len();
    let mut tallies: Vec<Vec<Tally>> = vec![vec![Tally::default(); n]; plan.judges.len()];
    // Item by item, every judge: a judge's calls for one item go out together.
    let mut work: Vec<(usize, usize, Arc<str>, BatchItem, usize)> =
        Vec::with_capacity(n * plan.judges.len());
    let routes: Vec<Arc<str>> = plan.judges.iter().map(|r| Arc::from(r.as_str())).collect();
    for (i, item) in plan.items.iter().enumerate() {
        for (j, route) in routes.iter().enumerate() {
            work.push((j, i, route.clone(), item.item.clone(), item.index));
        }
    }
    let mut done = futures::stream::iter(work)
        .map(|(j, i, route, item, index)| {
            let judge = judge.clone();
            let budget = plan.budget.clone();
            async move {
                let (item, reservation) = match &budget {
                    None => (item, None),
                    Some(b) => match batch::admit(&judge, &route, index, item, b) {
                        batch::Admitted::Go(item, r) => (item, r),
                        batch::Admitted::Refused(entry) => return (j, i, entry.tally),
                    },
                };
                let entry = batch::judge_one(&judge, &route, index, item, &Via::Online).await;
                batch::settle(reservation, &entry);
                (j, i, entry.tally)
            }
        })
        .buffer_unordered(plan.max_concurrent.max(1));
    while let Some((j, i, tally)) = done.next().await {
        tallies[j][i] = tally;
    }
    drop(done);
    let figures: Vec<JudgeFigures> = plan
        .judges
        .iter()
        .zip(&tallies)
        .map(|(name, t)| figures(plan.kind, name, &plan.items, t))
        .collect();
    let mut label_counts = BTreeMap::new();
    for it in &plan.items {
        if let Some(c) = it.label.category() {
            let names: &[&str] = if plan.kind == JudgeKind::Binary {
                &BINARY
            } else {
                &PAIRWISE
            };
            *label_counts.entry(names[c].to_string()).or_default() += 1;
        }
    }
    let base_rate = (plan.kind == JudgeKind::Binary && n > 0).then(|| {
        let correct = plan
            .items
            .iter()
            .filter(|i| i.label == Label::Binary(true))
            .count();
        round6(correct as f64 / n as f64)
    });
    let results = plan.include_items.then(|| {
        plan.items
            .iter()
            .enumerate()
            .map(|(i, it)| ItemResult {
                index: it.index,
                id: it.id.clone(),
                group: it.group.clone(),
                label: it.label.to_value(),
                verdicts: plan
                    .judges
                    .iter()
                    .zip(&tallies)
                    .map(|(name, t)| (name.clone(), item_verdict(&t[i], it.label)))
                    .collect(),
            })
            .collect()
    });
    Report {
        run_id: store::new_run_id(created_at_ms),
        created_at_ms,
        name: plan.name,
        kind: plan.kind,
        dataset: plan.dataset,
        items: n,
        invalid_items: plan.invalid,
        base_rate,
        label_counts,
        judges: figures,
        results,
        duration_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
        stored: false,
        store_error: None,
        budget: plan.budget.as_ref().map(|b| b.report()),
    }
}

/// A judge's verdict as a label-comparable value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Said {
    Category(usize),
    Score(f64),
}

fn said(kind: JudgeKind, t: &Tally) -> Option<Said> {
    if !t.ok {
        return None;
    }
    match kind {
        JudgeKind::Binary => match t.verdict? {
            "correct" => Some(Said::Category(0)),
            "incorrect" => Some(Said::Category(1)),
            _ => None,
        },
        JudgeKind::Score => t.score.map(Said::Score),
        JudgeKind::Compare => PAIRWISE
            .iter()
            .position(|w| Some(*w) == t.winner)
            .map(Said::Category),
    }
}

fn agrees(s: Said, label: Label) -> bool {
    match (s, label) {
        (Said::Score(v), Label::Score(l)) => (v - l).abs() < 1e-9,
        (Said::Category(c), l) => l.category() == Some(c),
        _ => false,
    }
}

fn item_verdict(t: &Tally, label: Label) -> ItemVerdict {
    let kind = match label {
        Label::Binary(_) => JudgeKind::Binary,
        Label::Score(_) => JudgeKind::Score,
        Label::Pairwise(_) => JudgeKind::Compare,
    };
    ItemVerdict {
        verdict: if t.ok { t.verdict } else { Some("error") },
        score: t.score,
        winner: t.winner,
        agrees: said(kind, t).map(|s| agrees(s, label)),
    }
}

fn rate(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| round6(n as f64 / d as f64))
}

/// One judge's figures over the items.
fn figures(kind: JudgeKind, name: &str, items: &[LabelledItem], tallies: &[Tally]) -> JudgeFigures {
    let n = items.len();
    let errors = tallies.iter().filter(|t| !t.ok).count();
    let unscored = tallies
        .iter()
        .filter(|t| t.ok && t.verdict == Some("unscored"))
        .count();
    let mut usage = Usage::default();
    let mut cost = Some(0.0);
    for t in tallies.iter().filter(|t| t.ok) {
        usage.add(t.usage);
        cost = cost.zip(t.cost_usd).map(|(a, b)| a + b);
    }
    let graded: Vec<(Said, Label)> = tallies
        .iter()
        .zip(items)
        .filter_map(|(t, it)| said(kind, t).map(|s| (s, it.label)))
        .collect();
    let agreed = graded.iter().filter(|(s, l)| agrees(*s, *l)).count();
    let mut f = JudgeFigures {
        judge: name.to_string(),
        items: n,
        graded: graded.len(),
        unscored,
        errors,
        unscored_rate: rate(unscored, n),
        accuracy: rate(agreed, graded.len()),
        cohen_kappa: None,
        base_rate: None,
        predicted_rate: None,
        precision: None,
        recall: None,
        f1: None,
        confusion: None,
        spearman: None,
        pearson: None,
        mean_abs_error: None,
        within_one: None,
        position_bias: None,
        groups: BTreeMap::new(),
        panel: None,
        usage,
        cost_usd: cost.map(round6),
    };
    match kind {
        JudgeKind::Binary | JudgeKind::Compare => {
            let k = if kind == JudgeKind::Binary { 2 } else { 3 };
            let pairs: Vec<(usize, usize)> = graded
                .iter()
                .filter_map(|(s, l)| match s {
                    Said::Category(c) => Some((l.category()?, *c)),
                    Said::Score(_) => None,
                })
                .collect();
            let matrix = stats::confusion(&pairs, k);
            f.cohen_kappa = Some(stats::cohen_kappa(&pairs, k).map(round6));
            f.confusion = Some(Confusion {
                labels: if kind == JudgeKind::Binary {
                    BINARY.to_vec()
                } else {
                    PAIRWISE.to_vec()
                },
                matrix: matrix.clone(),
            });
            if kind == JudgeKind::Binary {
                let g = pairs.len();
                let (tp, fneg, fp) = (matrix[0][0], matrix[0][1], matrix[1][0]);
                f.base_rate = Some(rate(tp + fneg, g));
                f.predicted_rate = Some(rate(tp + fp, g));
                f.precision = Some(rate(tp, tp + fp));
                f.recall = Some(rate(tp, tp + fneg));
                f.f1 = Some(rate(2 * tp, 2 * tp + fp + fneg));
            } else {
                f.position_bias = Some(position_figures(tallies.iter().filter(|t| t.ok)));
            }
        }
        JudgeKind::Score => {
            let (xs, ys): (Vec<f64>, Vec<f64>) = graded
                .iter()
                .filter_map(|(s, l)| match (s, l) {
                    (Said::Score(v), Label::Score(l)) => Some((*v, *l)),
                    _ => None,
                })
                .unzip();
            let near = xs
                .iter()
                .zip(&ys)
                .filter(|(x, y)| (*x - *y).abs() <= 1.0)
                .count();
            f.spearman = Some(stats::spearman(&xs, &ys).map(round6));
            f.pearson = Some(stats::pearson(&xs, &ys).map(round6));
            f.mean_abs_error = Some(stats::mean_abs_error(&xs, &ys).map(round6));
            f.within_one = Some(rate(near, xs.len()));
        }
    }
    for (t, it) in tallies.iter().zip(items) {
        let Some(g) = &it.group else { continue };
        let e = f.groups.entry(g.clone()).or_default();
        e.items += 1;
        if t.ok && t.verdict == Some("unscored") {
            e.unscored += 1;
        }
        if let Some(s) = said(kind, t) {
            e.graded += 1;
            // `accuracy` holds the agreeing count until the end.
            *e.accuracy.get_or_insert(0.0) += f64::from(u8::from(agrees(s, it.label)));
        }
    }
    for e in f.groups.values_mut() {
        e.accuracy = e.accuracy.map(|a| round6(a / e.graded as f64));
    }
    f.panel = panel_figures(kind, items, tallies);
    f
}

fn position_figures<'a>(tallies: impl Iterator<Item = &'a Tally>) -> PositionFigures {
    let (mut swapped, mut flips, mut decisions, mut firsts) = (0, 0, 0, 0);
    for t in tallies {
        if let Some(c) = t.consistent {
            swapped += 1;
            flips += usize::from(!c);
        }
        for p in &t.positions {
            match p {
                Position::First => {
                    decisions += 1;
                    firsts += 1;
                }
                Position::Second => decisions += 1,
                _ => {}
            }
        }
    }
    PositionFigures {
        flip_rate: rate(flips, swapped),
        first_position_rate: rate(firsts, decisions),
    }
}

/// A panel member's vote as a label-comparable value.
fn member_said(kind: JudgeKind, v: &batch::JudgeVote) -> Option<Said> {
    if v.status != "ok" {
        return None;
    }
    match kind {
        JudgeKind::Binary => match v.verdict.as_deref()? {
            "correct" => Some(Said::Category(0)),
            "incorrect" => Some(Said::Category(1)),
            _ => None,
        },
        JudgeKind::Score => v.score.map(Said::Score),
        JudgeKind::Compare => PAIRWISE
            .iter()
            .position(|w| v.category.as_deref() == Some(*w))
            .map(Said::Category),
    }
}

fn panel_figures(
    kind: JudgeKind,
    items: &[LabelledItem],
    tallies: &[Tally],
) -> Option<PanelFigures> {
    let names: Vec<String> = tallies
        .iter()
        .find_map(|t| t.panel.as_ref())?
        .judges
        .iter()
        .map(|v| v.judge.clone())
        .collect();
    let mut fleiss: stats::Fleiss<String> = stats::Fleiss::default();
    let mut per: Vec<Vec<(Said, Label)>> = vec![Vec::new(); names.len()];
    let mut absent = vec![0usize; names.len()];
    for (t, it) in tallies.iter().zip(items) {
        let Some(p) = &t.panel else {
            absent.iter_mut().for_each(|a| *a += 1);
            continue;
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (m, v) in p.judges.iter().enumerate().take(names.len()) {
            match member_said(kind, v) {
                Some(s) => per[m].push((s, it.label)),
                None => absent[m] += 1,
            }
            if let Some(c) = &v.category {
                *counts.entry(c.clone()).or_default() += 1;
            }
        }
        fleiss.add(counts);
    }
    let members = names
        .into_iter()
        .zip(per)
        .zip(absent)
        .map(|((judge, graded), absent)| {
            let agreed = graded.iter().filter(|(s, l)| agrees(*s, *l)).count();
            let k = if kind == JudgeKind::Binary { 2 } else { 3 };
            let pairs: Vec<(usize, usize)> = graded
                .iter()
                .filter_map(|(s, l)| match s {
                    Said::Category(c) => Some((l.category()?, *c)),
                    Said::Score(_) => None,
                })
                .collect();
            let (xs, ys): (Vec<f64>, Vec<f64>) = graded
                .iter()
                .filter_map(|(s, l)| match (s, l) {
                    (Said::Score(v), Label::Score(l)) => Some((*v, *l)),
                    _ => None,
                })
                .unzip();
            MemberFigures {
                judge,
                graded: graded.len(),
                absent,
                accuracy: rate(agreed, graded.len()),
                cohen_kappa: (kind != JudgeKind::Score)
                    .then(|| stats::cohen_kappa(&pairs, k).map(round6))
                    .flatten(),
                mean_abs_error: stats::mean_abs_error(&xs, &ys).map(round6),
            }
        })
        .collect();
    Some(PanelFigures {
        fleiss_kappa: fleiss.value().map(round6),
        members,
    })
}

/// Reads a request's items into labelled items and invalid ones, and the dataset digest of the
/// valid ones.
pub fn read_items(
    kind: JudgeKind,
    values: Vec<Value>,
) -> (Vec<LabelledItem>, Vec<InvalidItem>, String) {
    let mut items = Vec::with_capacity(values.len());
    let mut invalid = Vec::new();
    let mut kept: Vec<Value> = Vec::with_capacity(values.len());
    for (index, v) in values.into_iter().enumerate() {
        let copy = v.clone();
        match parse_item(kind, index, v) {
            Ok(it) => {
                items.push(it);
                kept.push(copy);
            }
            Err(e) => invalid.push(InvalidItem {
                index,
                field: e.field,
                message: e.message,
            }),
        }
    }
    let digest = dataset_digest(kept.iter());
    (items, invalid, digest)
}

/// An unreadable line of an input file as an invalid item.
pub fn unreadable(index: usize, line: usize, message: &str) -> InvalidItem {
    InvalidItem {
        index,
        field: format!("items[{index}]"),
        message: format!("line {line}: {message}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_read_in_every_accepted_spelling_and_checked() {
        let item = |label: Value| json!({"question": "q", "answer": "a", "prediction": "p", "label": label});
        for (label, want) in [
            (json!("correct"), true),
            (json!("Incorrect"), false),
            (json!(true), true),
            (json!(0), false),
            (json!("yes"), true),
            (json!("1"), true),
        ] {
            let it = parse_item(JudgeKind::Binary, 0, item(label.clone())).unwrap();
            assert_eq!(it.label, Label::Binary(want), "{label}");
        }
        for bad in [json!("maybe"), json!(2), json!(null), json!([1])] {
            let e = parse_item(JudgeKind::Binary, 3, item(bad.clone())).unwrap_err();
            assert_eq!(e.field, "items[3].label", "{bad}");
        }
        let e = parse_item(
            JudgeKind::Binary,
            0,
            json!({"question": "q", "answer": "a", "prediction": "p"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "items[0].label");
        // The kind's own checks still apply, and name the field.
        let e = parse_item(
            JudgeKind::Binary,
            1,
            json!({"question": "", "answer": "a", "prediction": "p", "label": 1}),
        )
        .unwrap_err();
        assert_eq!(e.field, "items[1].question");
        let e = parse_item(
            JudgeKind::Binary,
            1,
            json!({"question": "q", "answer": "a", "prediction": "p", "label": 1, "judge": "x"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "items[1].judge");
        let score = |label: Value| {
            parse_item(
                JudgeKind::Score,
                0,
                json!({"question": "q", "prediction": "p", "min": 1, "max": 5, "label": label}),
            )
        };
        assert_eq!(score(json!(4)).unwrap().label, Label::Score(4.0));
        assert!(score(json!(6)).is_err(), "outside the item's scale");
        let pair = |label: &str| {
            parse_item(
                JudgeKind::Compare,
                0,
                json!({"question": "q", "response_a": "x", "response_b": "y", "label": label}),
            )
        };
        assert_eq!(pair("B").unwrap().label, Label::Pairwise(1));
        assert_eq!(pair("tie").unwrap().label, Label::Pairwise(2));
        assert!(pair("both").is_err());
        let with_meta = parse_item(JudgeKind::Binary, 0, json!({"question": "q", "answer": "a", "prediction": "p", "label": 1, "id": "x-1", "group": "math"}))
            .unwrap();
        assert_eq!(with_meta.id, Some(json!("x-1")));
        assert_eq!(with_meta.group.as_deref(), Some("math"));
    }

    fn tally(verdict: &'static str) -> Tally {
        Tally {
            ok: true,
            verdict: Some(verdict),
            cost_usd: Some(0.0),
            ..Tally::default()
        }
    }

    #[test]
    fn figures_leave_unscored_and_errors_out_of_agreement() {
        let labels = [true, true, false, false, true, false];
        let items: Vec<LabelledItem> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                parse_item(
                    JudgeKind::Binary,
                    i,
                    json!({"question": "q", "answer": "a", "prediction": "p", "label": l, "group": if i < 3 {"x"} else {"y"}}),
                )
                .unwrap()
            })
            .collect();
        let tallies = vec![
            tally("correct"),
            tally("incorrect"),
            tally("incorrect"),
            tally("correct"),
            tally("unscored"),
            Tally::default(),
        ];
        let f = figures(JudgeKind::Binary, "j", &items, &tallies);
        assert_eq!((f.items, f.graded, f.unscored, f.errors), (6, 4, 1, 1));
        assert_eq!(f.accuracy, Some(0.5));
        assert_eq!(f.unscored_rate, Some(round6(1.0 / 6.0)));
        let c = f.confusion.unwrap();
        assert_eq!(c.labels, vec!["correct", "incorrect"]);
        assert_eq!(c.matrix, vec![vec![1, 1], vec![1, 1]]);
        assert_eq!(f.cohen_kappa, Some(Some(0.0)));
        assert_eq!(f.base_rate, Some(Some(0.5)));
        assert_eq!(f.precision, Some(Some(0.5)));
        assert_eq!(f.groups["x"].graded, 3);
        assert_eq!(f.groups["y"].unscored, 1);
        assert_eq!(f.groups["y"].accuracy, Some(0.0));
    }
}
