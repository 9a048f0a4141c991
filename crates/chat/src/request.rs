//! The provider-neutral chat request every judge call becomes, the shape its answer must have,
//! and the token estimates made before the call.

use crate::grading::GradingTask;
use crate::message::{ImageRef, Message, Part};
use crate::system::SystemPrompt;

/// The completion budget of a request that sets none: what Anthropic, which requires one, is
/// sent, and what every estimate (rate limits, budgets) counts for it, so that the two agree.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// A provider-neutral chat request: an optional system prompt and the conversation after it (a
/// judge sends one user message).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// Set per route step: each step names its own model.
    pub model: String,
    /// Shared: a template's instructions are the same for every item.
    pub system: Option<SystemPrompt>,
    pub messages: Vec<Message>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer where the provider supports them.
    pub stop: Vec<String>,
    /// A sampling seed, for providers that take one (best-effort determinism).
    pub seed: Option<i64>,
    /// The shape the answer must have, where the provider can enforce it.
    pub response_format: Option<ResponseFormat>,
    /// Ask for the log probability of every answer token, with this many alternatives each
    /// (0 to 20), from providers that return them.
    pub top_logprobs: Option<u8>,
    /// The system prompt is a fixed prefix shared by many calls: mark it for the provider's
    /// prompt cache where caching is explicit (Anthropic) and the prefix is long enough.
    pub cache_system: bool,
    /// Set by the judge layer so deterministic providers can grade the raw fields.
    pub grading: Option<GradingTask>,
}

/// The shape an answer must have.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// A JSON object valid against `schema` (a JSON Schema) named `name`; `strict` asks the
    /// provider to enforce it exactly where it can.
    JsonSchema {
        name: String,
        schema: serde_json::Value,
        strict: bool,
    },
}

impl ChatRequest {
    /// A request of one user message.
    pub fn user(system: Option<SystemPrompt>, parts: Vec<Part>) -> ChatRequest {
        ChatRequest {
            system,
            messages: vec![Message::user(parts)],
            ..ChatRequest::default()
        }
    }

    /// Every image of every message.
    pub fn images(&self) -> impl Iterator<Item = &ImageRef> {
        self.messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .filter_map(|p| match p {
                Part::Image(i) => Some(i),
                Part::Text(_) => None,
            })
    }

    /// A rough token estimate (4 bytes per token, plus a fixed cost per image) used before the
    /// call, for tokens-per-minute limits.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let text: usize = self.system.as_deref().map_or(0, str::len)
            + self
                .messages
                .iter()
                .flat_map(|m| m.parts.iter())
                .map(|p| match p {
                    Part::Text(t) => t.len(),
                    Part::Image(_) => 0,
                })
                .sum::<usize>();
        Self::prompt_tokens_of(text, self.images().count())
    }

    /// The prompt estimate of `text_bytes` of text and `images` images, by the rule of
    /// [`ChatRequest::estimated_prompt_tokens`].
    pub fn prompt_tokens_of(text_bytes: usize, images: usize) -> u64 {
        (text_bytes as u64).div_ceil(4) + 765 * images as u64
    }

    /// What the call may cost in tokens at most: the prompt estimate plus the completion budget
    /// ([`DEFAULT_MAX_TOKENS`] when the request sets none).
    pub fn estimated_tokens(&self) -> u64 {
        self.estimated_prompt_tokens() + u64::from(self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_count_system_text_and_images() {
        let mut r = ChatRequest::user(
            Some("abcd".into()),
            vec![
                Part::Text("efgh".into()),
                Part::Image(ImageRef {
                    url: "data:image/png;base64,AAAA".into(),
                }),
            ],
        );
        assert_eq!(r.estimated_prompt_tokens(), 2 + 765);
        r.max_tokens = Some(10);
        assert_eq!(r.estimated_tokens(), 2 + 765 + 10);
        assert_eq!(r.images().count(), 1);
    }
}
