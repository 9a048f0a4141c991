//! What a panel reports beside its verdict: every judge's vote, and the panel's agreement.

use serde::Serialize;

use crate::confidence::ConfidenceSource;
use crate::verdict::Verdict;
use llm_judge_chat::Usage;

/// One judge's part in a panel's verdict.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PanelVote {
    /// The judge's route.
    pub judge: String,
    /// `ok` (it answered; its verdict may still be `unscored`), `error` (every provider of its
    /// route failed) or `not_called` (escalation: the first two judges agreed).
    pub status: &'static str,
    pub verdict: Option<Verdict>,
    pub result: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<&'static str>,
    /// Pairwise with `swap`: whether this judge's two orders agreed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent: Option<bool>,
    /// Pairwise: the position this judge preferred in each order asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<Option<&'static str>>,
    /// Why it is unscored, or the judge's own reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The judge's answer text, as it came.
    pub raw_response: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub confidence: Option<f64>,
    pub confidence_source: ConfidenceSource,
    pub latency_ms: f64,
    pub cached: bool,
    /// For `error`: the code and message, as a single judgment's error would have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<VoteError>,
}

/// Why a judge of a panel gave no answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VoteError {
    pub code: String,
    pub message: String,
}

/// What a panel reports beside its verdict.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PanelReport {
    pub name: String,
    /// `majority`, `mean`, `min` or `unanimous`.
    pub aggregate: &'static str,
    pub quorum: usize,
    /// Judges that gave a verdict.
    pub voted: usize,
    /// The share of voting judges whose verdict is the panel's (see the panel documentation for
    /// scores); null when the quorum was not met.
    pub agreement: Option<f64>,
    /// Every judge, in the panel's order.
    pub judges: Vec<PanelVote>,
}
