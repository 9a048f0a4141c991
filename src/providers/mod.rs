//! Provider adapters: one wire format per file, behind one provider-neutral interface.
//!
//! Every adapter turns a [`ChatRequest`] into its provider's HTTP request and the answer (or the
//! error body, status and retry headers) back into a [`Completion`] or a typed [`ProviderError`].
//! Nothing here knows about judges, routes, retries or limits: that is `pool/`'s business.

pub mod anthropic;
pub mod azure;
pub mod cohere;
pub mod gemini;
pub mod http;
pub mod openai;
pub mod rules;

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// One part of the user message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image given by the client as a `data:` URL or an `https:` URL. The service never fetches it.
    Image(ImageRef),
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

/// A system prompt, shared by every request that uses it, with its JSON string form made on first
/// use and kept. A template's instructions go out with every item; escaping them again for each
/// request costs more than the rest of the request body.
#[derive(Clone)]
pub struct SystemPrompt(std::sync::Arc<SystemInner>);

struct SystemInner {
    text: Box<str>,
    json: std::sync::OnceLock<Box<serde_json::value::RawValue>>,
}

impl SystemPrompt {
    pub fn new(text: impl Into<Box<str>>) -> Self {
        SystemPrompt(std::sync::Arc::new(SystemInner {
            text: text.into(),
            json: std::sync::OnceLock::new(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The text as a JSON string, escaped once.
    pub fn json(&self) -> &serde_json::value::RawValue {
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

/// A provider-neutral chat request: one optional system message and one user message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    /// Shared: a template's instructions are the same for every item.
    pub system: Option<SystemPrompt>,
    pub user: Vec<Part>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Set by the judge layer so deterministic providers can grade the raw fields.
    pub grading: Option<GradingTask>,
}

impl ChatRequest {
    /// All text parts joined (for token estimates and for providers without content parts).
    pub fn user_text(&self) -> String {
        let mut out = String::new();
        for p in &self.user {
            if let Part::Text(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }

    pub fn images(&self) -> impl Iterator<Item = &ImageRef> {
        self.user.iter().filter_map(|p| match p {
            Part::Image(i) => Some(i),
            Part::Text(_) => None,
        })
    }

    /// A rough token estimate (4 bytes per token, plus a fixed cost per image) used before the
    /// call, for tokens-per-minute limits.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let text: usize = self.system.as_deref().map_or(0, str::len)
            + self
                .user
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.len(),
                    Part::Image(_) => 0,
                })
                .sum::<usize>();
        (text as u64).div_ceil(4) + 765 * self.images().count() as u64
    }
}

/// Token usage in one shape for every provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
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
    /// No answer within the per-attempt timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect(String),
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
            ProviderError::ContentFilter(_)
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
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderError::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            ProviderError::Timeout => write!(f, "timed out"),
            ProviderError::Connect(m) => write!(f, "connection failed: {m}"),
            ProviderError::Decode(m) => write!(f, "unreadable response: {m}"),
            ProviderError::ContentFilter(m) => write!(f, "refused by content filter: {m}"),
            ProviderError::NoCredentials => write!(f, "no API key configured"),
            ProviderError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for ProviderError {}

/// One provider: a wire format bound to a base URL and credentials.
pub trait Provider: Send + Sync + 'static {
    /// The wire format (`openai`, `anthropic`, `rules` ...).
    fn kind(&self) -> &'static str;
    /// Whether the provider can be called (credentials present, or none needed).
    fn has_credentials(&self) -> bool;
    /// Send one request. The adapter applies its own per-attempt timeout through its HTTP client.
    fn chat<'a>(&'a self, req: &'a ChatRequest)
    -> BoxFuture<'a, Result<Completion, ProviderError>>;
}

/// Reads `retry-after-ms`, then `retry-after` (seconds, possibly fractional, or an HTTP date).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Reads `x-should-retry: true|false`.
pub fn parse_should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses a provider URL once, at start-up. The error names no part of the URL, which may carry
/// a key in its query.
pub fn parse_url(url: &str) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(url).map_err(|e| {
        ProviderError::Connect(format!("the provider's base_url is not a valid URL ({e})"))
    })
}

/// The headers a provider sends with every call, built once. Every value is marked sensitive, so
/// a credential is never printed; a value that cannot be a header fails every call with an error
/// that names the header, never the value.
pub fn fixed_headers(pairs: &[(&'static str, &str)]) -> Result<HeaderMap, ProviderError> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            ProviderError::Connect(format!("the {name} header value is not valid in HTTP"))
        })?;
        v.set_sensitive(true);
        map.insert(*name, v);
    }
    Ok(map)
}

/// Adds configured extra headers; a name or value that is not a valid header is skipped (the
/// configuration layer rejects those at start-up).
pub fn extend_headers(map: &mut HeaderMap, extra: &[(String, String)]) {
    for (k, v) in extra {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(name, value);
        }
    }
}

/// Truncates a provider's error text so a huge HTML error page does not flood responses.
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
}
