//! Why a reply produced no grade: a bounded reason (a metric label) and a human sentence.

use std::fmt;

/// Why a reply produced no grade. The labels are bounded, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnscoredReason {
    EmptyResponse,
    Refusal,
    Unparseable,
    Ambiguous,
    OutOfRange,
}

impl UnscoredReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            UnscoredReason::EmptyResponse => "empty_response",
            UnscoredReason::Refusal => "refusal",
            UnscoredReason::Unparseable => "unparseable",
            UnscoredReason::Ambiguous => "ambiguous",
            UnscoredReason::OutOfRange => "out_of_range",
        }
    }
}

/// A reply that could not be graded: a bounded reason and a human sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Unscored {
    pub reason: UnscoredReason,
    pub detail: String,
}

impl Unscored {
    pub(super) fn new(reason: UnscoredReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Unscored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

/// An unscored result: `reason` with a detail sentence.
pub(super) fn fail<T>(reason: UnscoredReason, detail: impl Into<String>) -> Result<T, Unscored> {
    Err(Unscored::new(reason, detail))
}
