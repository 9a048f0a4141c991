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

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::HttpClient;
use super::openai::error_message as lenient_error_message;
use super::{
    ChatRequest, Completion, Part, Provider, ProviderError, SystemPrompt, Usage, clip,
    parse_retry_after, parse_should_retry,
};

/// The `anthropic-version` header sent unless overridden.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// The `max_tokens` sent when the request sets none (Anthropic requires the field).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The Anthropic Messages API bound to a base URL and an optional key.
pub struct AnthropicProvider {
    client: HttpClient,
    url: String,
    parsed: Result<reqwest::Url, ProviderError>,
    api_key: Option<String>,
    /// `x-api-key` and `anthropic-version`, when a key is configured.
    headers: Option<Result<HeaderMap, ProviderError>>,
}

impl AnthropicProvider {
    pub fn new(client: HttpClient, base_url: &str, api_key: Option<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let url = format!("{base}/v1/messages");
        Self {
            client,
            parsed: super::parse_url(&url),
            url,
            api_key: api_key.filter(|k| !k.is_empty()),
            headers: None,
        }
        .with_version(DEFAULT_VERSION)
    }

    /// Overrides the `anthropic-version` header.
    pub fn with_version(mut self, version: &str) -> Self {
        self.headers = self
            .api_key
            .as_ref()
            .map(|key| super::fixed_headers(&[("x-api-key", key), ("anthropic-version", version)]));
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a SystemPrompt>,
    messages: [WireMessage<'a>; 1],
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<WireBlock<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text { text: &'a str },
    Image { source: WireSource<'a> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

fn wire_request(req: &ChatRequest) -> Result<WireRequest<'_>, ProviderError> {
    let mut content = Vec::with_capacity(req.user.len());
    for part in &req.user {
        match part {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(text) => content.push(WireBlock::Text { text }),
            Part::Image(img) => {
                let source = if let Some(d) = img.as_data_url() {
                    WireSource::Base64 {
                        media_type: d.mime_type,
                        data: d.base64,
                    }
                } else if img.is_remote() {
                    WireSource::Url { url: &img.url }
                } else {
                    return Err(ProviderError::Unsupported(
                        "Anthropic takes images only as base64 data: URLs or http(s) URLs".into(),
                    ));
                };
                content.push(WireBlock::Image { source });
            }
        }
    }
    Ok(WireRequest {
        model: &req.model,
        system: req.system.as_ref().filter(|s| !s.is_empty()),
        messages: [WireMessage {
            role: "user",
            content,
        }],
        max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: req
            .temperature
            .filter(|t| t.is_finite())
            .map(|t| t.clamp(0.0, 1.0)),
    })
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    content: Vec<WireContent>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Decode(format!("not an Anthropic message: {e}")))?;
    if wire.stop_reason.as_deref() == Some("refusal") {
        return Err(ProviderError::ContentFilter(
            "Anthropic stopped the answer (stop_reason refusal)".into(),
        ));
    }
    let text: String = wire
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let usage = wire
        .usage
        .map(|u| Usage {
            prompt_tokens: u.input_tokens
                + u.cache_creation_input_tokens.unwrap_or(0)
                + u.cache_read_input_tokens.unwrap_or(0),
            completion_tokens: u.output_tokens,
        })
        .unwrap_or_default();
    Ok(Completion {
        text,
        usage,
        finish_reason: wire.stop_reason,
        refusal: None,
    })
}

/// Reads `{"type":"error","error":{"type","message"}}` as `"{type}: {message}"`, other bodies leniently.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(msg) = v.pointer("/error/message").and_then(Value::as_str)
    {
        return match v.pointer("/error/type").and_then(Value::as_str) {
            Some(kind) => clip(&format!("{kind}: {msg}"), 500),
            None => clip(msg, 500),
        };
    }
    lenient_error_message(body)
}

impl Provider for AnthropicProvider {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    fn has_credentials(&self) -> bool {
        self.api_key.is_some()
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        async move {
            let headers = self.headers.as_ref().ok_or(ProviderError::NoCredentials)?;
            let headers = headers.as_ref().map_err(Clone::clone)?;
            let url = self.parsed.as_ref().map_err(Clone::clone)?;
            let body = wire_request(req)?;
            let (status, headers, bytes) = self.client.post_json(url, headers, &body).await?;
            if (200..300).contains(&status) {
                return parse_response(&bytes);
            }
            Err(ProviderError::Status {
                status,
                message: error_message(&bytes),
                retry_after: parse_retry_after(&headers),
                should_retry: parse_should_retry(&headers),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::providers::ImageRef;

    fn req() -> ChatRequest {
        ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: Some("You are a strict grader.".into()),
            user: vec![Part::Text("Is 2+2=4?".into())],
            temperature: Some(0.0),
            max_tokens: Some(16),
            grading: None,
        }
    }

    fn provider(base: &str) -> AnthropicProvider {
        AnthropicProvider::new(HttpClient::default(), base, Some("sk-ant-test".into()))
    }

    const OK: &str = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking","thinking":"2+2 is 4","signature":"EqQB"},{"type":"text","text":"Yes"},{"type":"text","text":", it is."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":100,"cache_read_input_tokens":3,"output_tokens":7,"service_tier":"standard"}}"#;

    #[test]
    fn body_shape_defaults_and_clamping() {
        let v = serde_json::to_value(wire_request(&req()).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "claude-sonnet-4-5",
                "system": "You are a strict grader.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Is 2+2=4?"}]}],
                "max_tokens": 16,
                "temperature": 0.0
            })
        );
        let mut r = req();
        r.system = None;
        r.max_tokens = None;
        r.temperature = Some(1.7);
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert!(v.get("system").is_none());
        assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(v["temperature"], 1.0);
        r.temperature = None;
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert!(v.get("temperature").is_none());
    }

    #[test]
    fn images_become_base64_or_url_sources() {
        let mut r = req();
        r.user.push(Part::Image(ImageRef {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
        }));
        r.user.push(Part::Image(ImageRef {
            url: "https://example.com/a.jpg".into(),
        }));
        r.user.push(Part::Text(String::new()));
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert_eq!(
            v["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Is 2+2=4?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
            ])
        );
        r.user.push(Part::Image(ImageRef {
            url: "file:///etc/passwd".into(),
        }));
        assert!(matches!(
            wire_request(&r),
            Err(ProviderError::Unsupported(_))
        ));
    }

    #[test]
    fn parses_text_usage_refusal_and_errors() {
        let c = parse_response(OK.as_bytes()).unwrap();
        assert_eq!(c.text, "Yes, it is.");
        assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 123,
                completion_tokens: 7
            }
        );
        let cut = br#"{"content":[{"type":"text","text":"Ye"}],"stop_reason":"max_tokens","usage":{"input_tokens":5,"output_tokens":1,"cache_creation_input_tokens":null,"cache_read_input_tokens":null}}"#;
        let c = parse_response(cut).unwrap();
        assert_eq!((c.text.as_str(), c.usage.prompt_tokens), ("Ye", 5));
        let refused = br#"{"type":"message","content":[{"type":"text","text":"I"}],"stop_reason":"refusal","usage":{"input_tokens":5,"output_tokens":1}}"#;
        assert!(matches!(
            parse_response(refused),
            Err(ProviderError::ContentFilter(_))
        ));
        assert!(matches!(
            parse_response(b"<html>"),
            Err(ProviderError::Decode(_))
        ));
        assert_eq!(
            error_message(br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011CS"}"#),
            "invalid_request_error: max_tokens: Field required"
        );
        assert_eq!(
            error_message(b"upstream connect error"),
            "upstream connect error"
        );
    }

    #[tokio::test]
    async fn sends_headers_and_exact_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", "sk-ant-test"))
            .and(header("anthropic-version", "2023-06-01"))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "model": "claude-sonnet-4-5",
                "system": "You are a strict grader.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Is 2+2=4?"}]}],
                "max_tokens": 16,
                "temperature": 0.0
            })))
            .respond_with(ResponseTemplate::new(200).set_body_raw(OK, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
        let base = format!("{}/", server.uri());
        let c = provider(&base).chat(&req()).await.unwrap();
        assert_eq!(c.text, "Yes, it is.");
        assert_eq!(c.usage.total(), 130);
    }

    #[tokio::test]
    async fn overloaded_529_and_rate_limit_429_are_retryable_status_errors() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", "sk-ant-test"))
            .and(header("anthropic-version", "2023-06-01"))
            .respond_with(ResponseTemplate::new(529).set_body_json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"})))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", "sk-ant-test"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "12")
                    .insert_header("x-should-retry", "true")
                    .set_body_json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let p = provider(&server.uri());
        let err = p.chat(&req()).await.unwrap_err();
        assert_eq!(err.status(), Some(529));
        assert_eq!(err.to_string(), "HTTP 529: overloaded_error: Overloaded");
        assert!(err.is_retryable());
        let err = p.chat(&req()).await.unwrap_err();
        assert_eq!(err.kind(), "rate_limited");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
        assert!(err.is_retryable());
        assert!(!err.to_string().contains("sk-ant-test"));
    }

    #[tokio::test]
    async fn no_key_sends_nothing() {
        let server = MockServer::start().await;
        let p = AnthropicProvider::new(HttpClient::default(), &server.uri(), None);
        assert!(!p.has_credentials());
        assert_eq!(
            p.chat(&req()).await.unwrap_err(),
            ProviderError::NoCredentials
        );
        assert!(server.received_requests().await.unwrap().is_empty());
    }
}
