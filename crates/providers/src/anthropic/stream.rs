//! Reading Anthropic's streamed message events into the pieces of an answer.

use serde::Deserialize;

use super::response::{WireContent, WireUsage, usage};
use crate::wire::{EventReader, stream_error};
use llm_judge_chat::{Chunk, ProviderError, Usage};

/// Reads Anthropic's message events: text (and a structured answer's JSON) from
/// `content_block_delta`, the stop reason and usage from `message_start` and `message_delta`,
/// the end at `message_stop`; an `error` event (e.g. `overloaded_error`) is the error it names.
#[derive(Default)]
pub(super) struct EventsReader {
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
                Err(stream_error(Some(&kind), message))
            }
            // ping, content_block_stop, and event types added later.
            _ => Ok(None),
        }
    }

    fn done(&self) -> bool {
        self.done
    }
}
