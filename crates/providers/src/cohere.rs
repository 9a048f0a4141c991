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

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::answer::{Answer, error_message, parse_should_retry};
use crate::openai::{WireMessage, wire_messages};
use crate::outgoing::{Outgoing, fixed_headers, json_body, parse_url};
use crate::wire::WireFormat;
use llm_judge_chat::{ChatRequest, Completion, ProviderError, ResponseFormat, Usage};

/// Cohere's Chat v2 API bound to a base URL and an optional key.
pub struct Cohere {
    url: reqwest::Url,
    /// `Authorization: Bearer`, when a key is configured.
    headers: Option<HeaderMap>,
}

impl Cohere {
    pub fn new(base_url: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v2").unwrap_or(base);
        Ok(Self {
            url: parse_url(&format!("{base}/v2/chat"))?,
            headers: api_key
                .map(|k| fixed_headers(&[("authorization", &format!("Bearer {k}"))], &[]))
                .transpose()?,
        })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

impl WireFormat for Cohere {
    fn kind(&self) -> &'static str {
        "cohere"
    }

    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    fn encode(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        Ok(Outgoing {
            url: self.url.clone(),
            body: json_body(&wire_request(req))?,
        })
    }

    fn decode(&self, answer: Answer) -> Result<Completion, ProviderError> {
        if answer.is_success() {
            return parse_response(&answer.body);
        }
        let mut e = answer.status_error(error_message(&answer.body));
        if let ProviderError::Status { should_retry, .. } = &mut e {
            *should_retry = self::should_retry(answer.status, &answer.headers);
        }
        Err(e)
    }
}

/// Cohere's messages are OpenAI's: `{role, content}` with a string or `text` / `image_url` blocks.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireFormatSpec<'a>>,
}

/// `{"type":"json_object"}`, with the JSON Schema when one is given.
#[derive(Serialize)]
struct WireFormatSpec<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<&'a serde_json::Value>,
}

fn wire_request(req: &ChatRequest) -> WireRequest<'_> {
    WireRequest {
        model: &req.model,
        messages: wire_messages(req),
        temperature: req.temperature,
        max_tokens: req.max_tokens,
        stop_sequences: &req.stop,
        seed: req.seed,
        response_format: req.response_format.as_ref().map(|f| WireFormatSpec {
            kind: "json_object",
            json_schema: match f {
                ResponseFormat::JsonSchema { schema, .. } => Some(schema),
                ResponseFormat::JsonObject => None,
            },
        }),
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
        .map(|c| Usage::new(count(c.input_tokens), count(c.output_tokens)))
        .unwrap_or_default();
    Ok(Completion {
        text,
        usage,
        finish_reason: wire.finish_reason,
        ..Completion::default()
    })
}

/// `x-should-retry` wins; otherwise 498 and 499 are marked as not worth retrying.
fn should_retry(status: u16, headers: &HeaderMap) -> Option<bool> {
    parse_should_retry(headers).or(matches!(status, 498 | 499).then_some(false))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::conformance::{answer, request};
    use llm_judge_chat::{ImageRef, Part};

    #[test]
    fn images_become_image_url_blocks() {
        let mut r = request();
        r.system = None;
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "data:image/jpeg;base64,/9j/4AAQ".into(),
        }));
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        let v = serde_json::to_value(wire_request(&r)).unwrap();
        assert_eq!(
            v["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "Is 2+2=4?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
            ]}])
        );
    }

    #[test]
    fn usage_thinking_and_billed_units() {
        const OK: &str = r#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"thinking","thinking":"simple arithmetic"},{"type":"text","text":"Yes. "},{"type":"text","text":"2+2=4."}]},"usage":{"billed_units":{"input_tokens":5,"output_tokens":418},"tokens":{"input_tokens":71,"output_tokens":418}}}"#;
        let c = parse_response(OK.as_bytes()).unwrap();
        assert_eq!(c.text, "Yes. 2+2=4.");
        assert_eq!(c.finish_reason.as_deref(), Some("COMPLETE"));
        assert_eq!(c.usage, Usage::new(71, 418));
        let billed = br#"{"id":"x","finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":[{"type":"text","text":"Ye"}]},"usage":{"billed_units":{"input_tokens":5.0,"output_tokens":1}}}"#;
        assert_eq!(parse_response(billed).unwrap().usage, Usage::new(5, 1));
        let empty = br#"{"id":"x","finish_reason":"ERROR","message":{"role":"assistant"}}"#;
        let c = parse_response(empty).unwrap();
        assert_eq!((c.text.as_str(), c.usage), ("", Usage::default()));
    }

    #[test]
    fn blocked_tokens_and_cancels_are_not_retried_unless_told() {
        let mut h = HeaderMap::new();
        assert_eq!(should_retry(498, &h), Some(false));
        assert_eq!(should_retry(499, &h), Some(false));
        assert_eq!(should_retry(503, &h), None);
        h.insert("x-should-retry", "true".parse().unwrap());
        assert_eq!(should_retry(499, &h), Some(true));
        let c = Cohere::new("https://api.cohere.com", Some("k")).unwrap();
        let err = c
            .decode(answer(
                498,
                r#"{"id":"1","message":"blocked token in input"}"#,
            ))
            .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 498: blocked token in input");
        assert!(!err.is_retryable());
    }

    #[test]
    fn stop_seed_and_json_schema() {
        let mut r = request();
        r.stop = vec!["END".into()];
        r.seed = Some(3);
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "verdict".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
        let v = serde_json::to_value(wire_request(&r)).unwrap();
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["seed"], 3);
        assert_eq!(
            v["response_format"],
            json!({"type": "json_object", "json_schema": {"type": "object"}})
        );
        r.response_format = Some(ResponseFormat::JsonObject);
        let v = serde_json::to_value(wire_request(&r)).unwrap();
        assert_eq!(v["response_format"], json!({"type": "json_object"}));
    }
}
