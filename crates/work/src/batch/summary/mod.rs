//! Batch summaries: verdict counts, accuracy over scored items, usage, cost and throughput;
//! bias figures (pairwise: how often the two orders disagree and how often the first position
//! wins; scores: how the score follows the response's length); for panels, each judge's figures
//! and the judges' agreement (Fleiss' kappa).

mod bias;
mod corrected;
mod panel;
mod progress;
mod tally;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::budget::BudgetReport;
pub use bias::{LengthBias, PositionBias};
pub use corrected::CorrectedAccuracy;
use llm_judge_chat::Usage;
use llm_judge_judge::JudgeKind;
use llm_judge_judge::stats::{self, round6};
pub use panel::{PanelJudgeSummary, PanelSummary};
pub use progress::{Progress, ProviderBatchProgress, Waiting};
pub use tally::{JudgeVote, PanelTally, Position, Tally, category};

/// Totals over a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub total: usize,
    pub correct: usize,
    pub incorrect: usize,
    pub unscored: usize,
    /// Items that could not be judged at all (invalid, or every provider failed).
    pub errors: usize,
    /// correct / (correct + incorrect); null when nothing was scored.
    pub accuracy: Option<f64>,
    /// The accuracy's 95% Wilson interval, `[low, high]`: how far the judged accuracy may be
    /// from the judge's long-run rate on items like these (not the judge's own error; null when
    /// nothing was scored).
    pub accuracy_interval: Option<[f64; 2]>,
    /// Binary batches with a person's `label` on some items: the accuracy corrected by the
    /// labels (prediction-powered inference), with its interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected_accuracy: Option<CorrectedAccuracy>,
    /// The verdicts split by the judge (`provider:model`) that gave them, so that a route that
    /// fell back says which model its verdicts came from (panels' verdicts are under `panels`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_judge: BTreeMap<String, JudgeCounts>,
    /// Score judgments: the mean score of scored items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_score: Option<f64>,
    /// Pairwise judgments: wins of A, wins of B, ties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wins: Option<Wins>,
    /// Pairwise batches: the flip rate of swapped items and the first position's win rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_bias: Option<PositionBias>,
    /// Score batches: the correlation of the score with the response's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_bias: Option<LengthBias>,
    /// Items judged by panels: per panel, each judge's figures and the judges' agreement.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub panels: BTreeMap<String, PanelSummary>,
    pub usage: Usage,
    /// Summed cost; null when some answered item's model has no price.
    pub cost_usd: Option<f64>,
    pub cached: usize,
    pub duration_ms: f64,
    pub items_per_second: f64,
    /// The batch's spend budget, when it had one: its limits, what was spent, and whether it
    /// stopped the work (`exhausted`, with the number of items `not_sent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    /// Jobs with `provider_batch`: how many answered items came from a provider batch and how
    /// many did not (online calls, verdict-cache hits, the rules judge); errors are in neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    #[serde(skip)]
    ppi: corrected::Ppi,
    #[serde(skip)]
    by_provider_batch: usize,
    #[serde(skip)]
    not_sent: usize,
    #[serde(skip)]
    kind: Option<JudgeKind>,
    #[serde(skip)]
    score_sum: f64,
    #[serde(skip)]
    scored: usize,
    #[serde(skip)]
    unpriced: bool,
    #[serde(skip)]
    scored_without_verdict: usize,
}

/// One judge's share of a batch's verdicts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct JudgeCounts {
    pub correct: usize,
    pub incorrect: usize,
    pub unscored: usize,
    /// Scores and pairwise winners.
    pub other: usize,
    /// Of these verdicts, those it gave as a fallback (a step after the route's first).
    pub fallback: usize,
    /// correct / (correct + incorrect) of its verdicts.
    pub accuracy: Option<f64>,
    /// Its 95% Wilson interval.
    pub accuracy_interval: Option<[f64; 2]>,
}

/// How a job's answered items were delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    /// Answered through a provider batch (at the batch price).
    pub provider_batch: usize,
    /// Answered by an online call (providers without a batch API, items a provider batch did
    /// not answer, cache hits, the rules judge).
    pub online: usize,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Wins {
    pub a: usize,
    pub b: usize,
    pub tie: usize,
}

impl Summary {
    pub fn new(kind: JudgeKind, total: usize) -> Self {
        Summary {
            total,
            correct: 0,
            incorrect: 0,
            unscored: 0,
            errors: 0,
            accuracy: None,
            accuracy_interval: None,
            corrected_accuracy: None,
            by_judge: BTreeMap::new(),
            ppi: corrected::Ppi::default(),
            mean_score: None,
            wins: (kind == JudgeKind::Compare).then(Wins::default),
            position_bias: (kind == JudgeKind::Compare).then(PositionBias::default),
            length_bias: (kind == JudgeKind::Score).then(LengthBias::default),
            panels: BTreeMap::new(),
            usage: Usage::default(),
            cost_usd: Some(0.0),
            cached: 0,
            duration_ms: 0.0,
            items_per_second: 0.0,
            budget: None,
            delivery: None,
            by_provider_batch: 0,
            not_sent: 0,
            kind: Some(kind),
            score_sum: 0.0,
            scored: 0,
            unpriced: false,
            scored_without_verdict: 0,
        }
    }

    /// Counts one result entry (as serialised for the response).
    pub fn add(&mut self, entry: &Value) {
        self.count(&Tally::of_value(entry));
    }

    /// Counts one result from its [`Tally`].
    pub fn count(&mut self, t: &Tally) {
        if !t.ok {
            self.errors += 1;
            self.not_sent += usize::from(t.budget_exhausted);
            return;
        }
        match t.verdict {
            Some("correct") => self.correct += 1,
            Some("incorrect") => self.incorrect += 1,
            Some("unscored") => self.unscored += 1,
            _ => self.scored_without_verdict += 1,
        }
        if let Some(j) = &t.judge {
            let c = self.by_judge.entry(j.clone()).or_default();
            match t.verdict {
                Some("correct") => c.correct += 1,
                Some("incorrect") => c.incorrect += 1,
                Some("unscored") => c.unscored += 1,
                _ => c.other += 1,
            }
            c.fallback += usize::from(t.fallback);
        }
        match (t.verdict, t.label) {
            (Some(v @ ("correct" | "incorrect")), label) => self.ppi.add(label, v == "correct"),
            (Some("unscored"), Some(_)) => self.ppi.left_out(),
            _ => {}
        }
        if let Some(s) = t.score {
            self.score_sum += s;
            self.scored += 1;
            if let (Some(b), Some(chars)) = (self.length_bias.as_mut(), t.chars) {
                b.corr.add(s, chars as f64);
            }
        }
        if let (Some(w), Some(wins)) = (t.winner, self.wins.as_mut()) {
            match w {
                "a" => wins.a += 1,
                "b" => wins.b += 1,
                _ => wins.tie += 1,
            }
        }
        if let Some(b) = self.position_bias.as_mut() {
            b.count(t.consistent, &t.positions);
        }
        if let Some(p) = &t.panel {
            self.panels
                .entry(p.name.clone())
                .or_default()
                .count(self.kind, p);
        }
        self.usage.add(t.usage);
        match t.cost_usd {
            Some(c) => {
                if let Some(total) = self.cost_usd.as_mut() {
                    *total += c;
                }
            }
            None => self.unpriced = true,
        }
        if t.cached {
            self.cached += 1;
        }
        if t.provider_batch {
            self.by_provider_batch += 1;
        }
    }

    /// Error entries a budget made (items not sent).
    pub fn not_sent(&self) -> usize {
        self.not_sent
    }

    /// Adds `delivery` to what is shown: items answered through provider batches and online.
    pub fn show_delivery(&mut self) {
        let answered = self.done() - self.errors;
        self.delivery = Some(Delivery {
            provider_batch: self.by_provider_batch,
            online: answered.saturating_sub(self.by_provider_batch),
        });
    }

    /// Sets the derived figures.
    pub fn finish(&mut self, elapsed: Duration) {
        let scored = self.correct + self.incorrect;
        self.accuracy = (scored > 0).then(|| self.correct as f64 / scored as f64);
        self.accuracy_interval = stats::wilson(self.correct, scored).map(stats::round6_pair);
        self.corrected_accuracy = self.ppi.finish();
        for c in self.by_judge.values_mut() {
            let graded = c.correct + c.incorrect;
            c.accuracy = (graded > 0).then(|| round6(c.correct as f64 / graded as f64));
            c.accuracy_interval = stats::wilson(c.correct, graded).map(stats::round6_pair);
        }
        if self.kind == Some(JudgeKind::Score) && self.scored > 0 {
            self.mean_score = Some(self.score_sum / self.scored as f64);
        }
        if let Some(b) = self.position_bias.as_mut() {
            b.finish();
        }
        if let Some(b) = self.length_bias.as_mut() {
            b.items = b.corr.count() as usize;
            b.score_length_correlation = b.corr.value().map(round6);
        }
        for p in self.panels.values_mut() {
            p.finish();
        }
        if self.unpriced {
            self.cost_usd = None;
        }
        let secs = elapsed.as_secs_f64();
        self.duration_ms = (secs * 1_000_000.0).round() / 1000.0;
        let done = self.total as f64;
        self.items_per_second = if secs > 0.0 {
            (done / secs * 10.0).round() / 10.0
        } else {
            0.0
        };
    }
}

impl Summary {
    /// Items counted so far.
    pub fn done(&self) -> usize {
        self.correct + self.incorrect + self.unscored + self.errors + self.scored_only()
    }

    /// Items scored without a pass mark (score and compare judgments) count as done too.
    fn scored_only(&self) -> usize {
        self.scored_without_verdict
    }

    /// The progress object after `elapsed` of work on `done_before_start` items done earlier.
    pub fn progress(&self, elapsed: Duration, done_before_start: usize) -> Progress {
        let done = self.done();
        let fresh = done.saturating_sub(done_before_start) as f64;
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { fresh / secs } else { 0.0 };
        let left = self.total.saturating_sub(done) as f64;
        Progress {
            done,
            total: self.total,
            correct: self.correct,
            incorrect: self.incorrect,
            unscored: self.unscored,
            errors: self.errors,
            items_per_second: (rate * 10.0).round() / 10.0,
            eta_s: (rate > 0.0).then(|| (left / rate * 10.0).round() / 10.0),
            provider_batches: Vec::new(),
            waiting: None,
        }
    }
}
