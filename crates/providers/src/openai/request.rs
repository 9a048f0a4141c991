//! The OpenAI-shaped request body: the conversation as messages, reasoning models' own fields,
//! the answer's format, log probabilities and the streaming switch (shared by every
//! OpenAI-shaped provider, and by Cohere for its messages).

use serde::Serialize;
use serde_json::Value;

use llm_judge_chat::{ChatRequest, Part, ResponseFormat, SystemPrompt};

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
