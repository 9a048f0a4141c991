//! Asking a route: one call with a rendered prompt, through the verdict cache, and what it
//! gave back.

use std::time::Duration;

use crate::cache::{CachedAnswer, Key, VerdictCache};
use crate::error::JudgeError;
use crate::items::Options;
use crate::judge::Judge;
use crate::judgment::Decoding;
use crate::parse;
use crate::prompts::Rendered;
use llm_judge_chat::{
    ChatRequest, GradingTask, ImageRef, Part, ResponseFormat, TokenLogprob, Usage,
};
use llm_judge_pool::{Attempt, Delivered, Via};

/// Alternatives asked for at each answer token when a route wants log probabilities.
const TOP_LOGPROBS: u8 = 5;

/// What one call along a route gave back.
pub(super) struct Asked {
    pub(super) text: String,
    pub(super) refusal: Option<String>,
    pub(super) finish_reason: Option<String>,
    pub(super) provider: String,
    pub(super) model: String,
    pub(super) attempts: Vec<Attempt>,
    pub(super) fallback: bool,
    pub(super) usage: Usage,
    pub(super) cost_usd: Option<f64>,
    pub(super) cached: bool,
    pub(super) provider_time: Duration,
    pub(super) cache_key: Option<Key>,
    /// The answer's tokens with their alternatives, when asked for and returned.
    pub(super) logprobs: Option<Vec<TokenLogprob>>,
    /// The provider batch that answered.
    pub(super) provider_batch: Option<String>,
    /// What the answering provider was sent of the decoding (none for a cached answer).
    pub(super) decoding: Option<Decoding>,
}

/// What one call asks a route: the rendered prompt, the item's images and options, and the raw
/// fields a rules step reads.
pub(super) struct Question<'a> {
    pub(super) rendered: &'a Rendered,
    pub(super) images: &'a [String],
    pub(super) grading: GradingTask,
    pub(super) options: &'a Options,
    /// Ask for the answer tokens' log probabilities.
    pub(super) logprobs: bool,
}

impl Asked {
    /// An answer the verdict cache kept: free, and from no provider call.
    fn from_cache(hit: CachedAnswer) -> Asked {
        Asked {
            text: hit.text,
            refusal: None,
            finish_reason: None,
            provider: hit.provider,
            model: hit.model,
            attempts: Vec::new(),
            fallback: false,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            cached: true,
            provider_time: Duration::ZERO,
            cache_key: None,
            logprobs: hit.logprobs,
            provider_batch: None,
            decoding: None,
        }
    }

    /// An answer a provider gave, to be kept under `cache_key` if it reads as a verdict.
    fn delivered(d: Delivered, cache_key: Option<Key>, decoding: Option<Decoding>) -> Asked {
        Asked {
            text: d.completion.text,
            refusal: d.completion.refusal,
            finish_reason: d.completion.finish_reason,
            provider: d.provider,
            model: d.model,
            attempts: d.attempts,
            fallback: d.fallback,
            usage: d.completion.usage,
            cost_usd: d.cost_usd,
            cached: false,
            provider_time: d.provider_time,
            cache_key,
            logprobs: d.completion.logprobs,
            provider_batch: d.provider_batch,
            decoding,
        }
    }
}

impl Judge {
    /// Sends a rendered prompt along the route, through the verdict cache; with `logprobs`,
    /// asks for the answer tokens' log probabilities.
    pub(super) async fn ask(
        &self,
        route: &str,
        q: Question<'_>,
        via: &Via,
    ) -> Result<Asked, JudgeError> {
        let temperature = q.options.temperature.unwrap_or(self.cfg.temperature);
        let max_tokens = q.options.max_tokens.unwrap_or(self.cfg.max_tokens);
        let cacheable =
            q.options.cache.unwrap_or(true) && temperature == 0.0 && self.cache.enabled();
        let seed = self.seed(route);
        let cache_key = cacheable.then(|| cache_key(route, &q, max_tokens, seed));
        let hit = match &cache_key {
            Some(k) => self.cache.get(k).await,
            None => None,
        };
        if let Some(hit) = hit {
            return Ok(Asked::from_cache(hit));
        }
        let mut req = self.request(route, q, temperature, max_tokens);
        req.seed = Some(seed);
        let d = self
            .pool
            .send(route, req, via)
            .await
            .map_err(|f| JudgeError::from_route(route, f))?;
        let decoding = self
            .pool
            .sends(&d.provider, &d.model)
            .map(|sends| Decoding {
                temperature: sends.temperature.then_some(temperature),
                max_tokens,
                seed: sends.seed.then_some(seed),
                note: (!sends.temperature)
                    .then_some("a reasoning model: it takes no temperature, so its answers vary"),
            });
        Ok(Asked::delivered(d, cache_key, decoding))
    }

    /// The chat request for a question: the prompt with the item's images, the decoding
    /// parameters, and what the route reads besides the prompt.
    fn request(
        &self,
        route: &str,
        q: Question<'_>,
        temperature: f32,
        max_tokens: u32,
    ) -> ChatRequest {
        let Question {
            rendered,
            images,
            grading,
            options: _,
            logprobs,
        } = q;
        let mut user = Vec::with_capacity(1 + images.len());
        user.push(Part::Text(rendered.user.clone()));
        user.extend(
            images
                .iter()
                .map(|url| Part::Image(ImageRef { url: url.clone() })),
        );
        ChatRequest {
            temperature: Some(temperature),
            max_tokens: Some(max_tokens),
            // Built-in templates put their fixed instructions (and a score rubric, shared by a
            // batch) in the system prompt and the item in the user message: the system prompt
            // is the prefix a provider's prompt cache can reuse. Client templates have none.
            cache_system: rendered.system.is_some(),
            // Only a rules step reads the raw fields; other routes do not carry them along.
            grading: self.pool.route_uses_rules(route).then_some(grading),
            response_format: rendered
                .schema
                .map(|(name, schema)| ResponseFormat::JsonSchema {
                    name: name.to_string(),
                    schema: schema.clone(),
                    strict: true,
                }),
            top_logprobs: logprobs.then_some(TOP_LOGPROBS),
            ..ChatRequest::user(rendered.system.clone(), user)
        }
    }
}

/// The verdict cache key of a question: everything that can change the answer kept.
fn cache_key(route: &str, q: &Question<'_>, max_tokens: u32, seed: i64) -> Key {
    let rendered = q.rendered;
    let mut parts: Vec<&str> = vec![
        route,
        parse::PARSER_VERSION,
        &rendered.version,
        rendered.system.as_deref().unwrap_or(""),
        &rendered.user,
    ];
    let mt = max_tokens.to_string();
    parts.push(&mt);
    let sd = seed.to_string();
    parts.push(&sd);
    // What the provider is asked besides the prompt changes the answer kept.
    parts.push(rendered.schema.map_or("", |(name, _)| name));
    parts.push(if q.logprobs { "logprobs" } else { "" });
    parts.extend(q.images.iter().map(String::as_str));
    VerdictCache::key(&parts)
}
