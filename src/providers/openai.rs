//! OpenAI Chat Completions adapter; also serves every OpenAI-compatible server (Together, vLLM,
//! Ollama, llama.cpp, OpenRouter, Groq ...) through another base URL.
//!
//! `base_url` includes the API version (`https://api.openai.com/v1`); the adapter appends
//! `/chat/completions`. Reasoning models (o1, o3, o4, gpt-5 ...) get `max_completion_tokens` and no
//! `temperature`; other models get `max_tokens`, which every compatible server understands.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{Answer, HttpClient};
use super::{
    ChatRequest, Completion, Part, Provider, ProviderError, SystemPrompt, Usage, clip,
    parse_retry_after, parse_should_retry,
};

/// An OpenAI-wire provider bound to a base URL and an optional key.
///
/// The URL and the headers are parsed once here, not per request: per judged item, the
/// per-request parse of the URL and of the `Authorization` header was measurable CPU.
pub struct OpenAiProvider {
    kind: &'static str,
    client: HttpClient,
    url: String,
    parsed: Result<reqwest::Url, ProviderError>,
    has_key: bool,
    headers: Result<HeaderMap, ProviderError>,
}

impl OpenAiProvider {
    /// `kind` is the wire-format label reported in metrics (`openai` or `together`).
    pub fn new(
        kind: &'static str,
        client: HttpClient,
        base_url: &str,
        api_key: Option<String>,
    ) -> Self {
        let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
        let api_key = api_key.filter(|k| !k.is_empty());
        let headers = match &api_key {
            Some(key) => super::fixed_headers(&[("authorization", &format!("Bearer {key}"))]),
            None => Ok(HeaderMap::new()),
        };
        Self {
            kind,
            client,
            parsed: super::parse_url(&url),
            url,
            has_key: api_key.is_some(),
            headers,
        }
    }

    /// Headers sent with every request (e.g. `OpenAI-Organization`).
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        if let Ok(map) = &mut self.headers {
            super::extend_headers(map, &headers);
        }
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }
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

/// Builds the OpenAI-shaped body. `model` is `None` for Azure deployments, which take it from the path.
pub(crate) fn wire_request<'a>(req: &'a ChatRequest, model: Option<&'a str>) -> WireRequest<'a> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &req.system {
        messages.push(WireMessage {
            role: "system",
            content: WireContent::System(system),
        });
    }
    let content = match req.user.as_slice() {
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
    };
    messages.push(WireMessage {
        role: "user",
        content,
    });
    let reasoning = is_reasoning_model(&req.model);
    WireRequest {
        model,
        messages,
        temperature: if reasoning { None } else { req.temperature },
        max_tokens: if reasoning { None } else { req.max_tokens },
        max_completion_tokens: if reasoning { req.max_tokens } else { None },
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
        usage: wire
            .usage
            .map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            })
            .unwrap_or_default(),
        finish_reason: choice.finish_reason,
        refusal,
    })
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

/// Reads an error body: `{"error":{"message",...}}` (OpenAI, Azure, Together, recent vLLM), the
/// top-level `{"object":"error","message"}` of older vLLM, `{"message"}`, `{"detail"}`, or plain text.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error").filter(|e| e.is_string()),
            v.get("message"),
            v.get("detail"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                return clip(s, 500);
            }
            if !c.is_null() {
                return clip(&c.to_string(), 500);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error body".into()
    } else {
        clip(text, 500)
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
pub(crate) fn openai_shaped((status, headers, body): Answer) -> Result<Completion, ProviderError> {
    if (200..300).contains(&status) {
        return parse_response(&body);
    }
    if status == 400 && is_content_filter_error(&body) {
        return Err(ProviderError::ContentFilter(error_message(&body)));
    }
    Err(ProviderError::Status {
        status,
        message: error_message(&body),
        retry_after: parse_retry_after(&headers),
        should_retry: parse_should_retry(&headers),
    })
}

impl Provider for OpenAiProvider {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn has_credentials(&self) -> bool {
        // Local compatible servers (Ollama, llama.cpp, vLLM without --api-key) need no key.
        self.has_key || !self.url.starts_with("https://")
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        async move {
            let url = self.parsed.as_ref().map_err(Clone::clone)?;
            let headers = self.headers.as_ref().map_err(Clone::clone)?;
            let body = wire_request(req, Some(&req.model));
            openai_shaped(self.client.post_json(url, headers, &body).await?)
        }
        .boxed()
    }
}

/// A default per-attempt timeout for clients built without configuration (tests).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ImageRef;

    fn req(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            system: Some("sys".into()),
            user: vec![Part::Text("hi".into())],
            temperature: Some(0.0),
            max_tokens: Some(16),
            grading: None,
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
    fn images_become_image_url_parts() {
        let mut r = req("gpt-4o");
        r.user.push(Part::Image(ImageRef {
            url: "data:image/png;base64,AAAA".into(),
        }));
        let v = serde_json::to_value(wire_request(&r, Some("gpt-4o"))).unwrap();
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(v["messages"][1]["content"][0]["type"], "text");
        assert_eq!(v["messages"][1]["content"][1]["type"], "image_url");
        assert_eq!(
            v["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
    }

    #[test]
    fn parses_text_usage_refusal_and_errors() {
        let ok = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Yes","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}"#;
        let c = parse_response(ok).unwrap();
        assert_eq!(c.text, "Yes");
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 1
            }
        );
        let refused = br#"{"choices":[{"message":{"content":null,"refusal":"I can't help"},"finish_reason":"stop"}]}"#;
        let c = parse_response(refused).unwrap();
        assert_eq!(c.text, "");
        assert_eq!(c.refusal.as_deref(), Some("I can't help"));
        assert!(matches!(
            parse_response(b"{not json"),
            Err(ProviderError::Decode(_))
        ));
        assert!(matches!(
            parse_response(br#"{"choices":[]}"#),
            Err(ProviderError::Decode(_))
        ));
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#),
            "bad key"
        );
        // older vLLM: top-level error object
        assert_eq!(
            error_message(br#"{"object":"error","message":"model not found","type":"NotFoundError","param":null,"code":404}"#),
            "model not found"
        );
        assert_eq!(error_message(b"<html>502</html>"), "<html>502</html>");
        assert!(is_content_filter_error(
            br#"{"error":{"code":"content_filter","message":"filtered","param":"prompt","type":null}}"#
        ));
    }
}
