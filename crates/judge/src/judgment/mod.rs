//! What a judgment returns: the fields every judgment has, the score and pairwise forms that
//! add their own, and a panel's report.

mod report;

use serde::Serialize;

use crate::confidence::ConfidenceSource;
use crate::verdict::Verdict;
use llm_judge_chat::Usage;
use llm_judge_pool::Attempt;
pub use report::{PanelReport, PanelVote, VoteError};

/// Fields every judgment has.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Judgment {
    /// 1 correct, 0 incorrect, null when unscored (or not a pass/fail judgment).
    pub result: Option<u8>,
    pub verdict: Verdict,
    /// Why the item is unscored (or what the rules judge matched).
    pub reason: Option<String>,
    /// A bounded label for the unscored reason (`empty_response`, `refusal`, `unparseable`,
    /// `ambiguous`, `out_of_range`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unscored_reason: Option<&'static str>,
    /// The judge's answer text, as it came.
    pub raw_response: String,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    /// True when a later step of the route answered.
    pub fallback: bool,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    /// True when the answer came from the verdict cache (no provider was called).
    pub cached: bool,
    /// The prompt template and its version (part of what identifies a judgment).
    pub template_version: String,
    /// How sure the judge is of this verdict, from 0 to 1 (see `confidence_source`); null when
    /// nothing measured it.
    pub confidence: Option<f64>,
    /// Where `confidence` comes from: `logprobs` (the verdict token's probabilities, on routes
    /// with `confidence = "logprobs"`), `panel` (the panel's agreement), `swap` (a comparison
    /// asked in both orders: 1 when they agree, 0.5 when not) or `none`.
    pub confidence_source: ConfidenceSource,
    /// Binary verdicts with `logprobs` confidence: P(correct) = P(positive) / (P(positive) +
    /// P(negative)) at the verdict token (`confidence` is the probability of the verdict given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_correct: Option<f64>,
    /// Which path read the verdict: `structured` (the JSON answer a `structured` route asked
    /// for), `json` (a JSON object in a free answer, as the rules judge gives), `text` (the
    /// free-text parser, also the fallback when a structured answer did not come); null when
    /// nothing was parsed (an empty answer, a refusal, a panel).
    pub parser: Option<&'static str>,
    /// For a panel: every judge's verdict and the panel's agreement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub panel: Option<Box<PanelReport>>,
    /// Jobs with `provider_batch`: the id of the provider batch that answered (at the batch
    /// price); absent for an online answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_batch: Option<String>,
    /// What the provider that answered was sent of the decoding; absent when no provider was
    /// called (the verdict cache, the rules judge, a panel: see its judges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoding: Option<Decoding>,
}

/// The decoding a provider was sent: what makes its answer repeatable, or not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decoding {
    /// Null when the model takes none (reasoning models); see `note`.
    pub temperature: Option<f32>,
    pub max_tokens: u32,
    /// The sampling seed; null for a provider that takes none (Anthropic).
    pub seed: Option<i64>,
    /// Said when the decoding is not what the route asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// A scale judgment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScoreJudgment {
    #[serde(flatten)]
    pub judgment: Judgment,
    pub score: Option<f64>,
    /// With `logprobs` confidence: the probability-weighted score over the scale points the
    /// judge considered at the score token (G-Eval style), next to the parsed `score`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weighted_score: Option<f64>,
    /// The length of the rated response in characters (summaries correlate it with the score,
    /// to show a length bias).
    pub prediction_chars: usize,
}

/// A pairwise judgment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompareJudgment {
    #[serde(flatten)]
    pub judgment: Judgment,
    /// `a`, `b`, `tie`, or null when unscored.
    pub winner: Option<&'static str>,
    /// 1 for the winner, 0 for the loser, 0.5 each for a tie.
    pub scores: [Option<f64>; 2],
    /// With `swap`: whether both orders chose the same winner (disagreement is a tie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent: Option<bool>,
    /// The position the judge preferred in each order asked: `first`, `second` or `tie` (null
    /// when that answer was not read). The first order shows A first; with `swap`, the second
    /// shows B first. Summaries count these for the first-position preference.
    pub positions: Vec<Option<&'static str>>,
}
