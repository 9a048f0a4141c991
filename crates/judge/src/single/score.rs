//! One route's scale judgment, and how a score meets a pass mark.

use std::time::Instant;

use super::ask::Question;
use super::reading::{Reading, parser_of, unscored_first};
use crate::confidence::{self, ConfidenceSource};
use crate::error::JudgeError;
use crate::items::ScoreItem;
use crate::judge::Judge;
use crate::judgment::ScoreJudgment;
use crate::parse;
use crate::render::render_score;
use crate::verdict::{JudgeKind, Verdict};
use llm_judge_chat::GradingTask;
use llm_judge_pool::Via;

impl Judge {
    /// One route's scale judgment.
    pub(crate) async fn score_single(
        &self,
        route: &str,
        item: &ScoreItem,
        via: &Via,
    ) -> Result<ScoreJudgment, JudgeError> {
        let started = Instant::now();
        let rendered = render_score(item, self.shape(route));
        let grading = GradingTask::Score {
            question: item.question.clone(),
            reference: item.answer.clone(),
            prediction: item.prediction.clone(),
            min: item.min,
            max: item.max,
        };
        let logprobs = self.wants_logprobs(route);
        let asked = self
            .ask(
                route,
                Question {
                    rendered: &rendered,
                    images: &item.images,
                    grading,
                    options: &item.options,
                    logprobs,
                },
                via,
            )
            .await?;
        let mut reading = Reading::new(&rendered.version);
        let mut score = None;
        let mut weighted_score = None;
        match unscored_first(&asked)
            .map_or_else(|| parse::parse_score(&asked.text, item.min, item.max), Err)
        {
            Ok(s) => {
                score = Some(s);
                (reading.result, reading.verdict) = pass_mark(s, item.pass_score);
                reading.parser = Some(parser_of(&asked.text, &rendered));
                if logprobs {
                    match confidence::score(asked.logprobs.as_deref(), item.min, item.max) {
                        Ok((i, weighted, share)) => {
                            weighted_score = Some(crate::stats::round6(weighted));
                            reading.confidence = Some(share);
                            reading.source = ConfidenceSource::Logprobs;
                            reading.decisive_token = Some(i);
                        }
                        Err(why) => self.confidence_fallback(route, why),
                    }
                }
            }
            Err(u) => reading = reading.unscored(u),
        }
        let judgment = self.finish(asked, started, reading);
        self.record_verdict(JudgeKind::Score, route, &judgment);
        Ok(ScoreJudgment {
            judgment,
            score,
            weighted_score,
            prediction_chars: item.prediction.chars().count(),
        })
    }
}

/// A score's result and verdict: correct or incorrect against the pass mark, else `scored`.
pub(crate) fn pass_mark(score: f64, pass: Option<f64>) -> (Option<u8>, Verdict) {
    match pass {
        Some(p) if score >= p => (Some(1), Verdict::Correct),
        Some(_) => (Some(0), Verdict::Incorrect),
        None => (None, Verdict::Scored),
    }
}
