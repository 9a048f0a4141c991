//! Anthropic Messages API adapter (`POST {base_url}/v1/messages`).
//!
//! `base_url` has no version (`https://api.anthropic.com`); a trailing `/` or `/v1` is tolerated.
//! Headers: `x-api-key`, `anthropic-version` ([`DEFAULT_VERSION`] unless [`AnthropicProvider::with_version`]).
//!
//! Decisions:
//! * `max_tokens` is required by Anthropic: [`DEFAULT_MAX_TOKENS`] is sent when the request has none.
//! * `temperature` is clamped to Anthropic's 0..=1 (a non-finite value is left out).
//! * `system` is sent top level only when present and non-empty; empty text parts are left out of
//!   the user message (Anthropic rejects empty text blocks).
//! * Images: a base64 `data:` URL becomes a `base64` source, an `http(s)` URL a `url` source (fetched
//!   by Anthropic, not by this service); anything else is [`ProviderError::Unsupported`].
//! * Text is the concatenation of the `text` blocks (thinking and other blocks are skipped).
//!   Prompt tokens are `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`.
//! * `stop_reason: "refusal"` (Anthropic's safety classifiers stopped the answer) becomes
//!   [`ProviderError::ContentFilter`], whatever partial text came with it: it is a provider-side
//!   safety stop, not the model's judgement, and it should not be retried at the same provider.
//! * Errors `{"type":"error","error":{"type","message"}}` read as `"{type}: {message}"`; 529
//!   (`overloaded_error`) stays a `Status` error, which `is_retryable` retries as a 5xx.
//!   Without a key the adapter returns [`ProviderError::NoCredentials`] and sends nothing.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use reqwest::header::HeaderMap;

use self::request::wire_request;
use self::response::parse_response;
use self::stream::EventsReader;
use crate::answer::{Answer, typed_error_message};
use crate::outgoing::{Outgoing, fixed_headers, json_body, parse_url};
use crate::wire::{EventReader, StreamFormat, WireFormat};
use llm_judge_chat::{ChatRequest, Completion, ProviderError};

pub use request::DEFAULT_MAX_TOKENS;

/// The `anthropic-version` header sent.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The Anthropic Messages API bound to a base URL and an optional key.
pub struct Anthropic {
    url: reqwest::Url,
    /// `x-api-key` and `anthropic-version`, when a key is configured.
    headers: Option<HeaderMap>,
    /// Whether a request's [`ChatRequest::cache_system`] is honoured (the provider's
    /// `prompt_cache` setting).
    prompt_cache: bool,
}

impl Anthropic {
    pub fn new(base_url: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let url = format!("{base}/v1/messages");
        Ok(Self {
            url: parse_url(&url)?,
            headers: api_key
                .map(|key| {
                    fixed_headers(
                        &[("x-api-key", key), ("anthropic-version", DEFAULT_VERSION)],
                        &[],
                    )
                })
                .transpose()?,
            prompt_cache: true,
        })
    }

    /// With `false`, no request is marked for the prompt cache, whatever it asks.
    pub fn with_prompt_cache(mut self, on: bool) -> Self {
        self.prompt_cache = on;
        self
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The base URL the Messages API hangs off (`…/v1/messages`), for the batch API beside it.
    pub fn messages_url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The Messages request body for `req`: exactly what [`WireFormat::encode`] sends, for a
    /// request sent inside a Message Batch.
    pub fn body(&self, req: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        json_body(&wire_request(req, self.prompt_cache)?)
    }
}

impl WireFormat for Anthropic {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    fn encode(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        Ok(Outgoing {
            url: self.url.clone(),
            body: self.body(req)?,
        })
    }

    fn decode(&self, answer: Answer) -> Result<Completion, ProviderError> {
        if answer.is_success() {
            return parse_response(&answer.body);
        }
        Err(answer.status_error(typed_error_message(&answer.body, "/error/type")))
    }

    fn streaming(&self) -> Option<&dyn StreamFormat> {
        Some(self)
    }
}

impl StreamFormat for Anthropic {
    fn encode_stream(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        let mut body = wire_request(req, self.prompt_cache)?;
        body.stream = Some(true);
        Ok(Outgoing {
            url: self.url.clone(),
            body: json_body(&body)?,
        })
    }

    fn reader(&self) -> Box<dyn EventReader> {
        Box::new(EventsReader::default())
    }
}
