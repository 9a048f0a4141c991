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

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::{
    Answer, EventReader, Outgoing, StreamFormat, WireFormat, json_body, typed_error_message,
};
use llm_judge_chat::{
    ChatRequest, Chunk, Completion, Part, ProviderError, ResponseFormat, SystemPrompt, Usage,
};

/// The `anthropic-version` header sent.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// The `max_tokens` sent when the request sets none (Anthropic requires the field).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

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
            url: super::parse_url(&url)?,
            headers: api_key
                .map(|key| {
                    super::fixed_headers(
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

/// Reads Anthropic's message events: text (and a structured answer's JSON) from
/// `content_block_delta`, the stop reason and usage from `message_start` and `message_delta`,
/// the end at `message_stop`; an `error` event (e.g. `overloaded_error`) is the error it names.
#[derive(Default)]
struct EventsReader {
    /// Input-side usage from `message_start`; the output count comes with `message_delta`.
    usage: Usage,
    done: bool,
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<WireStartMessage>,
    #[serde(default)]
    content_block: Option<WireContent>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireStartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl EventReader for EventsReader {
    fn read(&mut self, _event: &str, data: &str) -> Result<Option<Chunk>, ProviderError> {
        if data.trim().is_empty() {
            return Ok(None);
        }
        let ev: WireEvent = serde_json::from_str(data)
            .map_err(|e| ProviderError::Decode(format!("not an Anthropic stream event: {e}")))?;
        let text = |t: String| {
            Ok(Some(Chunk {
                text: t,
                ..Chunk::default()
            }))
        };
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(u) = ev.message.and_then(|m| m.usage) {
                    self.usage = usage(u);
                }
                Ok(None)
            }
            "content_block_start" => match ev.content_block.and_then(|b| b.text) {
                Some(t) if !t.is_empty() => text(t),
                _ => Ok(None),
            },
            "content_block_delta" => match ev.delta {
                Some(WireDelta {
                    kind: Some(k),
                    text: Some(t),
                    ..
                }) if k == "text_delta" => text(t),
                Some(WireDelta {
                    partial_json: Some(j),
                    ..
                }) => text(j),
                _ => Ok(None),
            },
            "message_delta" => {
                let reason = ev.delta.and_then(|d| d.stop_reason);
                if reason.as_deref() == Some("refusal") {
                    return Err(ProviderError::ContentFilter(
                        "Anthropic stopped the answer (stop_reason refusal)".into(),
                    ));
                }
                if let Some(u) = ev.usage {
                    self.usage.completion_tokens = u.output_tokens;
                }
                Ok(Some(Chunk {
                    finish_reason: reason,
                    usage: Some(self.usage),
                    ..Chunk::default()
                }))
            }
            "message_stop" => {
                self.done = true;
                Ok(None)
            }
            "error" => {
                let e = ev.error.unwrap_or(WireError {
                    kind: None,
                    message: None,
                });
                let kind = e.kind.unwrap_or_default();
                let message = format!(
                    "{kind}: {}",
                    e.message.unwrap_or_else(|| "error in the stream".into())
                );
                Err(super::stream_error(Some(&kind), message))
            }
            // ping, content_block_stop, and event types added later.
            _ => Ok(None),
        }
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<WireSystem<'a>>,
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    /// A structured answer is asked for as one forced tool call whose input is the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[WireTool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

/// The system prompt: a plain string, or one text block marked for the prompt cache.
#[derive(Serialize)]
#[serde(untagged)]
enum WireSystem<'a> {
    Text(&'a SystemPrompt),
    Cached([WireCachedText<'a>; 1]),
}

#[derive(Serialize)]
struct WireCachedText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a SystemPrompt,
    cache_control: WireCacheControl,
}

#[derive(Serialize)]
struct WireCacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'static str,
    input_schema: &'a serde_json::Value,
}

#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

/// The tool a structured answer is given through.
const ANSWER_TOOL: &str = "answer";
static ANY_OBJECT: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::json!({"type": "object"}));

/// The shortest prefix Anthropic caches, in tokens: 2,048 for Haiku-class models, 1,024 for
/// the others. A shorter prefix marked for caching is not cached, so it is not marked.
fn min_cached_tokens(model: &str) -> u64 {
    if model.contains("haiku") { 2048 } else { 1024 }
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

fn blocks(parts: &[Part]) -> Result<Vec<WireBlock<'_>>, ProviderError> {
    let mut content = Vec::with_capacity(parts.len());
    for part in parts {
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
    Ok(content)
}

fn wire_request(req: &ChatRequest, prompt_cache: bool) -> Result<WireRequest<'_>, ProviderError> {
    let messages = req
        .messages
        .iter()
        .map(|m| {
            Ok(WireMessage {
                role: m.role.as_str(),
                content: blocks(&m.parts)?,
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    let system = req.system.as_ref().filter(|s| !s.is_empty()).map(|s| {
        // About four bytes a token, as the pool's own estimate.
        let long_enough = (s.len() as u64).div_ceil(4) >= min_cached_tokens(&req.model);
        if prompt_cache && req.cache_system && long_enough {
            WireSystem::Cached([WireCachedText {
                kind: "text",
                text: s,
                cache_control: WireCacheControl { kind: "ephemeral" },
            }])
        } else {
            WireSystem::Text(s)
        }
    });
    let tool = req.response_format.as_ref().map(|f| match f {
        ResponseFormat::JsonSchema { name, schema, .. } => (name.as_str(), schema),
        ResponseFormat::JsonObject => (ANSWER_TOOL, &*ANY_OBJECT),
    });
    Ok(WireRequest {
        model: &req.model,
        system,
        messages,
        max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: req
            .temperature
            .filter(|t| t.is_finite())
            .map(|t| t.clamp(0.0, 1.0)),
        stop_sequences: &req.stop,
        tools: tool.map(|(name, schema)| {
            [WireTool {
                name,
                description: "Give the answer through this tool, as its input.",
                input_schema: schema,
            }]
        }),
        tool_choice: tool.map(|(name, _)| WireToolChoice { kind: "tool", name }),
        stream: None,
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
    /// A `tool_use` block's input: the structured answer.
    #[serde(default)]
    input: Option<serde_json::Value>,
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

fn usage(u: WireUsage) -> Usage {
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    let read = u.cache_read_input_tokens.unwrap_or(0);
    Usage {
        cached_prompt_tokens: read,
        cache_write_tokens: written,
        ..Usage::new(u.input_tokens + written + read, u.output_tokens)
    }
}

fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Decode(format!("not an Anthropic message: {e}")))?;
    if wire.stop_reason.as_deref() == Some("refusal") {
        return Err(ProviderError::ContentFilter(
            "Anthropic stopped the answer (stop_reason refusal)".into(),
        ));
    }
    // A forced tool call's input is the structured answer; else the text blocks.
    let text: String = match wire
        .content
        .iter()
        .find_map(|b| (b.kind == "tool_use").then_some(b.input.as_ref()).flatten())
    {
        Some(input) => input.to_string(),
        None => wire
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect(),
    };
    let usage = wire.usage.map(usage).unwrap_or_default();
    Ok(Completion {
        text,
        usage,
        finish_reason: wire.stop_reason,
        ..Completion::default()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::conformance::request;
    use llm_judge_chat::ImageRef;

    #[test]
    fn defaults_and_clamping() {
        let mut r = request();
        r.system = None;
        r.max_tokens = None;
        r.temperature = Some(1.7);
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert!(v.get("system").is_none());
        assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(v["temperature"], 1.0);
        r.temperature = None;
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert!(v.get("temperature").is_none());
    }

    #[test]
    fn images_become_base64_or_url_sources() {
        let mut r = request();
        let parts = &mut r.messages[0].parts;
        parts.push(Part::Image(ImageRef {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
        }));
        parts.push(Part::Image(ImageRef {
            url: "https://example.com/a.jpg".into(),
        }));
        parts.push(Part::Text(String::new()));
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert_eq!(
            v["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Is 2+2=4?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
            ])
        );
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "file:///etc/passwd".into(),
        }));
        assert!(matches!(
            wire_request(&r, true),
            Err(ProviderError::Unsupported(_))
        ));
    }

    #[test]
    fn thinking_is_skipped_cached_input_counted_and_refusal_filtered() {
        let ok = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking","thinking":"2+2 is 4","signature":"EqQB"},{"type":"text","text":"Yes"},{"type":"text","text":", it is."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":100,"cache_read_input_tokens":3,"output_tokens":7,"service_tier":"standard"}}"#;
        let c = parse_response(ok).unwrap();
        assert_eq!(c.text, "Yes, it is.");
        assert_eq!(
            c.usage,
            Usage {
                cached_prompt_tokens: 3,
                cache_write_tokens: 100,
                ..Usage::new(123, 7)
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
    }

    #[test]
    fn a_long_system_prompt_is_marked_for_the_cache_and_a_short_one_is_not() {
        let mut r = request();
        r.cache_system = true;
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert_eq!(
            v["system"], "You are a strict grader.",
            "too short to cache"
        );
        r.system = Some("rubric ".repeat(700).into());
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert_eq!(
            v["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(v["system"][0]["type"], "text");
        r.model = "claude-3-5-haiku-latest".into();
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert!(v["system"].is_string(), "Haiku needs 2,048 tokens: {v}");
        r.model = "claude-sonnet-4-5".into();
        let off = serde_json::to_value(wire_request(&r, false).unwrap()).unwrap();
        assert!(off["system"].is_string(), "prompt_cache = false: {off}");
        r.cache_system = false;
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert!(v["system"].is_string());
    }

    #[test]
    fn a_structured_answer_is_a_forced_tool_whose_input_is_the_text() {
        let mut r = request();
        r.stop = vec!["END".into()];
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "verdict".into(),
            schema: json!({"type": "object", "properties": {"verdict": {"type": "string"}}}),
            strict: true,
        });
        let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["tools"][0]["name"], "verdict");
        assert_eq!(
            v["tools"][0]["input_schema"]["properties"]["verdict"]["type"],
            "string"
        );
        assert_eq!(v["tool_choice"], json!({"type": "tool", "name": "verdict"}));
        let body = br#"{"content":[{"type":"tool_use","id":"toolu_1","name":"verdict","input":{"verdict":"correct"}}],"stop_reason":"tool_use","usage":{"input_tokens":30,"output_tokens":9}}"#;
        let c = parse_response(body).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&c.text).unwrap(),
            json!({"verdict": "correct"})
        );
        let plain = serde_json::to_value(wire_request(&request(), true).unwrap()).unwrap();
        for k in ["stop_sequences", "tools", "tool_choice"] {
            assert!(plain.get(k).is_none(), "{k}");
        }
    }
}
