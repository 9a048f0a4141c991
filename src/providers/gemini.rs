//! Google Gemini API adapter (`POST {base_url}/v1beta/models/{model}:generateContent`).
//!
//! `base_url` has no version (`https://generativelanguage.googleapis.com`); a trailing `/` or
//! `/v1beta` is tolerated. A model given as `models/x` is not doubled, `tunedModels/x` is kept.
//!
//! Decisions:
//! * The key goes only in the `x-goog-api-key` header, never in a `?key=` query, so it cannot end
//!   up in a logged URL. Without a key the adapter returns [`ProviderError::NoCredentials`].
//! * Images: a base64 `data:` URL becomes `inlineData`. Gemini's `fileData` takes Files-API URIs,
//!   not arbitrary web URLs, and this service never fetches client URLs, so an `https:` image is
//!   [`ProviderError::Unsupported`] and nothing is sent.
//! * Text is the join of `candidates[0].content.parts[].text`, skipping `thought: true` parts.
//!   Completion tokens are `candidatesTokenCount + thoughtsTokenCount` (thinking is billed as output).
//! * A blocked prompt (`promptFeedback.blockReason`, no candidates) and a candidate with no text
//!   whose `finishReason` is SAFETY, PROHIBITED_CONTENT, BLOCKLIST, SPII, IMAGE_SAFETY or
//!   IMAGE_PROHIBITED_CONTENT are [`ProviderError::ContentFilter`]. Other empty answers (for example
//!   MAX_TOKENS spent on thinking, RECITATION) are returned as they are, with their finish reason.
//! * Errors `{"error":{"code","message","status"}}` read as `"{status}: {message}"`. Gemini sends no
//!   `retry-after` header; when none is present the `retryDelay` of a `google.rpc.RetryInfo` in
//!   `error.details` (`"37s"`) is used.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::azure::encode_path_segment;
use super::http::HttpClient;
use super::openai::error_message as lenient_error_message;
use super::{
    ChatRequest, Completion, Part, Provider, ProviderError, Usage, clip, parse_retry_after,
    parse_should_retry,
};

/// The Gemini API bound to a base URL and an optional key.
pub struct GeminiProvider {
    client: HttpClient,
    base: String,
    /// `x-goog-api-key`, when a key is configured.
    headers: Option<Result<HeaderMap, ProviderError>>,
}

impl GeminiProvider {
    pub fn new(client: HttpClient, base_url: &str, api_key: Option<String>) -> Self {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1beta").unwrap_or(base);
        Self {
            client,
            base: base.to_string(),
            headers: api_key
                .filter(|k| !k.is_empty())
                .map(|k| super::fixed_headers(&[("x-goog-api-key", &k)])),
        }
    }

    /// The `generateContent` URL for a model (it carries no credentials).
    pub fn url(&self, model: &str) -> String {
        let (collection, id) = match model.strip_prefix("tunedModels/") {
            Some(id) => ("tunedModels", id),
            None => ("models", model.strip_prefix("models/").unwrap_or(model)),
        };
        format!(
            "{}/v1beta/{collection}/{}:generateContent",
            self.base,
            encode_path_segment(id)
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<WireContent<'a>>,
    contents: [WireContent<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<WireConfig>,
}

#[derive(Serialize)]
struct WireContent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum WirePart<'a> {
    // Externally tagged: `{"text":…}` and `{"inlineData":{…}}`, the proto's oneof in JSON.
    Text(&'a str),
    InlineData(WireBlob<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireBlob<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
}

fn wire_request(req: &ChatRequest) -> Result<WireRequest<'_>, ProviderError> {
    let mut parts = Vec::with_capacity(req.user.len());
    for part in &req.user {
        match part {
            Part::Text(t) => parts.push(WirePart::Text(t)),
            Part::Image(img) => {
                let d = img.as_data_url().ok_or_else(|| {
                    ProviderError::Unsupported(
                        "Gemini takes images only as data: URLs (base64); the service does not fetch image URLs".into(),
                    )
                })?;
                parts.push(WirePart::InlineData(WireBlob {
                    mime_type: d.mime_type,
                    data: d.base64,
                }));
            }
        }
    }
    let config = (req.temperature.is_some() || req.max_tokens.is_some()).then_some(WireConfig {
        temperature: req.temperature,
        max_output_tokens: req.max_tokens,
    });
    Ok(WireRequest {
        system_instruction: req.system.as_deref().map(|s| WireContent {
            role: None,
            parts: vec![WirePart::Text(s)],
        }),
        contents: [WireContent {
            role: Some("user"),
            parts,
        }],
        generation_config: config,
    })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireResponse {
    candidates: Vec<WireCandidate>,
    prompt_feedback: Option<WireFeedback>,
    usage_metadata: Option<WireUsage>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireCandidate {
    content: Option<WireAnswer>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireAnswer {
    parts: Vec<WireAnswerPart>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireAnswerPart {
    text: Option<String>,
    thought: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireUsage {
    prompt_token_count: u64,
    candidates_token_count: u64,
    thoughts_token_count: u64,
}

const FILTER_REASONS: [&str; 6] = [
    "SAFETY",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
];

fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Decode(format!("not a generateContent response: {e}")))?;
    let Some(candidate) = wire.candidates.into_iter().next() else {
        return Err(match wire.prompt_feedback.and_then(|f| f.block_reason) {
            Some(reason) => {
                ProviderError::ContentFilter(format!("Gemini blocked the prompt ({reason})"))
            }
            None => ProviderError::Decode("the response has no candidates".into()),
        });
    };
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.thought)
        .filter_map(|p| p.text)
        .collect();
    if let Some(reason) = candidate.finish_reason.as_deref()
        && text.is_empty()
        && FILTER_REASONS.contains(&reason)
    {
        return Err(ProviderError::ContentFilter(format!(
            "Gemini withheld the answer ({reason})"
        )));
    }
    Ok(Completion {
        text,
        usage: wire
            .usage_metadata
            .map(|u| Usage {
                prompt_tokens: u.prompt_token_count,
                completion_tokens: u.candidates_token_count + u.thoughts_token_count,
            })
            .unwrap_or_default(),
        finish_reason: candidate.finish_reason,
        refusal: None,
    })
}

/// Reads `{"error":{"code","message","status"}}` as `"{status}: {message}"`, other bodies leniently.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(msg) = v.pointer("/error/message").and_then(Value::as_str)
    {
        return match v.pointer("/error/status").and_then(Value::as_str) {
            Some(status) => clip(&format!("{status}: {msg}"), 500),
            None => clip(msg, 500),
        };
    }
    lenient_error_message(body)
}

/// The `retryDelay` (`"37s"`, `"0.5s"`) of a `google.rpc.RetryInfo` in `error.details`.
fn retry_delay(body: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let is_retry_info = |d: &&Value| {
        let kind = d.get("@type").and_then(Value::as_str);
        kind.is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
    };
    let info = v
        .pointer("/error/details")?
        .as_array()?
        .iter()
        .find(is_retry_info)?;
    let secs: f64 = info
        .get("retryDelay")?
        .as_str()?
        .strip_suffix('s')?
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

impl Provider for GeminiProvider {
    fn kind(&self) -> &'static str {
        "gemini"
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
            // The URL names the model, so it is parsed per call.
            let url = super::parse_url(&self.url(&req.model))?;
            let body = wire_request(req)?;
            let (status, headers, bytes) = self.client.post_json(&url, headers, &body).await?;
            if (200..300).contains(&status) {
                return parse_response(&bytes);
            }
            Err(ProviderError::Status {
                status,
                message: error_message(&bytes),
                retry_after: parse_retry_after(&headers).or_else(|| retry_delay(&bytes)),
                should_retry: parse_should_retry(&headers),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::providers::ImageRef;

    fn req() -> ChatRequest {
        ChatRequest {
            model: "gemini-2.5-flash".into(),
            system: Some("You are a strict grader.".into()),
            user: vec![Part::Text("Is 2+2=4?".into())],
            temperature: Some(0.0),
            max_tokens: Some(64),
            grading: None,
        }
    }

    fn provider(base: &str) -> GeminiProvider {
        GeminiProvider::new(HttpClient::default(), base, Some("AIza-test".into()))
    }

    const OK: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Check the sum.","thought":true},{"text":"Yes"},{"text":", 4."}],"role":"model"},"finishReason":"STOP","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"NEGLIGIBLE"}]}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"totalTokenCount":40,"thoughtsTokenCount":25},"modelVersion":"gemini-2.5-flash","responseId":"mD2qaN3kDpS"}"#;

    #[test]
    fn url_handles_models_prefix_and_encoding() {
        let p = provider("https://generativelanguage.googleapis.com/v1beta/");
        let want = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent";
        assert_eq!(p.url("gemini-2.5-flash"), want);
        assert_eq!(p.url("models/gemini-2.5-flash"), want);
        let tuned = p.url("tunedModels/my-tune");
        assert!(tuned.ends_with("/v1beta/tunedModels/my-tune:generateContent"));
        assert!(
            p.url("a/b?c")
                .ends_with("/models/a%2Fb%3Fc:generateContent")
        );
    }

    #[test]
    fn body_is_camel_case_with_inline_images() {
        let mut r = req();
        r.user.push(Part::Image(ImageRef {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
        }));
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({
                "systemInstruction": {"parts": [{"text": "You are a strict grader."}]},
                "contents": [{"role": "user", "parts": [
                    {"text": "Is 2+2=4?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
                ]}],
                "generationConfig": {"temperature": 0.0, "maxOutputTokens": 64}
            })
        );
        r.system = None;
        r.temperature = None;
        r.max_tokens = None;
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert!(v.get("systemInstruction").is_none() && v.get("generationConfig").is_none());
        r.user.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        let Err(ProviderError::Unsupported(m)) = wire_request(&r) else {
            panic!("an https image was not refused as Unsupported")
        };
        assert!(m.starts_with("Gemini takes images only as data: URLs"));
    }

    #[test]
    fn parses_text_usage_blocks_and_errors() {
        let c = parse_response(OK.as_bytes()).unwrap();
        assert_eq!(c.text, "Yes, 4.");
        assert_eq!(c.finish_reason.as_deref(), Some("STOP"));
        assert_eq!((c.usage.prompt_tokens, c.usage.completion_tokens), (12, 28));
        let blocked = br#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#;
        assert!(
            matches!(parse_response(blocked), Err(ProviderError::ContentFilter(m)) if m.contains("PROHIBITED_CONTENT"))
        );
        let unsafe_answer = br#"{"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]}]}"#;
        assert_eq!(
            parse_response(unsafe_answer).unwrap_err().kind(),
            "content_filter"
        );
        let thinking_only = br#"{"candidates":[{"content":{"role":"model"},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":9,"thoughtsTokenCount":64}}"#;
        let c = parse_response(thinking_only).unwrap();
        assert_eq!((c.text.as_str(), c.usage.completion_tokens), ("", 64));
        assert_eq!(parse_response(b"{}").unwrap_err().kind(), "decode_error");
        let err = br#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(
            error_message(err),
            "RESOURCE_EXHAUSTED: You exceeded your current quota."
        );
        assert_eq!(retry_delay(err), Some(Duration::from_secs(37)));
        assert_eq!(retry_delay(br#"{"error":{"details":[]}}"#), None);
    }

    #[tokio::test]
    async fn sends_key_header_only_and_exact_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
            .and(header("x-goog-api-key", "AIza-test"))
            .and(header("content-type", "application/json"))
            .and(|r: &Request| r.url.query().is_none() && !r.headers.contains_key("authorization"))
            .and(body_json(json!({
                "systemInstruction": {"parts": [{"text": "You are a strict grader."}]},
                "contents": [{"role": "user", "parts": [{"text": "Is 2+2=4?"}]}],
                "generationConfig": {"temperature": 0.0, "maxOutputTokens": 64}
            })))
            .respond_with(ResponseTemplate::new(200).set_body_raw(OK, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
        let mut r = req();
        r.model = "models/gemini-2.5-flash".into();
        let c = provider(&server.uri()).chat(&r).await.unwrap();
        assert_eq!(c.text, "Yes, 4.");
        assert_eq!(c.usage.total(), 40);
    }

    #[tokio::test]
    async fn blocked_prompt_rate_limit_https_image_and_no_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
            .and(header("x-goog-api-key", "AIza-test"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH"}]}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}})))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
            .and(header("x-goog-api-key", "AIza-test"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "5")
                    .set_body_json(json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let p = provider(&server.uri());
        assert_eq!(p.kind(), "gemini");
        assert!(
            matches!(p.chat(&req()).await, Err(ProviderError::ContentFilter(m)) if m.contains("SAFETY"))
        );
        let err = p.chat(&req()).await.unwrap_err();
        assert_eq!(err.kind(), "rate_limited");
        // The retry-after header wins over the body's RetryInfo.
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
        assert!(err.is_retryable());
        assert!(!err.to_string().contains("AIza-test"));
        let mut r = req();
        r.user.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        assert_eq!(p.chat(&r).await.unwrap_err().kind(), "unsupported");
        let keyless = GeminiProvider::new(HttpClient::default(), &server.uri(), None);
        assert!(!keyless.has_credentials() && p.has_credentials());
        assert_eq!(
            keyless.chat(&req()).await,
            Err(ProviderError::NoCredentials)
        );
        // The block and the 429; neither the https image nor the keyless call reached the server.
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }
}
