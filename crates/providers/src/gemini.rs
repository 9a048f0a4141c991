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

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::{Answer, typed_error_message};
use crate::outgoing::{Outgoing, encode_path_segment, fixed_headers, json_body, parse_url};
use crate::wire::WireFormat;
use llm_judge_chat::{
    ChatRequest, Completion, Part, ProviderError, ResponseFormat, Role, TokenLogprob, Usage,
};

/// The Gemini API bound to a base URL and an optional key.
pub struct Gemini {
    base: String,
    /// `x-goog-api-key`, when a key is configured.
    headers: Option<HeaderMap>,
}

impl Gemini {
    pub fn new(base_url: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1beta").unwrap_or(base);
        Ok(Self {
            base: base.to_string(),
            headers: api_key
                .map(|k| fixed_headers(&[("x-goog-api-key", k)], &[]))
                .transpose()?,
        })
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

impl WireFormat for Gemini {
    fn kind(&self) -> &'static str {
        "gemini"
    }

    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    fn encode(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        let body = json_body(&wire_request(req)?)?;
        Ok(Outgoing {
            // The URL names the model, so it is made per call.
            url: parse_url(&self.url(&req.model))?,
            body,
        })
    }

    fn decode(&self, answer: Answer) -> Result<Completion, ProviderError> {
        if answer.is_success() {
            return parse_response(&answer.body);
        }
        let mut e = answer.status_error(typed_error_message(&answer.body, "/error/status"));
        if let ProviderError::Status { retry_after, .. } = &mut e
            && retry_after.is_none()
        {
            *retry_after = retry_delay(&answer.body);
        }
        Err(e)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<WireContent<'a>>,
    contents: Vec<WireContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<WireConfig<'a>>,
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
struct WireConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<u8>,
}

fn parts(parts: &[Part]) -> Result<Vec<WirePart<'_>>, ProviderError> {
    parts
        .iter()
        .map(|part| match part {
            Part::Text(t) => Ok(WirePart::Text(t)),
            Part::Image(img) => {
                let d = img.as_data_url().ok_or_else(|| {
                    ProviderError::Unsupported(
                        "Gemini takes images only as data: URLs (base64); the service does not fetch image URLs".into(),
                    )
                })?;
                Ok(WirePart::InlineData(WireBlob {
                    mime_type: d.mime_type,
                    data: d.base64,
                }))
            }
        })
        .collect()
}

fn wire_request(req: &ChatRequest) -> Result<WireRequest<'_>, ProviderError> {
    let contents = req
        .messages
        .iter()
        .map(|m| {
            Ok(WireContent {
                role: Some(match m.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                }),
                parts: parts(&m.parts)?,
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    let top = req.top_logprobs.map(|n| n.min(20));
    let config = WireConfig {
        temperature: req.temperature,
        max_output_tokens: req.max_tokens,
        stop_sequences: &req.stop,
        seed: req.seed,
        response_mime_type: req.response_format.as_ref().map(|_| "application/json"),
        response_json_schema: match &req.response_format {
            Some(ResponseFormat::JsonSchema { schema, .. }) => Some(schema),
            _ => None,
        },
        response_logprobs: top.map(|_| true),
        logprobs: top,
    };
    let config = (config.temperature.is_some()
        || config.max_output_tokens.is_some()
        || !config.stop_sequences.is_empty()
        || config.seed.is_some()
        || config.response_mime_type.is_some()
        || top.is_some())
    .then_some(config);
    Ok(WireRequest {
        system_instruction: req.system.as_deref().map(|s| WireContent {
            role: None,
            parts: vec![WirePart::Text(s)],
        }),
        contents,
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
    logprobs_result: Option<WireLogprobs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireLogprobs {
    top_candidates: Vec<WireTop>,
    chosen_candidates: Vec<WireCandidateToken>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireTop {
    candidates: Vec<WireCandidateToken>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireCandidateToken {
    token: String,
    log_probability: f64,
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
    cached_content_token_count: u64,
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
    // Logprobs, when asked for: the chosen token at each step with that step's alternatives.
    let logprobs = candidate.logprobs_result.map(|l| {
        let mut tops = l.top_candidates.into_iter();
        l.chosen_candidates
            .into_iter()
            .map(|chosen| TokenLogprob {
                token: chosen.token,
                logprob: chosen.log_probability,
                top: tops
                    .next()
                    .map(|t| {
                        t.candidates
                            .into_iter()
                            .map(|c| (c.token, c.log_probability))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    });
    Ok(Completion {
        text,
        usage: wire
            .usage_metadata
            .map(|u| Usage {
                cached_prompt_tokens: u.cached_content_token_count.min(u.prompt_token_count),
                ..Usage::new(
                    u.prompt_token_count,
                    u.candidates_token_count + u.thoughts_token_count,
                )
            })
            .unwrap_or_default(),
        finish_reason: candidate.finish_reason,
        logprobs,
        ..Completion::default()
    })
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::conformance::{answer, request};
    use llm_judge_chat::{ImageRef, Message};

    fn gemini() -> Gemini {
        Gemini::new(
            "https://generativelanguage.googleapis.com/v1beta/",
            Some("AIza-test"),
        )
        .unwrap()
    }

    #[test]
    fn url_handles_models_prefix_and_encoding() {
        let p = gemini();
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
    fn inline_images_model_turns_and_no_config_when_unset() {
        let mut r = request();
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
        }));
        r.messages.push(Message {
            role: Role::Assistant,
            parts: vec![Part::Text("No.".into())],
        });
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert_eq!(
            v["contents"],
            json!([
                {"role": "user", "parts": [
                    {"text": "Is 2+2=4?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "model", "parts": [{"text": "No."}]}
            ])
        );
        r.system = None;
        r.temperature = None;
        r.max_tokens = None;
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert!(v.get("systemInstruction").is_none() && v.get("generationConfig").is_none());
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        let Err(ProviderError::Unsupported(m)) = wire_request(&r) else {
            panic!("an https image was not refused as Unsupported")
        };
        assert!(m.starts_with("Gemini takes images only as data: URLs"));
    }

    #[test]
    fn thoughts_blocks_and_retry_info() {
        const OK: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Check the sum.","thought":true},{"text":"Yes"},{"text":", 4."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"totalTokenCount":40,"thoughtsTokenCount":25}}"#;
        let c = parse_response(OK.as_bytes()).unwrap();
        assert_eq!(c.text, "Yes, 4.");
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
        // Gemini sends no retry-after: the body's RetryInfo stands in; a header would win.
        let err = r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let e = gemini().decode(answer(429, err)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "HTTP 429: RESOURCE_EXHAUSTED: You exceeded your current quota."
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(37)));
        assert_eq!(retry_delay(br#"{"error":{"details":[]}}"#), None);
    }

    #[test]
    fn stop_seed_schema_logprobs_and_cached_tokens() {
        let mut r = request();
        r.stop = vec!["END".into()];
        r.seed = Some(9);
        r.top_logprobs = Some(3);
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: "verdict".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
        let v = serde_json::to_value(wire_request(&r).unwrap()).unwrap();
        assert_eq!(
            v["generationConfig"],
            json!({"temperature": 0.0, "maxOutputTokens": 16, "stopSequences": ["END"], "seed": 9,
                "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
                "responseLogprobs": true, "logprobs": 3})
        );
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"Yes"}],"role":"model"},"finishReason":"STOP","logprobsResult":{"topCandidates":[{"candidates":[{"token":"Yes","logProbability":-0.05},{"token":"No","logProbability":-3.1}]}],"chosenCandidates":[{"token":"Yes","logProbability":-0.05}]}}],"usageMetadata":{"promptTokenCount":2000,"candidatesTokenCount":1,"cachedContentTokenCount":1500}}"#;
        let c = parse_response(body).unwrap();
        let lp = c.logprobs.unwrap();
        assert_eq!((lp[0].token.as_str(), lp[0].top.len()), ("Yes", 2));
        assert_eq!(lp[0].top[1], ("No".to_string(), -3.1));
        assert_eq!(c.usage.cached_prompt_tokens, 1500);
    }
}
