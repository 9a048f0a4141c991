//! The OpenAI chat-completions request as this service reads it, and its translation into the
//! provider-neutral [`ChatRequest`].
//!
//! Rules:
//! * `system` and `developer` messages, wherever they stand, are joined in order (separated by a
//!   blank line) into the one system prompt; `user` and `assistant` messages are the
//!   conversation, in order. Tool and function messages and tool calls are not supported.
//! * Images are `image_url` parts holding a base64 `data:` URL or an `http(s)` URL (the service
//!   never fetches it; `detail` is not passed on).
//! * `max_completion_tokens` wins over `max_tokens`; `stop` is a string or up to 4 strings;
//!   `logprobs: true` with `top_logprobs` 0 to 20; `n` must be 1; `top_p` must be 1 and the
//!   penalties 0 when given (only temperature is passed on).
//! * Fields that only label a request (`user`, `metadata`, `store`, `service_tier`, ...) are
//!   accepted and not passed on; a field this service does not know is refused, as OpenAI does.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::error::ApiError;
use llm_judge_chat::{ChatRequest, ImageRef, Message, Part, ResponseFormat, Role, SystemPrompt};

/// A chat completion request, as OpenAI's API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "model": "default",
    "messages": [
        {"role": "system", "content": "Grade the answer: reply with Verdict: 1 (correct) or Verdict: 0."},
        {"role": "user", "content": "Question: 2 + 2? Reference: 4. Answer: four."}
    ],
    "temperature": 0
}))]
pub struct ChatCompletionRequest {
    /// A configured route (`default`, `fb`, ... as `GET /v1/models` lists them) or an ad-hoc
    /// route of configured providers, `provider:model[,provider:model...]` (a bare provider
    /// means its default model), tried in order.
    #[schema(example = "default")]
    pub model: String,
    /// The conversation: system or developer instructions, then user and assistant turns.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    /// 0 to 2. At 0 an identical request is answered from the verdict cache.
    // Read as sent (f64) and checked before it is narrowed: 2.0000001 is over 2.
    #[schema(minimum = 0, maximum = 2, value_type = Option<f32>)]
    pub temperature: Option<f64>,
    /// The answer's token budget (also read as `max_completion_tokens`, which wins).
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    /// Sequences that end the answer: one string or up to 4.
    pub stop: Option<Stop>,
    /// A sampling seed, for providers that take one.
    pub seed: Option<i64>,
    pub response_format: Option<RequestFormat>,
    /// Return the answer tokens' log probabilities (from providers that give them).
    pub logprobs: Option<bool>,
    /// With `logprobs`: alternatives per token, 0 to 20.
    #[schema(maximum = 20)]
    pub top_logprobs: Option<u8>,
    /// Only 1.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    /// Answer with server-sent events of `chat.completion.chunk` objects, ending with
    /// `data: [DONE]` (or with an `error` event when the provider fails mid-answer).
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// Only 1 (nucleus sampling is not passed on).
    #[schema(minimum = 1, maximum = 1)]
    pub top_p: Option<f32>,
    /// Only 0.
    #[schema(minimum = 0, maximum = 0)]
    pub frequency_penalty: Option<f32>,
    /// Only 0.
    #[schema(minimum = 0, maximum = 0)]
    pub presence_penalty: Option<f32>,
    /// Accepted and not passed on.
    pub user: Option<String>,
    #[schema(ignore)]
    pub metadata: Option<Value>,
    #[schema(ignore)]
    pub store: Option<bool>,
    #[schema(ignore)]
    pub service_tier: Option<String>,
    #[schema(ignore)]
    pub parallel_tool_calls: Option<bool>,
    #[schema(ignore)]
    pub prompt_cache_key: Option<String>,
    #[schema(ignore)]
    pub safety_identifier: Option<String>,
    /// Not supported; refused when set.
    #[schema(ignore)]
    pub logit_bias: Option<Value>,
    #[schema(ignore)]
    pub tools: Option<Value>,
    #[schema(ignore)]
    pub tool_choice: Option<Value>,
    #[schema(ignore)]
    pub functions: Option<Value>,
    #[schema(ignore)]
    pub function_call: Option<Value>,
    #[schema(ignore)]
    pub modalities: Option<Value>,
    #[schema(ignore)]
    pub audio: Option<Value>,
    #[schema(ignore)]
    pub prediction: Option<Value>,
    #[schema(ignore)]
    pub reasoning_effort: Option<Value>,
    #[schema(ignore)]
    pub verbosity: Option<Value>,
    #[schema(ignore)]
    pub web_search_options: Option<Value>,
}

/// One message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: ChatRole,
    /// Text, or a list of text and image parts (text only for system and developer messages).
    #[schema(value_type = MessageContent)]
    pub content: Option<MessageContent>,
    /// Accepted and not passed on.
    pub name: Option<String>,
    /// An earlier answer's refusal: accepted and not passed on.
    #[schema(ignore)]
    pub refusal: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUrl {
    /// A base64 `data:` URL or an `http(s)` URL.
    pub url: String,
    /// Accepted and not passed on.
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", "json_schema": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema (default: any object).
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// End the stream with a chunk holding the answer's `usage` (and no choices).
    pub include_usage: Option<bool>,
}

/// What the client asked for besides the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
}

/// A field whose value the service cannot take: 400, naming the field.
fn invalid_value(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::InvalidValue {
        field: field.into(),
        message: message.into(),
    }
}

/// A parameter the service does not pass on: 400, naming it.
fn unsupported(field: &str, what: &str) -> ApiError {
    ApiError::UnsupportedParameter {
        field: field.to_string(),
        message: format!("{field}: {what} is not supported by this service"),
    }
}

impl ChatCompletionRequest {
    /// The route, the provider-neutral request and what else was asked for, or the first
    /// problem found.
    pub fn into_chat(self) -> Result<(String, ChatRequest, Wanted), ApiError> {
        self.check_unsupported()?;
        let route = self.model.trim().to_string();
        if route.is_empty() {
            return Err(invalid_value(
                "model",
                "model: name a route, e.g. \"default\" (GET /v1/models lists them)",
            ));
        }
        if let Some(t) = self.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(invalid_value(
                "temperature",
                format!("temperature: {t} is not between 0 and 2"),
            ));
        }
        let max_tokens = max_tokens(self.max_completion_tokens, self.max_tokens)?;
        let stop = stop_sequences(self.stop)?;
        let logprobs = self.logprobs.unwrap_or(false);
        let top_logprobs = top_logprobs(logprobs, self.top_logprobs)?;
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(invalid_value(
                "stream_options",
                "stream_options: only with stream: true",
            ));
        }
        let include_usage = self
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let response_format = response_format(self.response_format)?;
        let (system, messages) = conversation(self.messages)?;
        let req = ChatRequest {
            model: route.clone(),
            system,
            messages,
            temperature: self.temperature.map(|t| t as f32),
            max_tokens,
            stop,
            seed: self.seed,
            response_format,
            top_logprobs,
            ..ChatRequest::default()
        };
        let wanted = Wanted {
            stream,
            include_usage,
            logprobs,
        };
        Ok((route, req, wanted))
    }

    /// Parameters this service does not pass on are refused unless they ask for the default.
    fn check_unsupported(&self) -> Result<(), ApiError> {
        if self.n == Some(0) {
            return Err(invalid_value(
                "n",
                "n: 0 is not a number of choices; it is at least 1 (and only 1 is served)",
            ));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(unsupported("n", "more than one choice"));
        }
        if self.top_p.is_some_and(|p| p != 1.0) {
            return Err(unsupported(
                "top_p",
                "a top_p other than 1 (use temperature)",
            ));
        }
        for (field, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if v.is_some_and(|v| v != 0.0) {
                return Err(unsupported(field, "a penalty other than 0"));
            }
        }
        if self
            .logit_bias
            .as_ref()
            .is_some_and(|v| !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty())))
        {
            return Err(unsupported("logit_bias", "logit_bias"));
        }
        let tool_choice_none = self
            .tool_choice
            .as_ref()
            .is_none_or(|v| v.is_null() || v == "none");
        let empty = |v: &Option<Value>| {
            v.as_ref()
                .is_none_or(|v| v.is_null() || v.as_array().is_some_and(|a| a.is_empty()))
        };
        if !empty(&self.tools) || !empty(&self.functions) || !tool_choice_none {
            return Err(unsupported("tools", "tool and function calling"));
        }
        if self
            .function_call
            .as_ref()
            .is_some_and(|v| !v.is_null() && v != "none")
        {
            return Err(unsupported("function_call", "function calling"));
        }
        if let Some(m) = &self.modalities
            && !m.is_null()
            && *m != serde_json::json!(["text"])
        {
            return Err(unsupported("modalities", "an output other than text"));
        }
        for (field, v, what) in [
            ("audio", &self.audio, "audio output"),
            ("prediction", &self.prediction, "predicted output"),
            (
                "reasoning_effort",
                &self.reasoning_effort,
                "reasoning_effort",
            ),
            ("verbosity", &self.verbosity, "verbosity"),
            ("web_search_options", &self.web_search_options, "web search"),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(unsupported(field, what));
            }
        }
        Ok(())
    }
}

/// The answer's token budget: `max_completion_tokens`, else `max_tokens`; at least 1.
fn max_tokens(
    max_completion_tokens: Option<u32>,
    max_tokens: Option<u32>,
) -> Result<Option<u32>, ApiError> {
    let given = match (max_completion_tokens, max_tokens) {
        (Some(n), _) => Some(("max_completion_tokens", n)),
        (None, Some(n)) => Some(("max_tokens", n)),
        (None, None) => None,
    };
    if let Some((field, 0)) = given {
        return Err(invalid_value(field, format!("{field}: must be at least 1")));
    }
    Ok(given.map(|(_, n)| n))
}

/// The stop sequences: up to 4, none empty.
fn stop_sequences(stop: Option<Stop>) -> Result<Vec<String>, ApiError> {
    let stop = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(invalid_value("stop", "stop: at most 4 sequences"));
    }
    if stop.iter().any(String::is_empty) {
        return Err(invalid_value(
            "stop",
            "stop: a stop sequence may not be empty",
        ));
    }
    Ok(stop)
}

/// Alternatives per answer token: only with `logprobs`, 0 to 20 (0 when not given).
fn top_logprobs(logprobs: bool, top: Option<u8>) -> Result<Option<u8>, ApiError> {
    match top {
        Some(_) if !logprobs => Err(invalid_value(
            "top_logprobs",
            "top_logprobs: needs logprobs: true",
        )),
        Some(n) if n > 20 => Err(invalid_value(
            "top_logprobs",
            format!("top_logprobs: {n} is over 20"),
        )),
        Some(n) => Ok(Some(n)),
        None if logprobs => Ok(Some(0)),
        None => Ok(None),
    }
}

/// The answer's format: text (none), any JSON object, or JSON following a named schema.
fn response_format(format: Option<RequestFormat>) -> Result<Option<ResponseFormat>, ApiError> {
    let s = match format {
        None | Some(RequestFormat::Text) => return Ok(None),
        Some(RequestFormat::JsonObject) => return Ok(Some(ResponseFormat::JsonObject)),
        Some(RequestFormat::JsonSchema { json_schema }) => json_schema,
    };
    let ok = !s.name.is_empty()
        && s.name.len() <= 64
        && s.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(invalid_value(
            "response_format.json_schema.name",
            "response_format.json_schema.name: 1 to 64 letters, digits, _ or -",
        ));
    }
    let schema = s
        .schema
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    if !schema.is_object() {
        return Err(invalid_value(
            "response_format.json_schema.schema",
            "response_format.json_schema.schema: a JSON Schema object",
        ));
    }
    Ok(Some(ResponseFormat::JsonSchema {
        name: s.name,
        schema,
        strict: s.strict.unwrap_or(false),
    }))
}

/// The system prompt (every system and developer message, joined) and the conversation.
fn conversation(
    messages: Vec<ChatMessage>,
) -> Result<(Option<SystemPrompt>, Vec<Message>), ApiError> {
    if messages.is_empty() {
        return Err(invalid_value("messages", "messages: at least one message"));
    }
    let mut system: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let field = format!("messages[{i}].content");
        let Some(content) = m.content else {
            return Err(invalid_value(
                field.clone(),
                format!("{field}: a message needs content"),
            ));
        };
        let role = match m.role {
            ChatRole::System | ChatRole::Developer => {
                system.push(system_text(content, &field)?);
                continue;
            }
            ChatRole::User => Role::User,
            ChatRole::Assistant => Role::Assistant,
        };
        let parts = match content {
            MessageContent::Text(t) => vec![Part::Text(t)],
            MessageContent::Parts(parts) => {
                if parts.is_empty() {
                    return Err(invalid_value(field.clone(), format!("{field}: no parts")));
                }
                let mut out = Vec::with_capacity(parts.len());
                for (j, p) in parts.into_iter().enumerate() {
                    out.push(match p {
                        ContentPart::Text { text } => Part::Text(text),
                        ContentPart::ImageUrl { image_url } => {
                            let field = format!("{field}[{j}].image_url.url");
                            Part::Image(image(image_url.url, &field)?)
                        }
                    });
                }
                out
            }
        };
        out.push(Message { role, parts });
    }
    if out.is_empty() {
        return Err(invalid_value(
            "messages",
            "messages: at least one user message besides the system instructions",
        ));
    }
    let system = (!system.is_empty()).then(|| SystemPrompt::from(system.join("\n\n")));
    Ok((system, out))
}

fn system_text(content: MessageContent, field: &str) -> Result<String, ApiError> {
    match content {
        MessageContent::Text(t) => Ok(t),
        MessageContent::Parts(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for p in parts {
                match p {
                    ContentPart::Text { text } => texts.push(text),
                    ContentPart::ImageUrl { .. } => {
                        return Err(invalid_value(
                            field,
                            format!("{field}: system and developer messages take text only"),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
    }
}

fn image(url: String, field: &str) -> Result<ImageRef, ApiError> {
    let img = ImageRef { url };
    if img.as_data_url().is_some() || img.is_remote() {
        Ok(img)
    } else {
        Err(ApiError::InvalidImage {
            field: field.to_string(),
            message: format!(
                "{field}: an image is a base64 data: URL (data:image/png;base64,...) or an http(s) URL"
            ),
        })
    }
}

#[cfg(test)]
mod tests;
