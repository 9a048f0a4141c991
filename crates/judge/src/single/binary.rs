//! One route's binary judgment, with the rules pre-check in front of it.

use std::time::Instant;

use super::ask::Question;
use super::reading::{Reading, parser_of, unscored_first};
use crate::confidence::{self, ConfidenceSource};
use crate::error::JudgeError;
use crate::items::BinaryItem;
use crate::judge::Judge;
use crate::judgment::Judgment;
use crate::parse;
use crate::render::render_binary;
use crate::rules::{self, RulesVerdict};
use crate::verdict::{JudgeKind, Verdict};
use llm_judge_chat::{GradingTask, Usage};
use llm_judge_pool::Via;

impl Judge {
    /// One route's binary judgment.
    pub(crate) async fn binary_single(
        &self,
        route: &str,
        item: &BinaryItem,
        via: &Via,
    ) -> Result<Judgment, JudgeError> {
        let started = Instant::now();
        if self.cfg.rules_precheck
            && !self.route_is_rules(route)
            && let Some(j) = self.precheck(item, started)
        {
            self.record_verdict(JudgeKind::Binary, route, &j);
            return Ok(j);
        }
        let rendered = render_binary(item, self.shape(route));
        let grading = GradingTask::Binary {
            question: item.question.clone(),
            reference: item.answer.clone(),
            prediction: item.prediction.clone(),
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
        match unscored_first(&asked).map_or_else(|| parse::parse_binary(&asked.text), Err) {
            Ok(correct) => {
                reading.result = Some(u8::from(correct));
                reading.verdict = if correct {
                    Verdict::Correct
                } else {
                    Verdict::Incorrect
                };
                reading.parser = Some(parser_of(&asked.text, &rendered));
                if logprobs {
                    match confidence::binary(asked.logprobs.as_deref()) {
                        Ok((i, p)) => {
                            reading.confidence = Some(if correct { p } else { 1.0 - p });
                            reading.source = ConfidenceSource::Logprobs;
                            reading.decisive_token = Some(i);
                        }
                        Err(why) => self.confidence_fallback(route, why),
                    }
                }
            }
            Err(u) => reading = reading.unscored(u),
        }
        let p_correct = reading.confidence.map(|c| {
            if reading.result == Some(1) {
                c
            } else {
                1.0 - c
            }
        });
        let mut j = self.finish(asked, started, reading);
        j.p_correct = p_correct.map(crate::stats::round6);
        self.record_verdict(JudgeKind::Binary, route, &j);
        Ok(j)
    }

    /// The rules pre-check: when the deterministic judge is sure, no model is called.
    fn precheck(&self, item: &BinaryItem, started: Instant) -> Option<Judgment> {
        if item.prompt.is_some() {
            return None;
        }
        let (result, verdict, reason) =
            match rules::grade_binary(&item.question, &item.answer, &item.prediction) {
                RulesVerdict::Correct(r) => (1, Verdict::Correct, r),
                // Two short answers with no word in common may still be aliases ("Au" /
                // "gold"): in front of a model, that is for the model to decide.
                RulesVerdict::Incorrect(r) if r.starts_with("different short answers") => {
                    return None;
                }
                RulesVerdict::Incorrect(r) => (0, Verdict::Incorrect, r),
                RulesVerdict::Unsure(_) => return None,
            };
        let raw = serde_json::json!({"verdict": verdict.as_str(), "reason": reason}).to_string();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.record_overhead(started.elapsed());
        Some(Judgment {
            result: Some(result),
            verdict,
            reason: Some(reason),
            unscored_reason: None,
            raw_response: raw,
            provider: "rules".into(),
            model: "rules".into(),
            attempts: Vec::new(),
            fallback: false,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            latency_ms,
            cached: false,
            template_version: "rules-precheck-v1".into(),
            confidence: None,
            confidence_source: ConfidenceSource::None,
            p_correct: None,
            parser: Some("json"),
            panel: None,
            provider_batch: None,
            decoding: None,
        })
    }
}
