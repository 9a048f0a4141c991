//! A panel's judgment from its judges' answers: the outcome, what the calls cost together, the
//! votes in words, and the panel's report.

use std::time::Instant;

use super::ballot::{Ballot, Member};
use super::combine::{Outcome, VoteKind, combine, same};
use crate::confidence::ConfidenceSource;
use crate::error::JudgeError;
use crate::judgment::{Judgment, PanelReport, PanelVote};
use crate::settings::PanelSettings;
use crate::verdict::Verdict;
use llm_judge_chat::Usage;
use llm_judge_pool::Attempt;

/// The panel's judgment from its judges' answers: every field but the verdict's own, which the
/// caller sets from the outcome.
pub(super) fn panel_judgment<J: Ballot>(
    name: &str,
    panel: &PanelSettings,
    kind: VoteKind,
    members: Vec<Member<J>>,
    started: Instant,
) -> (Outcome, Judgment) {
    let votes: Vec<f64> = members.iter().filter_map(Member::vote).collect();
    let (outcome, agreement) = combine(kind, &votes, panel);
    let calls = Calls::of(&members);
    let votes_text = votes_text(panel, &members);
    let judges: Vec<PanelVote> = members
        .into_iter()
        .zip(&panel.judges)
        .map(|(m, judge)| m.into_vote(judge))
        .collect();
    let present = votes.len();
    let (verdict, reason, unscored_reason) = verdict_and_reason(
        name,
        panel,
        outcome,
        present,
        &describe(kind, &votes, &judges),
        &judges,
    );
    let elapsed = started.elapsed();
    let judgment = Judgment {
        result: None,
        verdict,
        reason: Some(reason),
        unscored_reason,
        raw_response: votes_text,
        provider: "panel".into(),
        model: name.to_string(),
        attempts: calls.attempts,
        fallback: calls.fallback,
        usage: calls.usage,
        cost_usd: calls.cost,
        latency_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        cached: calls.cached && calls.asked > 0,
        template_version: calls.versions.join("+"),
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
        decoding: None,
    };
    (outcome, judgment)
}

/// What the judges' calls add up to.
struct Calls {
    attempts: Vec<Attempt>,
    usage: Usage,
    /// Unknown when any judge's cost is unknown or a judge failed.
    cost: Option<f64>,
    fallback: bool,
    /// The judges' template versions, each once, in order.
    versions: Vec<String>,
    /// True while every judge asked answered from the verdict cache.
    cached: bool,
    /// Judges asked (answered or failed).
    asked: usize,
}

impl Calls {
    fn of<J: Ballot>(members: &[Member<J>]) -> Calls {
        let mut c = Calls {
            attempts: Vec::new(),
            usage: Usage::default(),
            cost: Some(0.0),
            fallback: false,
            versions: Vec::new(),
            cached: true,
            asked: 0,
        };
        for m in members {
            match m {
                Member::Answered(j) => {
                    let b = j.base();
                    c.attempts.extend(b.attempts.iter().cloned());
                    c.usage.add(b.usage);
                    c.cost = c.cost.zip(b.cost_usd).map(|(x, y)| x + y);
                    c.fallback |= b.fallback;
                    c.cached &= b.cached;
                    c.asked += 1;
                    if !c.versions.contains(&b.template_version) {
                        c.versions.push(b.template_version.clone());
                    }
                }
                Member::Failed(e) => {
                    if let JudgeError::Failed { attempts: a, .. } = e {
                        c.attempts.extend(a.iter().cloned());
                    }
                    c.cost = None;
                    c.cached = false;
                    c.asked += 1;
                }
                Member::NotCalled => {}
            }
        }
        c
    }
}

/// The panel's raw response: each judge's verdict (or `error`, `not_called`) by name, as JSON.
fn votes_text<J: Ballot>(panel: &PanelSettings, members: &[Member<J>]) -> String {
    let votes: serde_json::Map<String, serde_json::Value> = panel
        .judges
        .iter()
        .zip(members)
        .map(|(judge, m)| {
            let label = match m {
                Member::Answered(j) => j.base().verdict.as_str(),
                Member::Failed(_) => "error",
                Member::NotCalled => "not_called",
            };
            (judge.clone(), serde_json::Value::from(label))
        })
        .collect();
    serde_json::Value::Object(votes).to_string()
}

/// The panel's verdict before its kind reads the outcome (`scored` or `unscored`), the reason
/// in words, and the unscored reason's label.
fn verdict_and_reason(
    name: &str,
    panel: &PanelSettings,
    outcome: Outcome,
    present: usize,
    described: &str,
    judges: &[PanelVote],
) -> (Verdict, String, Option<&'static str>) {
    match outcome {
        Outcome::QuorumNotMet => (
            Verdict::Unscored,
            format!(
                "{present} of {} judges gave a verdict, under the quorum of {}{}",
                panel.judges.len(),
                panel.quorum,
                absent_reasons(judges)
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
