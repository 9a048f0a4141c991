//! Provider-neutral chat types: the request every judge call becomes, the completion every
//! provider answer is read into, token usage, and the typed reasons a call fails.
//!
//! These types belong to no wire format. `judge/` builds a [`ChatRequest`], `pool/` delivers it
//! along a route, and each adapter in `providers/` turns it into its own HTTP request and reads its
//! own answer back into a [`Completion`] or a [`ProviderError`].

mod secret;

pub use secret::Secret;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    User,
    Assistant,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image given by the client as a `data:` URL or an `https:` URL. The service never fetches it.
    Image(ImageRef),
}

/// One message of the conversation after the system prompt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    /// A user message of the given parts.
    pub fn user(parts: Vec<Part>) -> Message {
        Message {
            role: Role::User,
            parts,
        }
    }

    /// The message's text parts joined by newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            if let Part::Text(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

/// An image reference as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub url: String,
}

/// The decoded parts of a `data:<mime>;base64,<data>` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct DataUrl<'a> {
    pub mime_type: &'a str,
    pub base64: &'a str,
}

impl ImageRef {
    /// The media type and base64 payload when this is a base64 `data:` URL.
    pub fn as_data_url(&self) -> Option<DataUrl<'_>> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        Some(DataUrl {
            mime_type: if mime.is_empty() {
                "application/octet-stream"
            } else {
                mime
            },
            base64: data,
        })
    }

    /// True for an `https://` (or `http://`) URL the provider may fetch itself.
    pub fn is_remote(&self) -> bool {
        self.url.starts_with("https://") || self.url.starts_with("http://")
    }
}

/// What a deterministic (non-LLM) provider needs to grade without reading the prompt.
/// LLM adapters ignore it.
#[derive(Debug, Clone, PartialEq)]
pub enum GradingTask {
    Binary {
        question: String,
        reference: String,
        prediction: String,
    },
    Score {
        question: String,
        reference: Option<String>,
        prediction: String,
        min: f64,
        max: f64,
    },
    Compare {
        question: String,
        reference: Option<String>,
        response_a: String,
        response_b: String,
    },
}

/// A deterministic grader behind the `rules` provider: it answers a [`GradingTask`] with the
/// text a model would have given (the JSON the verdict parsers read).
pub trait Grader: Send + Sync + 'static {
    fn grade(&self, task: &GradingTask) -> String;
}

/// A system prompt, shared by every request that uses it, with its JSON string form made on first
/// use and kept. A template's instructions go out with every item; escaping them again for each
/// request costs more than the rest of the request body.
#[derive(Clone)]
pub struct SystemPrompt(Arc<SystemInner>);

struct SystemInner {
    text: Box<str>,
    json: OnceLock<Box<RawValue>>,
}

impl SystemPrompt {
    pub fn new(text: impl Into<Box<str>>) -> Self {
        SystemPrompt(Arc::new(SystemInner {
            text: text.into(),
            json: OnceLock::new(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The text as a JSON string, escaped once.
    pub fn json(&self) -> &RawValue {
        self.0.json.get_or_init(|| {
            serde_json::value::to_raw_value(&*self.0.text).expect("a string serialises")
        })
    }
}

impl std::ops::Deref for SystemPrompt {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SystemPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for SystemPrompt {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// Serialises as the JSON string it holds (serde_json only: that is every wire format here).
impl Serialize for SystemPrompt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(serializer)
    }
}

impl From<&str> for SystemPrompt {
    fn from(text: &str) -> Self {
        SystemPrompt::new(text)
    }
}

impl From<String> for SystemPrompt {
    fn from(text: String) -> Self {
        SystemPrompt::new(text)
    }
}

/// A provider-neutral chat request: an optional system prompt and the conversation after it (a
/// judge sends one user message).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// Set per route step: each step names its own model.
    pub model: String,
    /// Shared: a template's instructions are the same for every item.
    pub system: Option<SystemPrompt>,
    pub messages: Vec<Message>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer where the provider supports them.
    pub stop: Vec<String>,
    /// A sampling seed, for providers that take one (best-effort determinism).
    pub seed: Option<i64>,
    /// The shape the answer must have, where the provider can enforce it.
    pub response_format: Option<ResponseFormat>,
    /// Ask for the log probability of every answer token, with this many alternatives each
    /// (0 to 20), from providers that return them.
    pub top_logprobs: Option<u8>,
    /// The system prompt is a fixed prefix shared by many calls: mark it for the provider's
    /// prompt cache where caching is explicit (Anthropic) and the prefix is long enough.
    pub cache_system: bool,
    /// Set by the judge layer so deterministic providers can grade the raw fields.
    pub grading: Option<GradingTask>,
}

/// The shape an answer must have.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// A JSON object valid against `schema` (a JSON Schema) named `name`; `strict` asks the
    /// provider to enforce it exactly where it can.
    JsonSchema {
        name: String,
        schema: serde_json::Value,
        strict: bool,
    },
}

impl ChatRequest {
    /// A request of one user message.
    pub fn user(system: Option<SystemPrompt>, parts: Vec<Part>) -> ChatRequest {
        ChatRequest {
            system,
            messages: vec![Message::user(parts)],
            ..ChatRequest::default()
        }
    }

    /// Every image of every message.
    pub fn images(&self) -> impl Iterator<Item = &ImageRef> {
        self.messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .filter_map(|p| match p {
                Part::Image(i) => Some(i),
                Part::Text(_) => None,
            })
    }

    /// A rough token estimate (4 bytes per token, plus a fixed cost per image) used before the
    /// call, for tokens-per-minute limits.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let text: usize = self.system.as_deref().map_or(0, str::len)
            + self
                .messages
                .iter()
                .flat_map(|m| m.parts.iter())
                .map(|p| match p {
                    Part::Text(t) => t.len(),
                    Part::Image(_) => 0,
                })
                .sum::<usize>();
        Self::prompt_tokens_of(text, self.images().count())
    }

    /// The prompt estimate of `text_bytes` of text and `images` images, by the rule of
    /// [`ChatRequest::estimated_prompt_tokens`].
    pub fn prompt_tokens_of(text_bytes: usize, images: usize) -> u64 {
        (text_bytes as u64).div_ceil(4) + 765 * images as u64
    }

    /// What the call may cost in tokens at most: the prompt estimate plus the completion budget
    /// (512 when the request sets none).
    pub fn estimated_tokens(&self) -> u64 {
        self.estimated_prompt_tokens() + u64::from(self.max_tokens.unwrap_or(512))
    }
}

/// Token usage in one shape for every provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Every input token, cached ones included.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache (billed at a discount); part of
    /// `prompt_tokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_prompt_tokens: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic bills them at a premium);
    /// part of `prompt_tokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Prompt and completion tokens without cache detail.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            ..Usage::default()
        }
    }

    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_prompt_tokens += other.cached_prompt_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    /// The answer text (empty when the model answered nothing).
    pub text: String,
    pub usage: Usage,
    /// The provider's finish reason as it sent it (`stop`, `length`, `end_turn`, `content_filter` ...).
    pub finish_reason: Option<String>,
    /// A refusal the provider reported in a field of its own (OpenAI `message.refusal`).
    pub refusal: Option<String>,
    /// The answer's tokens with their log probabilities, when asked for and returned.
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// One answer token's log probability and the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    /// The alternatives, most likely first (the chosen token usually among them).
    pub top: Vec<(String, f64)>,
}

/// How an answer ended, in the terms every caller needs (the providers' own words vary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model finished (or met a stop sequence).
    Stop,
    /// The token budget ran out.
    Length,
    /// A provider-side filter withheld or cut the answer.
    ContentFilter,
}

impl Finish {
    /// Reads a provider's finish reason (`stop`, `end_turn`, `COMPLETE`, `max_tokens`,
    /// `SAFETY` ...); no reason, or one of no known kind, is a normal stop.
    pub fn of(reason: Option<&str>) -> Finish {
        match reason {
            Some("length" | "max_tokens" | "MAX_TOKENS" | "model_length") => Finish::Length,
            Some(
                "content_filter" | "refusal" | "SAFETY" | "RECITATION" | "BLOCKLIST"
                | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
            ) => Finish::ContentFilter,
            _ => Finish::Stop,
        }
    }
}

/// One piece of a streamed answer, as much of it as one provider event carried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    pub text: String,
    /// The log probabilities of this piece's tokens, when asked for and sent.
    pub logprobs: Option<Vec<TokenLogprob>>,
    pub refusal: Option<String>,
    /// Set on the piece that ends the answer.
    pub finish_reason: Option<String>,
    /// The answer's usage so far (providers send it near the end; the last one counts).
    pub usage: Option<Usage>,
}

impl Chunk {
    /// True when the piece carries nothing (a role announcement, a keep-alive).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
            && self.logprobs.as_ref().is_none_or(Vec::is_empty)
            && self.refusal.is_none()
            && self.finish_reason.is_none()
            && self.usage.is_none()
    }

    /// A whole completion as the one piece of a stream.
    pub fn whole(c: Completion) -> Chunk {
        Chunk {
            text: c.text,
            logprobs: c.logprobs,
            refusal: c.refusal,
            finish_reason: Some(c.finish_reason.unwrap_or_else(|| "stop".into())),
            usage: Some(c.usage),
        }
    }
}

/// How a streamed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The provider sent the whole answer.
    Complete,
    /// The provider's stream broke or reported an error before the end.
    Failed,
    /// The reader went away before the end (the client disconnected).
    Abandoned,
}

impl StreamOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamOutcome::Complete => "complete",
            StreamOutcome::Failed => "failed",
            StreamOutcome::Abandoned => "abandoned",
        }
    }
}

/// What is known when a stream ends: its outcome and the last usage the provider sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamEnd {
    pub outcome: StreamOutcome,
    pub usage: Option<Usage>,
}

type Finaliser = Box<dyn FnOnce(&StreamEnd) + Send>;

/// A streamed answer: the provider's pieces as they arrive, ending after the last one or after
/// the first error. Whoever passes it on can ask to be told how it ended ([`ChatStream::on_end`])
/// and can tie something to its life ([`ChatStream::hold`]), such as a concurrency slot: the
/// provider is busy with the call until its stream ends.
pub struct ChatStream {
    inner: futures::stream::BoxStream<'static, Result<Chunk, ProviderError>>,
    usage: Option<Usage>,
    ended: bool,
    finalisers: Vec<Finaliser>,
    held: Vec<Box<dyn std::any::Any + Send>>,
}

impl ChatStream {
    pub fn new(
        inner: impl futures::Stream<Item = Result<Chunk, ProviderError>> + Send + 'static,
    ) -> ChatStream {
        ChatStream {
            inner: Box::pin(inner),
            usage: None,
            ended: false,
            finalisers: Vec::new(),
            held: Vec::new(),
        }
    }

    /// A whole completion as a stream of one piece.
    pub fn whole(c: Completion) -> ChatStream {
        ChatStream::new(futures::stream::iter([Ok(Chunk::whole(c))]))
    }

    /// Runs `f` once, when the stream ends however it ends (dropped unfinished included).
    /// Finalisers run in the order they were added.
    pub fn on_end(mut self, f: impl FnOnce(&StreamEnd) + Send + 'static) -> ChatStream {
        self.finalisers.push(Box::new(f));
        self
    }

    /// Keeps `guard` alive until the stream ends.
    pub fn hold(mut self, guard: impl Send + 'static) -> ChatStream {
        self.held.push(Box::new(guard));
        self
    }

    /// Calls `f` with every piece that goes through, before the reader gets it.
    pub fn inspect(mut self, f: impl FnMut(&Chunk) + Send + 'static) -> ChatStream {
        use futures::StreamExt;
        let mut f = f;
        let inner = std::mem::replace(&mut self.inner, Box::pin(futures::stream::empty()));
        self.inner = Box::pin(inner.inspect(move |r| {
            if let Ok(c) = r {
                f(c)
            }
        }));
        self
    }

    fn end(&mut self, outcome: StreamOutcome) {
        if self.ended {
            return;
        }
        self.ended = true;
        let end = StreamEnd {
            outcome,
            usage: self.usage,
        };
        for f in self.finalisers.drain(..) {
            f(&end);
        }
        self.held.clear();
    }
}

impl futures::Stream for ChatStream {
    type Item = Result<Chunk, ProviderError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(c))) => {
                if let Some(u) = c.usage {
                    self.usage = Some(u);
                }
                Poll::Ready(Some(Ok(c)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(StreamOutcome::Failed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.end(StreamOutcome::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        self.end(StreamOutcome::Abandoned);
    }
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Why a call failed, typed so the pool can decide to retry, fall back or stop.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderError {
    /// The provider answered with a non-success status.
    Status {
        status: u16,
        /// The provider's own error message (never contains our credentials).
        message: String,
        /// From `retry-after-ms` / `retry-after` (seconds or HTTP date).
        retry_after: Option<Duration>,
        /// From `x-should-retry`.
        should_retry: Option<bool>,
    },
    /// No answer within the per-attempt timeout (or no connection within the connect timeout).
    Timeout,
    /// The connection could not be made or broke.
    Connect(String),
    /// The provider's TLS certificate was not accepted (an untrusted or private CA, a wrong host
    /// name): another attempt would fail the same way.
    Tls(String),
    /// The answer could not be read (malformed JSON, missing fields).
    Decode(String),
    /// The provider refused on content grounds (content filter, safety block).
    ContentFilter(String),
    /// The provider has no credentials configured.
    NoCredentials,
    /// The provider cannot do what was asked (for example an image sent to a text-only provider).
    Unsupported(String),
}

impl ProviderError {
    /// A short, bounded label for metrics and attempt records.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Status { status: 429, .. } => "rate_limited",
            ProviderError::Status { status, .. } if *status >= 500 => "server_error",
            ProviderError::Status { .. } => "client_error",
            ProviderError::Timeout => "timeout",
            ProviderError::Connect(_) => "connect_error",
            ProviderError::Tls(_) => "tls_error",
            ProviderError::Decode(_) => "decode_error",
            ProviderError::ContentFilter(_) => "content_filter",
            ProviderError::NoCredentials => "no_credentials",
            ProviderError::Unsupported(_) => "unsupported",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether another attempt at the same provider could succeed: 408, 409, 429, 5xx, timeouts and
    /// connection errors, unless the provider said `x-should-retry: false` (or `true`, which wins).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status {
                status,
                should_retry,
                ..
            } => match should_retry {
                Some(v) => *v,
                None => matches!(status, 408 | 409 | 429) || *status >= 500,
            },
            ProviderError::Timeout | ProviderError::Connect(_) => true,
            // A malformed body is often a truncated or proxied answer; one more try is cheap.
            ProviderError::Decode(_) => true,
            ProviderError::Tls(_)
            | ProviderError::ContentFilter(_)
            | ProviderError::NoCredentials
            | ProviderError::Unsupported(_) => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Failures that say the provider is unwell (they count towards opening its circuit).
    pub fn is_provider_fault(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => *status >= 500 || *status == 408,
            ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::Decode(_) => true,
            _ => false,
        }
    }

    /// The error with `secret` replaced by `[redacted]` in its text and the text then clipped to
    /// `max` bytes. Scrubbing comes first: a secret straddling the cut would otherwise keep its
    /// first characters.
    pub fn redacted(self, secret: Option<&str>, max: usize) -> ProviderError {
        let fix = |s: String| clip(&scrub(s, secret), max);
        match self {
            ProviderError::Status {
                status,
                message,
                retry_after,
                should_retry,
            } => ProviderError::Status {
                status,
                message: fix(message),
                retry_after,
                should_retry,
            },
            ProviderError::Connect(m) => ProviderError::Connect(fix(m)),
            ProviderError::Tls(m) => ProviderError::Tls(fix(m)),
            ProviderError::Decode(m) => ProviderError::Decode(fix(m)),
            ProviderError::ContentFilter(m) => ProviderError::ContentFilter(fix(m)),
            ProviderError::Unsupported(m) => ProviderError::Unsupported(fix(m)),
            e @ (ProviderError::Timeout | ProviderError::NoCredentials) => e,
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            ProviderError::Timeout => write!(f, "timed out"),
            ProviderError::Connect(m) => write!(f, "connection failed: {m}"),
            ProviderError::Tls(m) => write!(f, "TLS failed: {m}"),
            ProviderError::Decode(m) => write!(f, "unreadable response: {m}"),
            ProviderError::ContentFilter(m) => write!(f, "refused by content filter: {m}"),
            ProviderError::NoCredentials => write!(f, "no API key configured"),
            ProviderError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for ProviderError {}

/// Replaces every occurrence of `secret` in `text` with `[redacted]` (secrets shorter than four
/// bytes are left alone: they would match ordinary text).
pub fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(k) if k.len() >= 4 && text.contains(k) => text.replace(k, "[redacted]"),
        _ => text,
    }
}

/// Truncates text at a character boundary at most `max` bytes in, marking the cut with `…`, so a
/// huge HTML error page does not flood responses.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_prompt_serialises_as_its_text_and_is_escaped_once() {
        let text = "Say \"yes\" or `no`.\nTabs\there, a backslash \\, é and \u{1}.";
        let p = SystemPrompt::from(text);
        let copy = p.clone();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            serde_json::to_string(text).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&copy).unwrap(),
            serde_json::json!(text)
        );
        // The clone shares the escaped form made for the first.
        assert!(std::ptr::eq(p.json(), copy.json()));
        assert_eq!(&*p, text);
    }

    #[test]
    fn a_secret_never_survives_the_clip_whatever_its_offset() {
        let key = "sk-live-0123456789abcdef";
        let max = 500;
        for offset in max - key.len() - 4..=max + 4 {
            let body = format!("{}{key} and more text after it", "x".repeat(offset));
            let e = ProviderError::Status {
                status: 401,
                message: body,
                retry_after: None,
                should_retry: None,
            }
            .redacted(Some(key), max);
            let text = e.to_string();
            // Not the key, nor any prefix of it long enough to be recognised.
            for n in 4..=key.len() {
                assert!(!text.contains(&key[..n]), "offset {offset}: {text}");
            }
        }
        let e = ProviderError::Connect(format!("bad {key}")).redacted(Some(key), 10);
        assert_eq!(e, ProviderError::Connect("bad [redac…".into()));
    }

    #[test]
    fn estimates_count_system_text_and_images() {
        let mut r = ChatRequest::user(
            Some("abcd".into()),
            vec![
                Part::Text("efgh".into()),
                Part::Image(ImageRef {
                    url: "data:image/png;base64,AAAA".into(),
                }),
            ],
        );
        assert_eq!(r.estimated_prompt_tokens(), 2 + 765);
        r.max_tokens = Some(10);
        assert_eq!(r.estimated_tokens(), 2 + 765 + 10);
        assert_eq!(r.images().count(), 1);
    }
}
