//! Reading OpenAI's streamed `chat.completion.chunk` events into the pieces of an answer.

use serde::Deserialize;
use serde_json::Value;

use super::response::{WireAnswer, WireLogprobs, WireUsage, content_text, logprobs, usage};
use crate::wire::{EventReader, stream_error};
use llm_judge_chat::{Chunk, ProviderError};

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
            return Err(stream_error(kind, message.to_string()));
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
