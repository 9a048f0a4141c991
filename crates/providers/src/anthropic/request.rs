//! The Messages request body: the conversation as content blocks (images as base64 or URL
//! sources), the system prompt marked for the prompt cache when long enough, Anthropic's
//! required `max_tokens`, and a structured answer asked for as one forced tool call.

use serde::Serialize;

use llm_judge_chat::{ChatRequest, Part, ProviderError, ResponseFormat, SystemPrompt};

/// The `max_tokens` sent when the request sets none (Anthropic requires the field): the one
/// every estimate counts.
pub use llm_judge_chat::DEFAULT_MAX_TOKENS;

#[derive(Serialize)]
pub(super) struct WireRequest<'a> {
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
    pub(super) stream: Option<bool>,
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

pub(super) fn wire_request(
    req: &ChatRequest,
    prompt_cache: bool,
) -> Result<WireRequest<'_>, ProviderError> {
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
