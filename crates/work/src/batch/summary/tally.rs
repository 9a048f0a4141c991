//! What a batch summary counts of one result entry ([`Tally`]), whether it was judged just now
//! or read back as JSON: the verdict, score or winner, usage and cost, pairwise positions, and
//! a panel's votes.

use serde::Deserialize;
use serde_json::Value;

use llm_judge_chat::Usage;

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
    /// Binary: the person's label the item carried (true: correct).
    pub label: Option<bool>,
    /// The judge that gave the verdict, `provider:model` (not for panels).
    pub judge: Option<String>,
    /// The verdict came from a step after the route's first (a fallback).
    pub fallback: bool,
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
            judge: match (entry["provider"].as_str(), entry["model"].as_str()) {
                (Some(p), Some(m)) if entry["panel"].is_null() => Some(format!("{p}:{m}")),
                _ => None,
            },
            fallback: entry["fallback"] == true,
            label: match entry["label"].as_str() {
                Some("correct") => Some(true),
                Some("incorrect") => Some(false),
                _ => None,
            },
        }
    }
}
