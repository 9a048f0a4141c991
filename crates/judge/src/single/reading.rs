//! Reading an answer into a judgment: what the parse gave, the checks before any parsing, and
//! the finished judgment (with a readable answer kept in the verdict cache).

use std::time::Instant;

use super::ask::Asked;
use crate::cache::CachedAnswer;
use crate::confidence::ConfidenceSource;
use crate::judge::Judge;
use crate::judgment::Judgment;
use crate::parse::{self, Unscored, UnscoredReason};
use crate::prompts::Rendered;
use crate::verdict::Verdict;

/// What a judgment's parse gave, for [`Judge::finish`].
pub(super) struct Reading {
    pub(super) result: Option<u8>,
    pub(super) verdict: Verdict,
    pub(super) reason: Option<String>,
    pub(super) unscored_reason: Option<&'static str>,
    pub(super) version: String,
    pub(super) parser: Option<&'static str>,
    pub(super) confidence: Option<f64>,
    pub(super) source: ConfidenceSource,
    /// The index of the token the confidence was read at: the only one kept in the cache.
    pub(super) decisive_token: Option<usize>,
}

impl Reading {
    pub(super) fn new(version: &str) -> Reading {
        Reading {
            result: None,
            verdict: Verdict::Unscored,
            reason: None,
            unscored_reason: None,
            version: version.to_string(),
            parser: None,
            confidence: None,
            source: ConfidenceSource::None,
            decisive_token: None,
        }
    }

    pub(super) fn unscored(mut self, u: Unscored) -> Reading {
        self.verdict = Verdict::Unscored;
        self.result = None;
        self.reason = Some(u.detail);
        self.unscored_reason = Some(u.reason.as_str());
        self
    }
}

impl Judge {
    /// The judgment from an answer and its reading; a readable answer goes into the verdict
    /// cache.
    pub(super) fn finish(&self, asked: Asked, started: Instant, r: Reading) -> Judgment {
        // Only readable answers are cached: an unscored one may read differently next time.
        // Of the log probabilities, only the token the confidence was read at is kept.
        if let Some(key) = asked.cache_key
            && r.verdict != Verdict::Unscored
        {
            let decisive = r
                .decisive_token
                .and_then(|i| asked.logprobs.as_ref()?.get(i).cloned());
            self.cache.put(
                key,
                CachedAnswer {
                    text: asked.text.clone(),
                    provider: asked.provider.clone(),
                    model: asked.model.clone(),
                    logprobs: decisive.map(|t| vec![t]),
                },
            );
        }
        // A structured answer may explain itself (the rules judge always does).
        let reason = r.reason.or_else(|| {
            let v: serde_json::Value = serde_json::from_str(asked.text.trim()).ok()?;
            v.get("reason")?.as_str().map(str::to_string)
        });
        let total = started.elapsed();
        self.record_overhead(total.saturating_sub(asked.provider_time));
        Judgment {
            result: r.result,
            verdict: r.verdict,
            reason,
            unscored_reason: r.unscored_reason,
            raw_response: asked.text,
            provider: asked.provider,
            model: asked.model,
            attempts: asked.attempts,
            fallback: asked.fallback,
            usage: asked.usage,
            cost_usd: asked.cost_usd,
            latency_ms: (total.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            cached: asked.cached,
            decoding: asked.decoding,
            template_version: r.version,
            confidence: r.confidence.map(crate::stats::round6),
            confidence_source: r.source,
            p_correct: None,
            parser: r.parser,
            panel: None,
            provider_batch: asked.provider_batch,
        }
    }
}

/// Which path read a verdict: `structured` when a JSON answer was asked for and given, `json`
/// for a JSON object in a free answer, `text` otherwise.
pub(super) fn parser_of(text: &str, rendered: &Rendered) -> &'static str {
    match (parse::has_json_object(text), rendered.schema.is_some()) {
        (true, true) => "structured",
        (true, false) => "json",
        (false, _) => "text",
    }
}

/// A refusal or an empty answer is unscored before any parsing.
pub(super) fn unscored_first(a: &Asked) -> Option<Unscored> {
    if a.text.trim().is_empty() {
        if let Some(r) = &a.refusal {
            return Some(Unscored {
                reason: UnscoredReason::Refusal,
                detail: format!("the judge refused: {}", llm_judge_chat::clip(r, 300)),
            });
        }
        let detail = match a.finish_reason.as_deref() {
            Some("length") | Some("max_tokens") | Some("MAX_TOKENS") => {
                "the judge's answer was empty: it ran out of tokens (raise options.max_tokens)"
                    .to_string()
            }
            _ => "the judge's answer was empty".to_string(),
        };
        return Some(Unscored {
            reason: UnscoredReason::EmptyResponse,
            detail,
        });
    }
    None
}
