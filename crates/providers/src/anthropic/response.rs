//! Reading a Messages answer: the text blocks (or a forced tool call's input), usage with the
//! prompt cache's reads and writes, and a refusal stop as a content-filter error.

use serde::Deserialize;

use llm_judge_chat::{Completion, ProviderError, Usage};

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
pub(super) struct WireContent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
    /// A `tool_use` block's input: the structured answer.
    #[serde(default)]
    input: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    pub(super) output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

pub(super) fn usage(u: WireUsage) -> Usage {
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    let read = u.cache_read_input_tokens.unwrap_or(0);
    Usage {
        cached_prompt_tokens: read,
        cache_write_tokens: written,
        ..Usage::new(u.input_tokens + written + read, u.output_tokens)
    }
}

pub(super) fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
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
