//! Batch summaries: verdict counts, accuracy over scored items, usage, cost and throughput;
//! bias figures (pairwise: how often the two orders disagree and how often the first position
//! wins; scores: how the score follows the response's length); for panels, each judge's figures
//! and the judges' agreement (Fleiss' kappa).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use serde::Deserialize;

use llm_judge_chat::Usage;
use llm_judge_judge::JudgeKind;
use llm_judge_judge::stats::{Correlation, Fleiss, round6};

/// What a summary counts of one result entry, without the entry itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// False for an `error` entry (nothing else is counted then).
    pub ok: bool,
    /// `correct`, `incorrect`, `unscored`, `scored`.
    pub verdict: Option<&'static str>,
    pub score: Option<f64>,
    /// `a`, `b` or `tie`.
    pub winner: Option<&'static str>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub cached: bool,
    /// Pairwise with `swap`: whether the two orders agreed.
    pub consistent: Option<bool>,
    /// Pairwise: the position preferred in each order asked.
    pub positions: Vec<Position>,
    /// Scores: the rated response's length in characters.
    pub chars: Option<usize>,
    /// Panels: the panel's name and each judge's vote.
    pub panel: Option<Box<PanelTally>>,
    /// Answered through a provider batch.
    pub provider_batch: bool,
    /// An error entry a budget made (the item was not sent).
    pub budget_exhausted: bool,
}

/// The position a pairwise answer preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    First,
    Second,
    Tie,
    /// The answer was not read.
    Unread,
}

impl Position {
    pub fn parse(p: Option<&str>) -> Position {
        match p {
            Some("first") => Position::First,
            Some("second") => Position::Second,
            Some("tie") => Position::Tie,
            _ => Position::Unread,
        }
    }
}

/// A panel item's votes, for the panel's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PanelTally {
    pub name: String,
    /// The panel's own verdict as a category (see [`category`]); `None` when unscored.
    pub decision: Option<String>,
    pub judges: Vec<JudgeVote>,
}

/// One judge's vote on a panel item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JudgeVote {
    pub judge: String,
    /// `ok`, `error` or `not_called`.
    pub status: String,
    /// `correct`, `incorrect`, `unscored`, `scored`.
    pub verdict: Option<String>,
    /// The vote as a category; `None` when the judge gave no verdict.
    pub category: Option<String>,
    pub score: Option<f64>,
    pub consistent: Option<bool>,
    pub positions: Vec<Position>,
}

/// A verdict as a category for agreement figures: `correct` / `incorrect` where there is a pass
/// mark, else the winner (`a`, `b`, `tie`) or the score.
pub fn category(verdict: Option<&str>, winner: Option<&str>, score: Option<f64>) -> Option<String> {
    match (verdict, winner, score) {
        (Some(v @ ("correct" | "incorrect")), _, _) => Some(v.to_string()),
        (_, Some(w), _) => Some(w.to_string()),
        (Some("scored"), _, Some(s)) => Some(format!("{s}")),
        _ => None,
    }
}

fn positions_of(v: &Value) -> Vec<Position> {
    v.as_array()
        .map(|a| a.iter().map(|p| Position::parse(p.as_str())).collect())
        .unwrap_or_default()
}

impl Tally {
    /// The tally of an entry read back as JSON (stored job results, a run's output file).
    pub fn of_value(entry: &Value) -> Tally {
        if entry["status"] != "ok" {
            return Tally {
                budget_exhausted: entry["error"]["code"] == crate::budget::EXHAUSTED,
                ..Tally::default()
            };
        }
        let label = |v: &Value, known: &[&'static str]| {
            v.as_str()
                .and_then(|s| known.iter().copied().find(|k| *k == s))
        };
        let panel = entry["panel"].as_object().map(|p| {
            let judges = p
                .get("judges")
                .and_then(Value::as_array)
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|j| {
                    let verdict = j["verdict"].as_str();
                    JudgeVote {
                        judge: j["judge"].as_str().unwrap_or_default().to_string(),
                        status: j["status"].as_str().unwrap_or("ok").to_string(),
                        verdict: verdict.map(str::to_string),
                        category: category(verdict, j["winner"].as_str(), j["score"].as_f64()),
                        score: j["score"].as_f64(),
                        consistent: j["consistent"].as_bool(),
                        positions: positions_of(&j["positions"]),
                    }
                })
                .collect();
            Box::new(PanelTally {
                name: p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                decision: category(
                    entry["verdict"].as_str(),
                    entry["winner"].as_str(),
                    entry["score"].as_f64(),
                ),
                judges,
            })
        });
        Tally {
            ok: true,
            verdict: label(
                &entry["verdict"],
                &["correct", "incorrect", "unscored", "scored"],
            ),
            score: entry["score"].as_f64(),
            winner: label(&entry["winner"], &["a", "b", "tie"]).or_else(|| {
                // any other winner text still counts as a tie, as before
                entry["winner"].as_str().map(|_| "tie")
            }),
            usage: Usage::deserialize(&entry["usage"]).unwrap_or_default(),
            cost_usd: entry["cost_usd"].as_f64(),
            cached: entry["cached"] == true,
            consistent: entry["consistent"].as_bool(),
            positions: positions_of(&entry["positions"]),
            chars: entry["prediction_chars"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok()),
            panel,
            provider_batch: entry["provider_batch"].is_string(),
            budget_exhausted: false,
        }
    }
}

/// Position bias of a pairwise batch.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PositionBias {
    /// Of the items asked in both orders (`swap`) with both answers read, the share whose two
    /// orders chose different winners; null when there were none.
    pub flip_rate: Option<f64>,
    /// Of the answers that preferred a position (ties left out), in every order asked, the
    /// share that preferred the response shown first (0.5 is no bias); null when none did.
    pub first_position_rate: Option<f64>,
    /// Items asked in both orders with both answers read.
    pub swapped: usize,
    /// Answers that preferred a position.
    pub decisions: usize,
    #[serde(skip)]
    flips: usize,
    #[serde(skip)]
    firsts: usize,
}

impl PositionBias {
    fn count(&mut self, consistent: Option<bool>, positions: &[Position]) {
        if let Some(c) = consistent {
            self.swapped += 1;
            self.flips += usize::from(!c);
        }
        for p in positions {
            match p {
                Position::First => {
                    self.decisions += 1;
                    self.firsts += 1;
                }
                Position::Second => self.decisions += 1,
                Position::Tie | Position::Unread => {}
            }
        }
    }

    fn finish(&mut self) {
        let rate = |n: usize, d: usize| (d > 0).then(|| round6(n as f64 / d as f64));
        self.flip_rate = rate(self.flips, self.swapped);
        self.first_position_rate = rate(self.firsts, self.decisions);
    }
}

/// Length bias of a score batch.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LengthBias {
    /// Pearson's correlation of the score with the rated response's length in characters (a
    /// judge that rewards length shows a large positive value); null with fewer than two scores
    /// or when every score or length is the same.
    pub score_length_correlation: Option<f64>,
    /// Scored items counted.
    pub items: usize,
    #[serde(skip)]
    corr: Correlation,
}

/// One judge of a panel over a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PanelJudgeSummary {
    pub judge: String,
    pub correct: usize,
    pub incorrect: usize,
    pub unscored: usize,
    /// Items where every provider of its route failed.
    pub errors: usize,
    /// Items it was not asked about (escalation).
    pub not_called: usize,
    /// correct / (correct + incorrect), as the batch's own accuracy; null when it graded none.
    pub accuracy: Option<f64>,
    /// Of the items where both this judge and the panel gave a verdict, the share where they
    /// gave the same one.
    pub agreement_with_panel: Option<f64>,
    /// Scores: the mean of its scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_score: Option<f64>,
    /// Pairwise: its own flip rate and first-position preference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_bias: Option<PositionBias>,
    #[serde(skip)]
    agreed: usize,
    #[serde(skip)]
    compared: usize,
    #[serde(skip)]
    score_sum: f64,
    #[serde(skip)]
    scores: usize,
}

/// A panel's figures over a batch.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PanelSummary {
    /// Items judged by this panel.
    pub items: usize,
    /// Fleiss' kappa of the judges' votes: 1 when they always agree, 0 when they agree no
    /// more than chance; null when undefined (every vote in one category, or no item with two
    /// votes). Judges that gave no verdict on an item are left out of that item (Gwet's form).
    pub fleiss_kappa: Option<f64>,
    pub judges: Vec<PanelJudgeSummary>,
    #[serde(skip)]
    fleiss: Fleiss<String>,
}

impl PanelSummary {
    fn count(&mut self, kind: Option<JudgeKind>, t: &PanelTally) {
        self.items += 1;
        for (i, v) in t.judges.iter().enumerate() {
            if self.judges.len() <= i {
                self.judges.push(PanelJudgeSummary {
                    judge: v.judge.clone(),
                    correct: 0,
                    incorrect: 0,
                    unscored: 0,
                    errors: 0,
                    not_called: 0,
                    accuracy: None,
                    agreement_with_panel: None,
                    mean_score: None,
                    position_bias: (kind == Some(JudgeKind::Compare)).then(PositionBias::default),
                    agreed: 0,
                    compared: 0,
                    score_sum: 0.0,
                    scores: 0,
                });
            }
            let j = &mut self.judges[i];
            match (v.status.as_str(), v.verdict.as_deref()) {
                ("error", _) => j.errors += 1,
                ("not_called", _) => j.not_called += 1,
                (_, Some("correct")) => j.correct += 1,
                (_, Some("incorrect")) => j.incorrect += 1,
                (_, Some("unscored")) => j.unscored += 1,
                _ => {}
            }
            if let Some(s) = v.score {
                j.score_sum += s;
                j.scores += 1;
            }
            if let Some(b) = j.position_bias.as_mut() {
                b.count(v.consistent, &v.positions);
            }
            if let (Some(c), Some(d)) = (&v.category, &t.decision) {
                j.compared += 1;
                j.agreed += usize::from(c == d);
            }
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for c in t.judges.iter().filter_map(|v| v.category.clone()) {
            *counts.entry(c).or_default() += 1;
        }
        self.fleiss.add(counts);
    }

    fn finish(&mut self) {
        self.fleiss_kappa = self.fleiss.value().map(round6);
        for j in &mut self.judges {
            let graded = j.correct + j.incorrect;
            j.accuracy = (graded > 0).then(|| round6(j.correct as f64 / graded as f64));
            j.agreement_with_panel =
                (j.compared > 0).then(|| round6(j.agreed as f64 / j.compared as f64));
            j.mean_score = (j.scores > 0).then(|| round6(j.score_sum / j.scores as f64));
            if let Some(b) = j.position_bias.as_mut() {
                b.finish();
            }
        }
    }
}

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
    pub budget: Option<super::BudgetReport>,
    /// Jobs with `provider_batch`: how many answered items came from a provider batch and how
    /// many did not (online calls, verdict-cache hits, the rules judge); errors are in neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
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

/// Progress of a running batch or job, as streamed to clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub correct: usize,
    pub incorrect: usize,
    pub unscored: usize,
    pub errors: usize,
    pub items_per_second: f64,
    /// Seconds left at the current rate; null before the first result.
    pub eta_s: Option<f64>,
    /// Jobs with `provider_batch`: each provider batch the job made, as last polled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_batches: Vec<ProviderBatchProgress>,
}

/// Where one of a job's provider batches is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ProviderBatchProgress {
    /// The provider's batch id.
    pub id: String,
    /// The configured provider it went to.
    pub provider: String,
    /// `submitted` (created; the provider is checking it), `in_progress`, or `ended`.
    pub phase: String,
    /// Requests with an outcome, those that failed (errored, expired, cancelled: they go
    /// online), and all of them.
    pub done: u64,
    pub failed: u64,
    pub total: u64,
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
        }
    }
}
