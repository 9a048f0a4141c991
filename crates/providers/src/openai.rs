//! OpenAI Chat Completions adapter; also serves every OpenAI-compatible server (Together, vLLM,
//! Ollama, llama.cpp, OpenRouter, Groq ...) through another base URL.
//!
//! `base_url` includes the API version (`https://api.openai.com/v1`); the adapter appends
//! `/chat/completions`. Reasoning models (o1, o3, o4, gpt-5 ...) get `max_completion_tokens` and no
//! `temperature`; other models get `max_tokens`, which every compatible server understands.

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Answer, EventReader, Outgoing, StreamFormat, WireFormat, error_message, json_body};
use llm_judge_chat::{
    ChatRequest, Chunk, Completion, Part, ProviderError, ResponseFormat, SystemPrompt,
    TokenLogprob, Usage,
};

/// The OpenAI wire format bound to a base URL and an optional key.
pub struct OpenAi {
    kind: &'static str,
    url: reqwest::Url,
    /// `None` when the server needs a key and none is configured.
    headers: Option<HeaderMap>,
}

impl OpenAi {
    /// `kind` is the wire-format label reported in metrics (`openai` or `together`); `extra` are
    /// configured headers (e.g. `OpenAI-Organization`).
    pub fn new(
        kind: &'static str,
        base_url: &str,
        api_key: Option<&str>,
        extra: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let auth = api_key.map(|k| format!("Bearer {k}"));
        let pairs: Vec<(&'static str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        // Local compatible servers (Ollama, llama.cpp, vLLM without --api-key) need no key.
        let needs_key = url.starts_with("https://");
        let headers = (api_key.is_some() || !needs_key)
            .then(|| super::fixed_headers(&pairs, extra))
            .transpose()?;
        Ok(Self {
            kind,
            url: super::parse_url(&url)?,
            headers,
        })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

impl WireFormat for OpenAi {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    fn encode(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        Ok(Outgoing {
            url: self.url.clone(),
            body: json_body(&wire_request(req, Some(&req.model)))?,
        })
    }

    fn decode(&self, answer: Answer) -> Result<Completion, ProviderError> {
        openai_shaped(answer)
    }

    fn streaming(&self) -> Option<&dyn StreamFormat> {
        Some(self)
    }
}

impl StreamFormat for OpenAi {
    fn encode_stream(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        Ok(Outgoing {
            url: self.url.clone(),
            body: json_body(&wire_stream_request(req, Some(&req.model)))?,
        })
    }

    fn reader(&self) -> Box<dyn EventReader> {
        Box::new(ChunkReader::default())
    }
}

/// Reads OpenAI's `chat.completion.chunk` events, up to `data: [DONE]` (shared by every
/// OpenAI-shaped provider).
#[derive(Default)]
pub(crate) struct ChunkReader {
    done: bool,
}

impl EventReader for ChunkReader {
    fn read(&mut self, _event: &str, data: &str) -> Result<Option<Chunk>, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        if data.is_empty() {
            return Ok(None);
        }
        let wire: WireChunk = serde_json::from_str(data)
            .map_err(|e| ProviderError::Decode(format!("not a chat completion chunk: {e}")))?;
        if let Some(err) = wire.error {
            let kind = err.get("type").and_then(Value::as_str);
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the provider reported an error in its stream");
            return Err(super::stream_error(kind, message.to_string()));
        }
        let mut chunk = Chunk {
            usage: wire.usage.map(usage),
            ..Chunk::default()
        };
        if let Some(choice) = wire.choices.into_iter().next() {
            if let Some(d) = choice.delta {
                chunk.text = content_text(d.content);
                chunk.refusal = d.refusal.filter(|r| !r.is_empty());
            }
            chunk.finish_reason = choice.finish_reason;
            chunk.logprobs = choice.logprobs.and_then(|l| l.content).map(logprobs);
        }
        Ok(Some(chunk))
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireAnswer>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

/// True for models that take `max_completion_tokens` and reject `temperature`.
pub fn is_reasoning_model(model: &str) -> bool {
    let m = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| {
        m.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

#[derive(Serialize)]
pub(crate) struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<WireFormatSpec<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u8>,
    /// Set for a streamed answer, with `stream_options.include_usage` so the last event says
    /// what it used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<WireStreamOptions>,
}

#[derive(Serialize)]
pub(crate) struct WireStreamOptions {
    pub include_usage: bool,
}

/// `response_format`: `{"type":"json_object"}` or `{"type":"json_schema","json_schema":{...}}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WireFormatSpec<'a> {
    JsonObject,
    JsonSchema { json_schema: WireSchema<'a> },
}

#[derive(Serialize)]
pub(crate) struct WireSchema<'a> {
    pub name: &'a str,
    pub schema: &'a Value,
    pub strict: bool,
}

pub(crate) fn wire_format(f: &ResponseFormat) -> WireFormatSpec<'_> {
    match f {
        ResponseFormat::JsonObject => WireFormatSpec::JsonObject,
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => WireFormatSpec::JsonSchema {
            json_schema: WireSchema {
                name,
                schema,
                strict: *strict,
            },
        },
    }
}

#[derive(Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    pub content: WireContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum WireContent<'a> {
    Text(&'a str),
    /// Escaped once, kept by the prompt.
    System(&'a SystemPrompt),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImage<'a> },
}

#[derive(Serialize)]
pub(crate) struct WireImage<'a> {
    pub url: &'a str,
}

/// A message's content: a plain string for one text part (what every compatible server reads),
/// else a list of text and `image_url` parts.
pub(crate) fn wire_content(parts: &[Part]) -> WireContent<'_> {
    match parts {
        [Part::Text(t)] => WireContent::Text(t),
        parts => WireContent::Parts(
            parts
                .iter()
                .map(|p| match p {
                    Part::Text(text) => WirePart::Text { text },
                    Part::Image(img) => WirePart::ImageUrl {
                        image_url: WireImage { url: &img.url },
                    },
                })
                .collect(),
        ),
    }
}

/// The system prompt as a `system` message, then the conversation (Cohere's v2 messages are
/// the same shape).
pub(crate) fn wire_messages(req: &ChatRequest) -> Vec<WireMessage<'_>> {
    let mut messages = Vec::with_capacity(1 + req.messages.len());
    if let Some(system) = &req.system {
        messages.push(WireMessage {
            role: "system",
            content: WireContent::System(system),
        });
    }
    messages.extend(req.messages.iter().map(|m| WireMessage {
        role: m.role.as_str(),
        content: wire_content(&m.parts),
    }));
    messages
}

/// Builds the OpenAI-shaped body. `model` is `None` for Azure deployments, which take it from the path.
pub(crate) fn wire_request<'a>(req: &'a ChatRequest, model: Option<&'a str>) -> WireRequest<'a> {
    let messages = wire_messages(req);
    let reasoning = is_reasoning_model(&req.model);
    // Reasoning models take no logprobs: they are left out, and the answer comes without them.
    let top_logprobs = req.top_logprobs.filter(|_| !reasoning).map(|n| n.min(20));
    WireRequest {
        model,
        messages,
        temperature: if reasoning { None } else { req.temperature },
        max_tokens: if reasoning { None } else { req.max_tokens },
        max_completion_tokens: if reasoning { req.max_tokens } else { None },
        stop: &req.stop,
        seed: req.seed,
        response_format: req.response_format.as_ref().map(wire_format),
        logprobs: top_logprobs.map(|_| true),
        top_logprobs,
        stream: None,
        stream_options: None,
    }
}

/// The OpenAI-shaped body of a streamed answer.
pub(crate) fn wire_stream_request<'a>(
    req: &'a ChatRequest,
    model: Option<&'a str>,
) -> WireRequest<'a> {
    WireRequest {
        stream: Some(true),
        stream_options: Some(WireStreamOptions {
            include_usage: true,
        }),
        ..wire_request(req, model)
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireAnswer>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

#[derive(Deserialize)]
struct WireLogprobs {
    #[serde(default)]
    content: Option<Vec<WireTokenLogprob>>,
}

#[derive(Deserialize)]
struct WireTokenLogprob {
    token: String,
    logprob: f64,
    #[serde(default)]
    top_logprobs: Vec<WireTop>,
}

#[derive(Deserialize)]
struct WireTop {
    token: String,
    logprob: f64,
}

#[derive(Deserialize)]
struct WireAnswer {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Reads an OpenAI-shaped success body into a [`Completion`].
pub(crate) fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Decode(format!("not a chat completion: {e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Decode("the response has no choices".into()))?;
    let (text, refusal) = match choice.message {
        Some(m) => (content_text(m.content), m.refusal.filter(|r| !r.is_empty())),
        None => (String::new(), None),
    };
    if choice.finish_reason.as_deref() == Some("content_filter") && text.is_empty() {
        return Err(ProviderError::ContentFilter(
            "the provider's content filter withheld the answer".into(),
        ));
    }
    Ok(Completion {
        text,
        usage: wire.usage.map(usage).unwrap_or_default(),
        finish_reason: choice.finish_reason,
        refusal,
        logprobs: choice.logprobs.and_then(|l| l.content).map(logprobs),
    })
}

fn usage(u: WireUsage) -> Usage {
    Usage {
        cached_prompt_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(u.prompt_tokens),
        ..Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

fn logprobs(tokens: Vec<WireTokenLogprob>) -> Vec<TokenLogprob> {
    tokens
        .into_iter()
        .map(|t| TokenLogprob {
            token: t.token,
            logprob: t.logprob,
            top: t
                .top_logprobs
                .into_iter()
                .map(|a| (a.token, a.logprob))
                .collect(),
        })
        .collect()
}

/// `content` is a string, null, or (on some compatible servers) an array of text parts.
fn content_text(content: Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// True when an OpenAI-shaped error body says the content filter refused the prompt.
pub(crate) fn is_content_filter_error(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let code = v.pointer("/error/code").and_then(Value::as_str);
    let inner = v.pointer("/error/inner_error/code").and_then(Value::as_str);
    matches!(
        code,
        Some("content_filter") | Some("content_policy_violation")
    ) || inner == Some("ResponsibleAIPolicyViolation")
}

/// Turns an OpenAI-shaped answer into a [`Completion`] or a typed error.
pub(crate) fn openai_shaped(answer: Answer) -> Result<Completion, ProviderError> {
    if answer.is_success() {
        return parse_response(&answer.body);
    }
    if answer.status == 400 && is_content_filter_error(&answer.body) {
        return Err(ProviderError::ContentFilter(error_message(&answer.body)));
    }
    Err(answer.status_error(error_message(&answer.body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_judge_chat::{ImageRef, Message, Role};

    fn req(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            temperature: Some(0.0),
            max_tokens: Some(16),
            ..ChatRequest::user(Some("sys".into()), vec![Part::Text("hi".into())])
        }
    }

    #[test]
    fn reasoning_models_get_max_completion_tokens_and_no_temperature() {
        for m in [
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-5",
            "gpt-5-mini",
            "openai/o3",
        ] {
            let v = serde_json::to_value(wire_request(&req(m), Some(m))).unwrap();
            assert_eq!(v["max_completion_tokens"], 16, "{m}");
            assert!(v.get("temperature").is_none(), "{m}");
            assert!(v.get("max_tokens").is_none(), "{m}");
        }
        for m in ["gpt-4o", "gpt-4o-mini", "o1x", "llama3.1:8b", "gpt-4.1"] {
            let v = serde_json::to_value(wire_request(&req(m), Some(m))).unwrap();
            assert_eq!(v["max_tokens"], 16, "{m}");
            assert_eq!(v["temperature"], 0.0, "{m}");
        }
    }

    #[test]
    fn images_become_image_url_parts_and_turns_keep_their_roles() {
        let mut r = req("gpt-4o");
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "data:image/png;base64,AAAA".into(),
        }));
        r.messages.push(Message {
            role: Role::Assistant,
            parts: vec![Part::Text("No.".into())],
        });
        r.messages
            .push(Message::user(vec![Part::Text("Sure?".into())]));
        let v = serde_json::to_value(wire_request(&r, Some("gpt-4o"))).unwrap();
        assert_eq!(
            v["messages"],
            serde_json::json!([
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]},
                {"role": "assistant", "content": "No."},
                {"role": "user", "content": "Sure?"}
            ])
        );
    }

    #[test]
    fn parses_refusals_content_arrays_and_content_filters() {
        let refused = br#"{"choices":[{"message":{"content":null,"refusal":"I can't help"},"finish_reason":"stop"}]}"#;
        let c = parse_response(refused).unwrap();
        assert_eq!(c.text, "");
        assert_eq!(c.refusal.as_deref(), Some("I can't help"));
        let parts = br#"{"choices":[{"message":{"content":[{"type":"text","text":"Ye"},{"type":"text","text":"s"}]},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_response(parts).unwrap().text, "Yes");
        assert!(matches!(
            parse_response(br#"{"choices":[]}"#),
            Err(ProviderError::Decode(_))
        ));
        let filtered =
            br#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#;
        assert!(matches!(
            parse_response(filtered),
            Err(ProviderError::ContentFilter(_))
        ));
        assert!(is_content_filter_error(
            br#"{"error":{"code":"content_filter","message":"filtered","param":"prompt","type":null}}"#
        ));
    }

    #[test]
    fn a_local_server_needs_no_key_and_https_does() {
        let local = OpenAi::new("openai", "http://127.0.0.1:11434/v1", None, &[]).unwrap();
        assert!(local.headers().is_some());
        let remote = OpenAi::new("openai", "https://api.openai.com/v1", None, &[]).unwrap();
        assert!(remote.headers().is_none());
        assert_eq!(remote.url(), "https://api.openai.com/v1/chat/completions");
    }

    #[test]
    fn stop_seed_formats_and_logprobs_are_sent_and_read() {
        let mut r = req("gpt-4o");
        r.stop = vec!["\n\n".into()];
        r.seed = Some(7);
        r.top_logprobs = Some(5);
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "verdict".into(),
            schema: serde_json::json!({"type": "object"}),
            strict: true,
        });
        let v = serde_json::to_value(wire_request(&r, Some("gpt-4o"))).unwrap();
        assert_eq!(v["stop"], serde_json::json!(["\n\n"]));
        assert_eq!(v["seed"], 7);
        assert_eq!(
            (v["logprobs"].clone(), v["top_logprobs"].clone()),
            (true.into(), 5.into())
        );
        assert_eq!(
            v["response_format"],
            serde_json::json!({"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}, "strict": true}})
        );
        r.response_format = Some(ResponseFormat::JsonObject);
        r.model = "o3-mini".into();
        let v = serde_json::to_value(wire_request(&r, Some("o3-mini"))).unwrap();
        assert_eq!(
            v["response_format"],
            serde_json::json!({"type": "json_object"})
        );
        assert!(
            v.get("logprobs").is_none() && v.get("top_logprobs").is_none(),
            "{v}"
        );
        let plain = serde_json::to_value(wire_request(&req("gpt-4o"), None)).unwrap();
        for k in [
            "stop",
            "seed",
            "response_format",
            "logprobs",
            "top_logprobs",
        ] {
            assert!(plain.get(k).is_none(), "{k}: {plain}");
        }

        let body = br#"{"choices":[{"message":{"content":"Yes"},"finish_reason":"stop","logprobs":{"content":[{"token":"Yes","logprob":-0.1,"top_logprobs":[{"token":"Yes","logprob":-0.1},{"token":"No","logprob":-2.4}]}]}}],"usage":{"prompt_tokens":2000,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1920}}}"#;
        let c = parse_response(body).unwrap();
        let lp = c.logprobs.unwrap();
        assert_eq!(lp[0].token, "Yes");
        assert_eq!(lp[0].top[1], ("No".to_string(), -2.4));
        assert_eq!(
            (c.usage.prompt_tokens, c.usage.cached_prompt_tokens),
            (2000, 1920)
        );
    }
}
