//! OpenAI Chat Completions adapter; also serves every OpenAI-compatible server (Together, vLLM,
//! Ollama, llama.cpp, OpenRouter, Groq ...) through another base URL.
//!
//! `base_url` includes the API version (`https://api.openai.com/v1`); the adapter appends
//! `/chat/completions`. Reasoning models (o1, o3, o4, gpt-5 ...) get `max_completion_tokens` and no
//! `temperature`; other models get `max_tokens`, which every compatible server understands.

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use reqwest::header::HeaderMap;

use crate::answer::Answer;
use crate::outgoing::{Outgoing, fixed_headers, json_body, parse_url};
use crate::wire::{EventReader, StreamFormat, WireFormat};
use llm_judge_chat::{ChatRequest, Completion, ProviderError};

pub use request::is_reasoning_model;
pub(crate) use request::{WireMessage, wire_messages, wire_request, wire_stream_request};
pub(crate) use response::openai_shaped;
pub(crate) use stream::ChunkReader;

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
            .then(|| fixed_headers(&pairs, extra))
            .transpose()?;
        Ok(Self {
            kind,
            url: parse_url(&url)?,
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
