//! One route's pairwise judgment: asked once, or with `swap` in both orders and the two
//! answers reconciled.

use std::time::Instant;

use super::ask::{Asked, Question};
use super::reading::{Reading, parser_of, unscored_first};
use crate::confidence::{self, ConfidenceSource};
use crate::error::JudgeError;
use crate::items::CompareItem;
use crate::judge::Judge;
use crate::judgment::CompareJudgment;
use crate::parse::{self, Unscored, Winner};
use crate::prompts::Rendered;
use crate::render::render_compare;
use crate::verdict::{JudgeKind, Verdict};
use llm_judge_chat::GradingTask;
use llm_judge_pool::Via;

impl Judge {
    /// One route's pairwise judgment; with `swap`, in both orders.
    pub(crate) async fn compare_single(
        &self,
        route: &str,
        item: &CompareItem,
        via: &Via,
    ) -> Result<CompareJudgment, JudgeError> {
        let started = Instant::now();
        // With both orders, their agreement is the confidence; otherwise, when the route asks
        // for it, the winner token's probabilities.
        let logprobs = !item.swap && self.wants_logprobs(route);
        let first = self.compare_once(route, item, false, logprobs, via);
        let (a, b) = if item.swap {
            let (a, b) = futures::join!(first, self.compare_once(route, item, true, false, via));
            (a?, Some(b?))
        } else {
            (first.await?, None)
        };
        let (asked1, parsed1, rendered) = a;
        let mut positions = vec![position(&parsed1)];
        let mut winner = parsed1.clone();
        let mut consistent = None;
        let mut reading = Reading::new(&rendered.version);
        if parsed1.is_ok() {
            reading.parser = Some(parser_of(&asked1.text, &rendered));
        }
        if logprobs && parsed1.is_ok() {
            match confidence::pairwise(asked1.logprobs.as_deref()) {
                Ok((i, shares)) => {
                    let w = match parsed1 {
                        Ok(Winner::A) => 0,
                        Ok(Winner::B) => 1,
                        _ => 2,
                    };
                    reading.confidence = Some(shares[w]);
                    reading.source = ConfidenceSource::Logprobs;
                    reading.decisive_token = Some(i);
                }
                Err(why) => self.confidence_fallback(route, why),
            }
        }
        let mut asked = asked1;
        if let Some((asked2, parsed2, _)) = b {
            positions.push(position(&parsed2));
            (winner, consistent) = reconcile(&parsed1, parsed2);
            if consistent == Some(false) {
                self.record_position_flip(route);
            }
            if let Some(c) = consistent {
                reading.confidence = Some(if c { 1.0 } else { 0.5 });
                reading.source = ConfidenceSource::Swap;
            }
            asked = merge(asked, asked2);
        }
        let (w, scores) = match winner {
            Ok(w) => {
                reading.verdict = Verdict::Scored;
                winner_fields(w)
            }
            Err(u) => {
                reading = reading.unscored(u);
                (None, [None, None])
            }
        };
        let judgment = self.finish(asked, started, reading);
        self.record_verdict(JudgeKind::Compare, route, &judgment);
        Ok(CompareJudgment {
            judgment,
            winner: w,
            scores,
            consistent,
            positions,
        })
    }

    async fn compare_once(
        &self,
        route: &str,
        item: &CompareItem,
        swapped: bool,
        logprobs: bool,
        via: &Via,
    ) -> Result<(Asked, Result<Winner, Unscored>, Rendered), JudgeError> {
        let (a, b) = if swapped {
            (&item.response_b, &item.response_a)
        } else {
            (&item.response_a, &item.response_b)
        };
        let rendered = render_compare(item, a, b, self.shape(route));
        let grading = GradingTask::Compare {
            question: item.question.clone(),
            reference: item.answer.clone(),
            response_a: a.clone(),
            response_b: b.clone(),
        };
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
        let parsed = unscored_first(&asked).map_or_else(|| parse::parse_pairwise(&asked.text), Err);
        Ok((asked, parsed, rendered))
    }
}

/// A position's name for a pairwise answer in presented order.
fn position(w: &Result<Winner, Unscored>) -> Option<&'static str> {
    match w {
        Ok(Winner::A) => Some("first"),
        Ok(Winner::B) => Some("second"),
        Ok(Winner::Tie) => Some("tie"),
        Err(_) => None,
    }
}

/// The two orders' answers as one: the same winner in both stands, a disagreement is a tie
/// (`consistent` says which), and an unread answer leaves the comparison unscored.
fn reconcile(
    first: &Result<Winner, Unscored>,
    swapped: Result<Winner, Unscored>,
) -> (Result<Winner, Unscored>, Option<bool>) {
    // The swapped run saw B as A: map its winner back.
    let back = swapped.map(|w| match w {
        Winner::A => Winner::B,
        Winner::B => Winner::A,
        Winner::Tie => Winner::Tie,
    });
    match (first, &back) {
        (Ok(x), Ok(y)) if x == y => (Ok(*x), Some(true)),
        (Ok(_), Ok(_)) => (Ok(Winner::Tie), Some(false)),
        (Err(e), _) | (_, Err(e)) => (Err(e.clone()), None),
    }
}

/// A pairwise winner's `winner` and `scores` fields.
fn winner_fields(w: Winner) -> (Option<&'static str>, [Option<f64>; 2]) {
    match w {
        Winner::A => (Some("a"), [Some(1.0), Some(0.0)]),
        Winner::B => (Some("b"), [Some(0.0), Some(1.0)]),
        Winner::Tie => (Some("tie"), [Some(0.5), Some(0.5)]),
    }
}

/// Combines the two runs of a swapped comparison.
fn merge(mut a: Asked, b: Asked) -> Asked {
    a.text = format!("{}\n\n--- swapped order ---\n\n{}", a.text, b.text);
    a.attempts.extend(b.attempts);
    a.fallback |= b.fallback;
    a.usage.add(b.usage);
    a.cost_usd = match (a.cost_usd, b.cost_usd) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
    a.cached &= b.cached;
    a.provider_time += b.provider_time;
    a.cache_key = None;
    a.provider_batch = a.provider_batch.or(b.provider_batch);
    a
}
