//! A judge's answer as a panel sees it: answered, failed or not called, its vote, and its line
//! in the panel's report.

use crate::confidence::ConfidenceSource;
use crate::error::JudgeError;
use crate::judgment::{CompareJudgment, Judgment, PanelVote, ScoreJudgment, VoteError};
use llm_judge_chat::Usage;

/// A judge's answer as a panel sees it.
pub(super) enum Member<J> {
    Answered(J),
    Failed(JudgeError),
    NotCalled,
}

/// What a panel needs of each kind's judgment.
pub(super) trait Ballot {
    fn base(&self) -> &Judgment;
    /// The vote, or `None` when the judge gave no verdict.
    fn vote(&self) -> Option<f64>;
    fn score(&self) -> Option<f64> {
        None
    }
    fn winner(&self) -> Option<&'static str> {
        None
    }
    fn consistent(&self) -> Option<bool> {
        None
    }
    fn positions(&self) -> Vec<Option<&'static str>> {
        Vec::new()
    }
}

impl Ballot for Judgment {
    fn base(&self) -> &Judgment {
        self
    }
    fn vote(&self) -> Option<f64> {
        self.result.map(f64::from)
    }
}

impl Ballot for ScoreJudgment {
    fn base(&self) -> &Judgment {
        &self.judgment
    }
    fn vote(&self) -> Option<f64> {
        self.score
    }
    fn score(&self) -> Option<f64> {
        self.score
    }
}

impl Ballot for CompareJudgment {
    fn base(&self) -> &Judgment {
        &self.judgment
    }
    fn vote(&self) -> Option<f64> {
        self.scores[0]
    }
    fn winner(&self) -> Option<&'static str> {
        self.winner
    }
    fn consistent(&self) -> Option<bool> {
        self.consistent
    }
    fn positions(&self) -> Vec<Option<&'static str>> {
        self.positions.clone()
    }
}

impl<J: Ballot> Member<J> {
    pub(super) fn vote(&self) -> Option<f64> {
        match self {
            Member::Answered(j) => j.vote(),
            _ => None,
        }
    }

    pub(super) fn into_vote(self, judge: &str) -> PanelVote {
        let blank = |status| PanelVote {
            judge: judge.to_string(),
            status,
            verdict: None,
            result: None,
            score: None,
            winner: None,
            consistent: None,
            positions: Vec::new(),
            reason: None,
            raw_response: None,
            provider: None,
            model: None,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            confidence: None,
            confidence_source: ConfidenceSource::None,
            latency_ms: 0.0,
            cached: false,
            error: None,
        };
        match self {
            Member::NotCalled => blank("not_called"),
            Member::Failed(e) => {
                let (code, message) = match e {
                    JudgeError::UnknownRoute(r) => {
                        ("unknown_judge".to_string(), format!("no judge named {r:?}"))
                    }
                    JudgeError::Failed { code, message, .. } => (code.to_string(), message),
                    JudgeError::Parked => (
                        "not_called".to_string(),
                        "the call waits to be made later".to_string(),
                    ),
                };
                PanelVote {
                    cost_usd: None,
                    error: Some(VoteError { code, message }),
                    ..blank("error")
                }
            }
            Member::Answered(j) => {
                let (score, winner, consistent, positions) =
                    (j.score(), j.winner(), j.consistent(), j.positions());
                let b = j.base();
                PanelVote {
                    verdict: Some(b.verdict),
                    result: b.result,
                    score,
                    winner,
                    consistent,
                    positions,
                    reason: b.reason.clone(),
                    raw_response: Some(b.raw_response.clone()),
                    provider: Some(b.provider.clone()),
                    model: Some(b.model.clone()),
                    usage: b.usage,
                    cost_usd: b.cost_usd,
                    confidence: b.confidence,
                    confidence_source: b.confidence_source,
                    latency_ms: b.latency_ms,
                    cached: b.cached,
                    ..blank("ok")
                }
            }
        }
    }
}
