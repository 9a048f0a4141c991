//! What a calibration runs ([`Plan`]), and running it: every labelled item judged by every
//! judge named, with bounded concurrency, then each judge's figures against the labels.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::figures::figures;
use super::item::{InvalidItem, LabelledItem};
use super::label::{BINARY, Label, PAIRWISE};
use super::report::{ItemResult, JudgeFigures, Report};
use super::said::item_verdict;
use super::store;
use crate::batch::{self, BatchItem, Tally};
use llm_judge_judge::stats::round6;
use llm_judge_judge::{Judge, JudgeKind};
use llm_judge_pool::Via;

/// Most judges one calibration may name.
pub const MAX_JUDGES: usize = 16;

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
    let tallies = judge_all(&judge, &plan).await;
    let figures: Vec<JudgeFigures> = plan
        .judges
        .iter()
        .zip(&tallies)
        .map(|(name, t)| figures(plan.kind, name, &plan.items, t))
        .collect();
    let label_counts = label_counts(plan.kind, &plan.items);
    let base_rate = base_rate(plan.kind, &plan.items);
    let results = plan
        .include_items
        .then(|| item_results(&plan.judges, &plan.items, &tallies));
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

/// Every judge's tally of every item (`[judge][item]`), judged with the plan's concurrency
/// under its budget.
async fn judge_all(judge: &Arc<Judge>, plan: &Plan) -> Vec<Vec<Tally>> {
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
                    Some(b) => match batch::admit_when_room(&judge, &route, index, item, b).await {
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
    tallies
}

/// Binary and pairwise: how many items carry each label.
fn label_counts(kind: JudgeKind, items: &[LabelledItem]) -> BTreeMap<String, usize> {
    let mut label_counts = BTreeMap::new();
    for it in items {
        if let Some(c) = it.label.category() {
            let names: &[&str] = if kind == JudgeKind::Binary {
                &BINARY
            } else {
                &PAIRWISE
            };
            *label_counts.entry(names[c].to_string()).or_default() += 1;
        }
    }
    label_counts
}

/// Binary: the share of items labelled correct.
fn base_rate(kind: JudgeKind, items: &[LabelledItem]) -> Option<f64> {
    let n = items.len();
    (kind == JudgeKind::Binary && n > 0).then(|| {
        let correct = items
            .iter()
            .filter(|i| i.label == Label::Binary(true))
            .count();
        round6(correct as f64 / n as f64)
    })
}

/// Every item with its label and each judge's verdict.
fn item_results(
    judges: &[String],
    items: &[LabelledItem],
    tallies: &[Vec<Tally>],
) -> Vec<ItemResult> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| ItemResult {
            index: it.index,
            id: it.id.clone(),
            group: it.group.clone(),
            label: it.label.to_value(),
            verdicts: judges
                .iter()
                .zip(tallies)
                .map(|(name, t)| (name.clone(), item_verdict(&t[i], it.label)))
                .collect(),
        })
        .collect()
}
