//! The words of a judgment: its kind (binary, score, compare) and its outcome.

use serde::Serialize;

/// The kind of judgment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    Binary,
    Score,
    Compare,
}

impl JudgeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JudgeKind::Binary => "binary",
            JudgeKind::Score => "score",
            JudgeKind::Compare => "compare",
        }
    }
}

/// The outcome of one judgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Correct,
    Incorrect,
    /// A score or a pairwise winner was read (no pass mark was asked for).
    Scored,
    /// The judge's answer could not be read as a verdict; `reason` says why.
    Unscored,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Incorrect => "incorrect",
            Verdict::Scored => "scored",
            Verdict::Unscored => "unscored",
        }
    }
}
