//! Panels of judges: one item asked of several routes (ideally models of different families),
//! their verdicts combined into the panel's own by a fixed rule.
//!
//! A judge that fails (every provider of its route failed) or gives no verdict (unscored) is
//! absent. With fewer than `quorum` judges present the item is unscored, reason
//! `quorum_not_met`; an even split is decided by `on_tie` (default: unscored, reason
//! `panel_tie`). With `escalate`, the first two judges are asked; the others only when those two
//! disagree or one of them is absent.
//!
//! How each aggregate reads the votes (binary 1/0; pairwise A's share 1, 0 or 0.5; scores):
//! - `majority`: the verdict most judges gave; for scores, the median.
//! - `mean`: binary correct above one half; pairwise A above one half, B below, a tie at one
//!   half; scores, the mean.
//! - `min`: binary correct only when every judge says so; scores, the lowest; pairwise as
//!   `unanimous`.
//! - `unanimous`: the verdict every judge gave; any disagreement goes to `on_tie`.
//!
//! For a split, `on_tie = "incorrect"` is the pessimistic outcome (binary incorrect, scores the
//! lowest given) and `"correct"` the optimistic one (binary correct, scores the highest); for
//! pairwise both make the winner a tie.
//!
//! The panel's `agreement` is the share of present judges whose verdict is the panel's (for a
//! split, the largest faction's share); for scores without a pass mark, 1 minus the judges'
//! mean distance from the panel's score as a fraction of the scale. It is also the panel's
//! `confidence`, with `confidence_source: "panel"`.

use std::future::Future;
use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;

use crate::confidence::ConfidenceSource;
use crate::error::JudgeError;
use crate::items::{BinaryItem, CompareItem, ScoreItem};
use crate::judge::Judge;
use crate::judgment::{CompareJudgment, Judgment, ScoreJudgment};
use crate::settings::{Aggregate, OnTie, PanelSettings};
use crate::single::pass_mark;
use crate::verdict::{JudgeKind, Verdict};
use llm_judge_chat::Usage;
use llm_judge_pool::Via;

/// What kind of vote the judges cast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VoteKind {
    /// 1 correct, 0 incorrect.
    Binary,
    /// Response A's share: 1 A better, 0 B better, 0.5 a tie.
    Pairwise,
    /// A score on the item's scale.
    Score { min: f64, max: f64 },
}

/// What the panel decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Value(f64),
    /// An even split (or a disagreement, for `unanimous`), left unscored.
    Tie,
    QuorumNotMet,
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The panel's outcome and agreement over the votes of the judges present.
pub fn combine(kind: VoteKind, votes: &[f64], s: &PanelSettings) -> (Outcome, Option<f64>) {
    if votes.is_empty() || votes.len() < s.quorum {
        return (Outcome::QuorumNotMet, None);
    }
    match kind {
        VoteKind::Score { min, max } => combine_scores(votes, s, min, max),
        VoteKind::Binary | VoteKind::Pairwise => combine_labels(kind, votes, s),
    }
}

fn combine_labels(kind: VoteKind, votes: &[f64], s: &PanelSettings) -> (Outcome, Option<f64>) {
    // Distinct labels with their counts, in the order first seen.
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for &v in votes {
        match counts.iter_mut().find(|(l, _)| same(*l, v)) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    let top = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let leaders: Vec<f64> = counts
        .iter()
        .filter(|(_, n)| *n == top)
        .map(|(l, _)| *l)
        .collect();
    let unanimous = counts.len() == 1;
    let split = || match (s.on_tie, kind) {
        (OnTie::Unscored, _) => Outcome::Tie,
        (_, VoteKind::Pairwise) => Outcome::Value(0.5),
        (OnTie::Incorrect, _) => Outcome::Value(0.0),
        (OnTie::Correct, _) => Outcome::Value(1.0),
    };
    let mean = votes.iter().sum::<f64>() / votes.len() as f64;
    let outcome = match (s.aggregate, kind) {
        (Aggregate::Majority, _) if leaders.len() == 1 => Outcome::Value(leaders[0]),
        (Aggregate::Majority, _) => split(),
        (Aggregate::Mean, VoteKind::Pairwise) if same(mean, 0.5) => Outcome::Value(0.5),
        (Aggregate::Mean, _) if same(mean, 0.5) => split(),
        (Aggregate::Mean, _) if mean > 0.5 => Outcome::Value(1.0),
        (Aggregate::Mean, _) => Outcome::Value(0.0),
        (Aggregate::Min, VoteKind::Binary) => {
            Outcome::Value(votes.iter().copied().fold(1.0, f64::min))
        }
        (Aggregate::Min | Aggregate::Unanimous, _) if unanimous => Outcome::Value(votes[0]),
        (Aggregate::Min | Aggregate::Unanimous, _) => split(),
    };
    let share = |v: f64| votes.iter().filter(|x| same(**x, v)).count() as f64 / votes.len() as f64;
    let agreement = match outcome {
        Outcome::Value(v) => share(v),
        _ => top as f64 / votes.len() as f64,
    };
    (outcome, Some(agreement))
}

fn combine_scores(votes: &[f64], s: &PanelSettings, min: f64, max: f64) -> (Outcome, Option<f64>) {
    let mut sorted = votes.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let (lowest, highest) = (sorted[0], sorted[n - 1]);
    let outcome = match s.aggregate {
        Aggregate::Majority => Outcome::Value(median),
        Aggregate::Mean => Outcome::Value(votes.iter().sum::<f64>() / n as f64),
        Aggregate::Min => Outcome::Value(lowest),
        Aggregate::Unanimous if same(lowest, highest) => Outcome::Value(lowest),
        Aggregate::Unanimous => match s.on_tie {
            OnTie::Unscored => Outcome::Tie,
            OnTie::Incorrect => Outcome::Value(lowest),
            OnTie::Correct => Outcome::Value(highest),
        },
    };
    let centre = match outcome {
        Outcome::Value(v) => v,
        _ => median,
    };
    let spread = votes.iter().map(|v| (v - centre).abs()).sum::<f64>() / n as f64;
    let agreement = (1.0 - spread / (max - min)).clamp(0.0, 1.0);
    (outcome, Some(agreement))
}

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

/// A judge's answer as a panel sees it.
enum Member<J> {
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
    fn vote(&self) -> Option<f64> {
        match self {
            Member::Answered(j) => j.vote(),
            _ => None,
        }
    }

    fn into_vote(self, judge: &str) -> PanelVote {
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

impl Judge {
    /// Asks the panel's judges: all at once, or with `escalate` the first two and the rest only
    /// when those two do not agree.
    async fn ask_members<J, F, Fut>(&self, panel: &PanelSettings, call: F) -> Vec<Member<J>>
    where
        J: Ballot,
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<J, JudgeError>>,
    {
        let member = |r: Result<J, JudgeError>| match r {
            Ok(j) => Member::Answered(j),
            Err(e) => Member::Failed(e),
        };
        let judges = &panel.judges;
        let first = if panel.escalate { 2 } else { judges.len() };
        let mut out: Vec<Member<J>> = join_all(judges[..first].iter().map(|r| call(r.clone())))
            .await
            .into_iter()
            .map(member)
            .collect();
        if first < judges.len() {
            let settled =
                matches!((out[0].vote(), out[1].vote()), (Some(a), Some(b)) if same(a, b));
            if settled {
                out.extend(judges[first..].iter().map(|_| Member::NotCalled));
            } else {
                let rest = join_all(judges[first..].iter().map(|r| call(r.clone()))).await;
                out.extend(rest.into_iter().map(member));
            }
        }
        out
    }

    /// The panel's judgment from its judges' answers: every field but the verdict's own, which
    /// the caller sets from the outcome.
    fn panel_judgment<J: Ballot>(
        &self,
        name: &str,
        panel: &PanelSettings,
        kind: VoteKind,
        members: Vec<Member<J>>,
        started: Instant,
    ) -> (Outcome, Judgment) {
        let votes: Vec<f64> = members.iter().filter_map(Member::vote).collect();
        let (outcome, agreement) = combine(kind, &votes, panel);
        let mut attempts = Vec::new();
        let mut usage = Usage::default();
        let mut cost = Some(0.0);
        let mut fallback = false;
        let mut versions: Vec<String> = Vec::new();
        let mut cached = true;
        let mut asked = 0;
        for m in &members {
            match m {
                Member::Answered(j) => {
                    let b = j.base();
                    attempts.extend(b.attempts.iter().cloned());
                    usage.add(b.usage);
                    cost = cost.zip(b.cost_usd).map(|(x, y)| x + y);
                    fallback |= b.fallback;
                    cached &= b.cached;
                    asked += 1;
                    if !versions.contains(&b.template_version) {
                        versions.push(b.template_version.clone());
                    }
                }
                Member::Failed(e) => {
                    if let JudgeError::Failed { attempts: a, .. } = e {
                        attempts.extend(a.iter().cloned());
                    }
                    cost = None;
                    cached = false;
                    asked += 1;
                }
                Member::NotCalled => {}
            }
        }
        let votes_text: serde_json::Map<String, serde_json::Value> = panel
            .judges
            .iter()
            .zip(&members)
            .map(|(judge, m)| {
                let label = match m {
                    Member::Answered(j) => j.base().verdict.as_str(),
                    Member::Failed(_) => "error",
                    Member::NotCalled => "not_called",
                };
                (judge.clone(), serde_json::Value::from(label))
            })
            .collect();
        let judges: Vec<PanelVote> = members
            .into_iter()
            .zip(&panel.judges)
            .map(|(m, judge)| m.into_vote(judge))
            .collect();
        let present = votes.len();
        let described = describe(kind, &votes, &judges);
        let (verdict, reason, unscored_reason) = match outcome {
            Outcome::QuorumNotMet => (
                Verdict::Unscored,
                format!(
                    "{present} of {} judges gave a verdict, under the quorum of {}{}",
                    panel.judges.len(),
                    panel.quorum,
                    absent_reasons(&judges)
                ),
                Some("quorum_not_met"),
            ),
            Outcome::Tie => (
                Verdict::Unscored,
                format!("the judges are split ({described}); on_tie is unscored"),
                Some("panel_tie"),
            ),
            Outcome::Value(_) => (
                Verdict::Scored,
                format!(
                    "panel {name} ({}, {present} of {} judges): {described}",
                    panel.aggregate.as_str(),
                    panel.judges.len()
                ),
                None,
            ),
        };
        let elapsed = started.elapsed();
        let judgment = Judgment {
            result: None,
            verdict,
            reason: Some(reason),
            unscored_reason,
            raw_response: serde_json::Value::Object(votes_text).to_string(),
            provider: "panel".into(),
            model: name.to_string(),
            attempts,
            fallback,
            usage,
            cost_usd: cost,
            latency_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            cached: cached && asked > 0,
            template_version: versions.join("+"),
            confidence: agreement.map(crate::stats::round6),
            confidence_source: if agreement.is_some() {
                ConfidenceSource::Panel
            } else {
                ConfidenceSource::None
            },
            p_correct: None,
            parser: None,
            panel: Some(Box::new(PanelReport {
                name: name.to_string(),
                aggregate: panel.aggregate.as_str(),
                quorum: panel.quorum,
                voted: present,
                agreement: agreement.map(crate::stats::round6),
                judges,
            })),
            provider_batch: None,
        };
        (outcome, judgment)
    }

    pub(super) async fn panel_binary(
        &self,
        name: &str,
        panel: &PanelSettings,
        item: &BinaryItem,
        via: &Via,
    ) -> Result<Judgment, JudgeError> {
        let started = Instant::now();
        let members = self
            .ask_members(
                panel,
                |r| async move { self.binary_single(&r, item, via).await },
            )
            .await;
        let (outcome, mut j) = self.panel_judgment(name, panel, VoteKind::Binary, members, started);
        if let Outcome::Value(v) = outcome {
            let correct = v > 0.5;
            j.result = Some(u8::from(correct));
            j.verdict = if correct {
                Verdict::Correct
            } else {
                Verdict::Incorrect
            };
        }
        self.record_verdict(JudgeKind::Binary, name, &j);
        Ok(j)
    }

    pub(super) async fn panel_score(
        &self,
        name: &str,
        panel: &PanelSettings,
        item: &ScoreItem,
        via: &Via,
    ) -> Result<ScoreJudgment, JudgeError> {
        let started = Instant::now();
        let members = self
            .ask_members(
                panel,
                |r| async move { self.score_single(&r, item, via).await },
            )
            .await;
        let kind = VoteKind::Score {
            min: item.min,
            max: item.max,
        };
        let (outcome, mut judgment) = self.panel_judgment(name, panel, kind, members, started);
        let mut score = None;
        if let Outcome::Value(v) = outcome {
            score = Some(crate::stats::round6(v));
            (judgment.result, judgment.verdict) = pass_mark(v, item.pass_score);
            if item.pass_score.is_some()
                && let Some(report) = judgment.panel.as_mut()
            {
                // With a pass mark, agreement is the share of judges on the panel's side of it.
                let pass = |s: f64| item.pass_score.is_some_and(|p| s >= p);
                let voted: Vec<f64> = report.judges.iter().filter_map(|v| v.score).collect();
                let agree = voted.iter().filter(|s| pass(**s) == pass(v)).count();
                let share = crate::stats::round6(agree as f64 / voted.len().max(1) as f64);
                report.agreement = Some(share);
                judgment.confidence = Some(share);
            }
        }
        self.record_verdict(JudgeKind::Score, name, &judgment);
        Ok(ScoreJudgment {
            judgment,
            score,
            weighted_score: None,
            prediction_chars: item.prediction.chars().count(),
        })
    }

    pub(super) async fn panel_compare(
        &self,
        name: &str,
        panel: &PanelSettings,
        item: &CompareItem,
        via: &Via,
    ) -> Result<CompareJudgment, JudgeError> {
        let started = Instant::now();
        let members = self
            .ask_members(panel, |r| async move {
                self.compare_single(&r, item, via).await
            })
            .await;
        let (outcome, judgment) =
            self.panel_judgment(name, panel, VoteKind::Pairwise, members, started);
        let (winner, scores) = match outcome {
            Outcome::Value(v) if v > 0.5 + 1e-9 => (Some("a"), [Some(1.0), Some(0.0)]),
            Outcome::Value(v) if v < 0.5 - 1e-9 => (Some("b"), [Some(0.0), Some(1.0)]),
            Outcome::Value(_) => (Some("tie"), [Some(0.5), Some(0.5)]),
            _ => (None, [None, None]),
        };
        self.record_verdict(JudgeKind::Compare, name, &judgment);
        Ok(CompareJudgment {
            judgment,
            winner,
            scores,
            consistent: None,
            positions: Vec::new(),
        })
    }
}

/// The votes in words: `correct 2, incorrect 1`, `a 2, tie 1`, or the scores given.
fn describe(kind: VoteKind, votes: &[f64], judges: &[PanelVote]) -> String {
    let count = |v: f64| votes.iter().filter(|x| same(**x, v)).count();
    let parts: Vec<String> = match kind {
        VoteKind::Binary => vec![
            format!("correct {}", count(1.0)),
            format!("incorrect {}", count(0.0)),
        ],
        VoteKind::Pairwise => vec![
            format!("a {}", count(1.0)),
            format!("b {}", count(0.0)),
            format!("tie {}", count(0.5)),
        ],
        VoteKind::Score { .. } => judges
            .iter()
            .filter_map(|j| j.score.map(|s| format!("{} {s}", j.judge)))
            .collect(),
    };
    parts.join(", ")
}

/// `; judge x: error (...)` for each judge that gave no verdict.
fn absent_reasons(judges: &[PanelVote]) -> String {
    let mut out = String::new();
    for j in judges {
        let why = match (&j.error, j.status, &j.verdict) {
            (Some(e), _, _) => format!("{}: {}", e.code, llm_judge_chat::clip(&e.message, 200)),
            (None, "ok", Some(Verdict::Unscored)) => format!(
                "unscored: {}",
                llm_judge_chat::clip(j.reason.as_deref().unwrap_or(""), 200)
            ),
            _ => continue,
        };
        out.push_str(&format!("; {}: {why}", j.judge));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(aggregate: Aggregate, quorum: usize, on_tie: OnTie) -> PanelSettings {
        PanelSettings {
            judges: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            aggregate,
            quorum,
            on_tie,
            escalate: false,
        }
    }

    #[test]
    fn binary_aggregates() {
        use Aggregate::*;
        let p = |a| panel(a, 1, OnTie::Unscored);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Majority)).0,
            Outcome::Value(1.0)
        );
        let (o, agree) = combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Majority));
        assert_eq!(o, Outcome::Value(1.0));
        assert!((agree.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0], &p(Majority)),
            (Outcome::Tie, Some(0.5))
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Min)).0,
            Outcome::Value(0.0)
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0], &p(Min)).0,
            Outcome::Value(1.0)
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p(Unanimous)).0,
            Outcome::Tie
        );
        assert_eq!(
            combine(VoteKind::Binary, &[0.0, 0.0], &p(Unanimous)),
            (Outcome::Value(0.0), Some(1.0))
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0, 0.0], &p(Mean)).0,
            Outcome::Value(0.0)
        );
        // on_tie decides splits.
        let pessimist = panel(Majority, 1, OnTie::Incorrect);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0], &pessimist).0,
            Outcome::Value(0.0)
        );
        let optimist = panel(Unanimous, 1, OnTie::Correct);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 0.0, 0.0], &optimist).0,
            Outcome::Value(1.0)
        );
    }

    #[test]
    fn quorum_counts_present_judges_only() {
        let p = panel(Aggregate::Majority, 3, OnTie::Unscored);
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0], &p),
            (Outcome::QuorumNotMet, None)
        );
        assert_eq!(
            combine(
                VoteKind::Binary,
                &[],
                &panel(Aggregate::Majority, 1, OnTie::Unscored)
            )
            .0,
            Outcome::QuorumNotMet
        );
        assert_eq!(
            combine(VoteKind::Binary, &[1.0, 1.0, 0.0], &p).0,
            Outcome::Value(1.0)
        );
    }

    #[test]
    fn pairwise_and_score_aggregates() {
        use Aggregate::*;
        let p = |a| panel(a, 1, OnTie::Unscored);
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.5, 1.0], &p(Majority)).0,
            Outcome::Value(1.0)
        );
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.0, 0.5], &p(Majority)).0,
            Outcome::Tie
        );
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.0], &p(Mean)).0,
            Outcome::Value(0.5)
        );
        let tie_winner = panel(Majority, 1, OnTie::Incorrect);
        assert_eq!(
            combine(VoteKind::Pairwise, &[1.0, 0.0], &tie_winner).0,
            Outcome::Value(0.5)
        );
        let scale = VoteKind::Score {
            min: 1.0,
            max: 10.0,
        };
        assert_eq!(
            combine(scale, &[2.0, 9.0, 7.0], &p(Majority)).0,
            Outcome::Value(7.0)
        );
        assert_eq!(
            combine(scale, &[2.0, 9.0, 7.0, 8.0], &p(Majority)).0,
            Outcome::Value(7.5)
        );
        assert_eq!(combine(scale, &[3.0, 6.0], &p(Mean)).0, Outcome::Value(4.5));
        assert_eq!(combine(scale, &[3.0, 6.0], &p(Min)).0, Outcome::Value(3.0));
        assert_eq!(combine(scale, &[3.0, 6.0], &p(Unanimous)).0, Outcome::Tie);
        assert_eq!(
            combine(scale, &[3.0, 6.0], &panel(Unanimous, 1, OnTie::Correct)).0,
            Outcome::Value(6.0)
        );
        // All equal: agreement 1; 1 and 10 around a median of 5.5: 1 - 4.5/9.
        assert_eq!(combine(scale, &[5.0, 5.0], &p(Mean)).1, Some(1.0));
        let (_, a) = combine(scale, &[1.0, 10.0], &p(Majority));
        assert!((a.unwrap() - 0.5).abs() < 1e-9);
    }
}
