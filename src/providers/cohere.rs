//! Cohere Chat v2 adapter (`POST {base_url}/v2/chat`, `Authorization: Bearer K`).
//!
//! `base_url` has no version (`https://api.cohere.com`); a trailing `/` or `/v2` is tolerated.
//!
//! Decisions:
//! * The system prompt is a `{role:"system",content:"…"}` message. The user content is a plain
//!   string when the request is one text part, else a list of `text` / `image_url` blocks (the
//!   spec's `UserMessageV2.content` is `string | Content[]`). Image URLs (`data:` or `https:`) are
//!   passed as they are: Cohere fetches remote ones itself.
//! * Text is the concatenation of the `text` items of `message.content` (`thinking` items are
//!   skipped). `finish_reason` is kept as Cohere sends it (`COMPLETE`, `MAX_TOKENS`, `ERROR` …).
//! * Usage: `usage.tokens` (what the model processed) when present, else `usage.billed_units`.
//!   Cohere types them as JSON numbers, so fractional values are read and truncated.
//! * Errors are `{"message","id"}`. 498 (a deny-listed token in the request or answer) and 499
//!   (request cancelled) are `Status` errors with `should_retry: Some(false)` unless an
//!   `x-should-retry` header says otherwise, so `is_retryable` does not retry them.
//!   Without a key the adapter returns [`ProviderError::NoCredentials`] and sends nothing.

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::http::HttpClient;
use super::openai::error_message;
use super::{
    ChatRequest, Completion, Part, Provider, ProviderError, SystemPrompt, Usage, parse_retry_after,
    parse_should_retry,
};

/// Cohere's Chat v2 API bound to a base URL and an optional key.
pub struct CohereProvider {
    client: HttpClient,
    url: String,
    parsed: Result<reqwest::Url, ProviderError>,
    /// `Authorization: Bearer`, when a key is configured.
    headers: Option<Result<HeaderMap, ProviderError>>,
}

impl CohereProvider {
    pub fn new(client: HttpClient, base_url: &str, api_key: Option<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v2").unwrap_or(base);
        let url = format!("{base}/v2/chat");
        Self {
            client,
            parsed: super::parse_url(&url),
            url,
            headers: api_key
                .filter(|k| !k.is_empty())
                .map(|k| super::fixed_headers(&[("authorization", &format!("Bearer {k}"))])),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: WireContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(&'a str),
    /// Escaped once, kept by the prompt.
    System(&'a SystemPrompt),
    Blocks(Vec<WireBlock<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl<'a> },
}

#[derive(Serialize)]
struct WireImageUrl<'a> {
    url: &'a str,
}

fn wire_request(req: &ChatRequest) -> WireRequest<'_> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &req.system {
        messages.push(WireMessage {
            role: "system",
            content: WireContent::System(system),
        });
    }
    let content = match req.user.as_slice() {
        [Part::Text(t)] => WireContent::Text(t),
        parts => WireContent::Blocks(
            parts
                .iter()
                .map(|p| match p {
                    Part::Text(text) => WireBlock::Text { text },
                    Part::Image(img) => WireBlock::ImageUrl {
                        image_url: WireImageUrl { url: &img.url },
                    },
                })
                .collect(),
        ),
    };
    messages.push(WireMessage {
        role: "user",
        content,
    });
    WireRequest {
        model: &req.model,
        messages,
        temperature: req.temperature,
        max_tokens: req.max_tokens,
    }
}

#[derive(Deserialize)]
struct WireResponse {
    message: WireAnswer,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireAnswer {
    #[serde(default)]
    content: Vec<WireItem>,
}

#[derive(Deserialize)]
struct WireItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    tokens: Option<WireCounts>,
    #[serde(default)]
    billed_units: Option<WireCounts>,
}

#[derive(Deserialize)]
struct WireCounts {
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
}

fn count(v: Option<f64>) -> u64 {
    v.filter(|n| n.is_finite() && *n > 0.0)
        .map_or(0, |n| n as u64)
}

fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Decode(format!("not a Cohere chat response: {e}")))?;
    let text: String = wire
        .message
        .content
        .iter()
        .filter(|i| i.kind == "text")
        .filter_map(|i| i.text.as_deref())
        .collect();
    let usage = wire
        .usage
        .and_then(|u| u.tokens.or(u.billed_units))
        .map(|c| Usage {
            prompt_tokens: count(c.input_tokens),
            completion_tokens: count(c.output_tokens),
        })
        .unwrap_or_default();
    Ok(Completion {
        text,
        usage,
        finish_reason: wire.finish_reason,
        refusal: None,
    })
}

/// `x-should-retry` wins; otherwise 498 and 499 are marked as not worth retrying.
fn should_retry(status: u16, headers: &HeaderMap) -> Option<bool> {
    parse_should_retry(headers).or(matches!(status, 498 | 499).then_some(false))
}

impl Provider for CohereProvider {
    fn kind(&self) -> &'static str {
        "cohere"
    }

    fn has_credentials(&self) -> bool {
        self.headers.is_some()
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        async move {
            let headers = self.headers.as_ref().ok_or(ProviderError::NoCredentials)?;
            let headers = headers.as_ref().map_err(Clone::clone)?;
            let url = self.parsed.as_ref().map_err(Clone::clone)?;
            let body = wire_request(req);
            let (status, headers, bytes) = self.client.post_json(url, headers, &body).await?;
            if (200..300).contains(&status) {
                return parse_response(&bytes);
            }
            Err(ProviderError::Status {
                status,
                message: error_message(&bytes),
                retry_after: parse_retry_after(&headers),
                should_retry: should_retry(status, &headers),
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
            model: "command-a-03-2025".into(),
            system: Some("You are a strict grader.".into()),
            user: vec![Part::Text("Is 2+2=4?".into())],
            temperature: Some(0.0),
            max_tokens: Some(16),
            grading: None,
        }
    }

    fn provider(base: &str) -> CohereProvider {
        CohereProvider::new(HttpClient::default(), base, Some("co-key".into()))
    }

    // Shape of the spec's v2 example (`ChatResponseV2`), shortened.
    const OK: &str = r#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"thinking","thinking":"simple arithmetic"},{"type":"text","text":"Yes. "},{"type":"text","text":"2+2=4."}]},"usage":{"billed_units":{"input_tokens":5,"output_tokens":418},"tokens":{"input_tokens":71,"output_tokens":418}}}"#;

    #[test]
    fn body_uses_string_content_for_text_and_blocks_for_images() {
        let v = serde_json::to_value(wire_request(&req())).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "command-a-03-2025",
                "messages": [
                    {"role": "system", "content": "You are a strict grader."},
                    {"role": "user", "content": "Is 2+2=4?"}
                ],
                "temperature": 0.0,
                "max_tokens": 16
            })
        );
        let mut r = req();
        r.system = None;
        r.temperature = None;
        r.max_tokens = None;
        r.user.push(Part::Image(ImageRef {
            url: "data:image/jpeg;base64,/9j/4AAQ".into(),
        }));
        r.user.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        let v = serde_json::to_value(wire_request(&r)).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "command-a-03-2025",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "Is 2+2=4?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                ]}]
            })
        );
    }

    #[test]
    fn parses_text_usage_and_errors() {
        let c = parse_response(OK.as_bytes()).unwrap();
        assert_eq!(c.text, "Yes. 2+2=4.");
        assert_eq!(c.finish_reason.as_deref(), Some("COMPLETE"));
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 71,
                completion_tokens: 418
            }
        );
        let billed = br#"{"id":"x","finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":[{"type":"text","text":"Ye"}]},"usage":{"billed_units":{"input_tokens":5.0,"output_tokens":1}}}"#;
        let c = parse_response(billed).unwrap();
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 5,
                completion_tokens: 1
            }
        );
        let empty = br#"{"id":"x","finish_reason":"ERROR","message":{"role":"assistant"}}"#;
        let c = parse_response(empty).unwrap();
        assert_eq!((c.text.as_str(), c.usage), ("", Usage::default()));
        assert!(matches!(
            parse_response(br#"{"id":"x"}"#),
            Err(ProviderError::Decode(_))
        ));
        assert_eq!(
            error_message(br#"{"id":"9a1f","message":"invalid api token"}"#),
            "invalid api token"
        );
    }

    #[test]
    fn should_retry_rules() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(should_retry(498, &h), Some(false));
        assert_eq!(should_retry(499, &h), Some(false));
        assert_eq!(should_retry(503, &h), None);
        h.insert("x-should-retry", "true".parse().unwrap());
        assert_eq!(should_retry(499, &h), Some(true));
    }

    #[tokio::test]
    async fn sends_bearer_and_exact_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/chat"))
            .and(header("authorization", "Bearer co-key"))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "model": "command-a-03-2025",
                "messages": [
                    {"role": "system", "content": "You are a strict grader."},
                    {"role": "user", "content": "Is 2+2=4?"}
                ],
                "temperature": 0.0,
                "max_tokens": 16
            })))
            .respond_with(ResponseTemplate::new(200).set_body_raw(OK, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
        let c = provider(&format!("{}/v2/", server.uri()))
            .chat(&req())
            .await
            .unwrap();
        assert_eq!(c.text, "Yes. 2+2=4.");
        assert_eq!(c.usage.total(), 489);
    }

    #[tokio::test]
    async fn status_498_is_not_retryable_and_429_reads_retry_after() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/chat"))
            .and(header("authorization", "Bearer co-key"))
            .respond_with(
                ResponseTemplate::new(498)
                    .set_body_json(json!({"id": "b1", "message": "blocked token in input"})),
            )
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v2/chat"))
            .and(header("authorization", "Bearer co-key"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "3")
                    .set_body_json(json!({"id": "r1", "message": "You are using a Trial key, which is limited to 10 API calls / minute."})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let p = provider(&server.uri());
        let err = p.chat(&req()).await.unwrap_err();
        assert_eq!(err.status(), Some(498));
        assert_eq!(err.to_string(), "HTTP 498: blocked token in input");
        assert!(matches!(
            err,
            ProviderError::Status {
                should_retry: Some(false),
                ..
            }
        ));
        assert!(!err.is_retryable());
        let err = p.chat(&req()).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_retryable());
        assert!(!err.to_string().contains("co-key"));
    }

    #[tokio::test]
    async fn no_key_sends_nothing() {
        let server = MockServer::start().await;
        let p = CohereProvider::new(HttpClient::default(), &server.uri(), Some(String::new()));
        assert!(!p.has_credentials());
        assert_eq!(
            p.chat(&req()).await.unwrap_err(),
            ProviderError::NoCredentials
        );
        assert!(server.received_requests().await.unwrap().is_empty());
    }
}
