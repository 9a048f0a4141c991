//! A panel's judgment of each kind: its judges asked, and the panel's outcome read as a binary
//! verdict, a score (against the pass mark) or a pairwise winner.

use std::time::Instant;

use super::combine::{Outcome, VoteKind};
use super::judgment::panel_judgment;
use super::members::ask_members;
use crate::error::JudgeError;
use crate::items::{BinaryItem, CompareItem, ScoreItem};
use crate::judge::Judge;
use crate::judgment::{CompareJudgment, Judgment, ScoreJudgment};
use crate::settings::PanelSettings;
use crate::single::pass_mark;
use crate::verdict::{JudgeKind, Verdict};
use llm_judge_pool::Via;

impl Judge {
    pub(crate) async fn panel_binary(
        &self,
        name: &str,
        panel: &PanelSettings,
        item: &BinaryItem,
        via: &Via,
    ) -> Result<Judgment, JudgeError> {
        let started = Instant::now();
        let members = ask_members(
            panel,
            |r| async move { self.binary_single(&r, item, via).await },
        )
        .await;
        let (outcome, mut j) = panel_judgment(name, panel, VoteKind::Binary, members, started);
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

    pub(crate) async fn panel_score(
        &self,
        name: &str,
        panel: &PanelSettings,
        item: &ScoreItem,
        via: &Via,
    ) -> Result<ScoreJudgment, JudgeError> {
        let started = Instant::now();
        let members = ask_members(
            panel,
            |r| async move { self.score_single(&r, item, via).await },
        )
        .await;
        let kind = VoteKind::Score {
            min: item.min,
            max: item.max,
        };
        let (outcome, mut judgment) = panel_judgment(name, panel, kind, members, started);
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

    pub(crate) async fn panel_compare(
        &self,
        name: &str,
        panel: &PanelSettings,
        item: &CompareItem,
        via: &Via,
    ) -> Result<CompareJudgment, JudgeError> {
        let started = Instant::now();
        let members = ask_members(panel, |r| async move {
            self.compare_single(&r, item, via).await
        })
        .await;
        let (outcome, judgment) = panel_judgment(name, panel, VoteKind::Pairwise, members, started);
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
