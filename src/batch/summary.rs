//! Batch summaries: verdict counts, accuracy over scored items, usage, cost and throughput.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use serde::Deserialize;

use crate::chat::Usage;
use crate::judge::JudgeKind;

/// What a summary counts of one result entry, without the entry itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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
}

impl Tally {
    /// The tally of an entry read back as JSON (stored job results, a run's output file).
    pub fn of_value(entry: &Value) -> Tally {
        if entry["status"] != "ok" {
            return Tally::default();
        }
        let label = |v: &Value, known: &[&'static str]| {
            v.as_str()
                .and_then(|s| known.iter().copied().find(|k| *k == s))
        };
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
    pub usage: Usage,
    /// Summed cost; null when some answered item's model has no price.
    pub cost_usd: Option<f64>,
    pub cached: usize,
    pub duration_ms: f64,
    pub items_per_second: f64,
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
            usage: Usage::default(),
            cost_usd: Some(0.0),
            cached: 0,
            duration_ms: 0.0,
            items_per_second: 0.0,
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
        }
        if let (Some(w), Some(wins)) = (t.winner, self.wins.as_mut()) {
            match w {
                "a" => wins.a += 1,
                "b" => wins.b += 1,
                _ => wins.tie += 1,
            }
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
    }

    /// Sets the derived figures.
    pub fn finish(&mut self, elapsed: Duration) {
        let scored = self.correct + self.incorrect;
        self.accuracy = (scored > 0).then(|| self.correct as f64 / scored as f64);
        if self.kind == Some(JudgeKind::Score) && self.scored > 0 {
            self.mean_score = Some(self.score_sum / self.scored as f64);
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
        }
    }
}
