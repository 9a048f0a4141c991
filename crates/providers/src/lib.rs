//! Provider adapters: one wire format per file, each a `tower::Service` from a provider-neutral
//! [`ChatRequest`] to a [`Completion`] or a typed [`ProviderError`].
//!
//! A wire format ([`WireFormat`]) says how a request becomes its provider's HTTP request and how
//! the answer (or the error body, status and retry headers) is read back; [`http::HttpAdapter`]
//! sends it with the provider's one `reqwest::Client`. Nothing here knows about judges, routes,
//! retries or limits: that is the pool's business (`llm-judge-pool`).
//!
//! Each provider file keeps the same order: the format and its constructor (URL, credentials),
//! the [`WireFormat`] impl, the borrowed wire types, the answer conversion, then its own tests.
//! What every adapter must do alike is tested once, against every adapter, in `conformance`.

pub mod anthropic;
pub mod azure;
pub mod cohere;
pub mod gemini;
pub mod http;
pub mod openai;
pub mod provider_batch;
pub mod rules;
pub mod settings;
pub mod stream;

pub use settings::{ModelLimits, ProviderKind, ProviderSettings};

#[cfg(test)]
mod conformance;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tower::util::BoxCloneSyncService;

pub use llm_judge_chat::{ChatRequest, Completion, ProviderError, Usage};
use llm_judge_chat::{ChatStream, Chunk, Grader};

/// How long a provider's error text may be in attempts, responses and logs.
pub const MAX_ERROR_CHARS: usize = 500;

/// An HTTP request a wire format wants sent: always a JSON `POST`.
#[derive(Debug)]
pub struct Outgoing {
    pub url: reqwest::Url,
    pub body: Vec<u8>,
}

/// What a provider answered, body already decompressed.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The typed error for a non-success answer: `message` read from the body by the wire
    /// format, the retry hints from the headers.
    pub fn status_error(&self, message: String) -> ProviderError {
        ProviderError::Status {
            status: self.status,
            message,
            retry_after: parse_retry_after(&self.headers),
            should_retry: parse_should_retry(&self.headers),
        }
    }
}

/// One provider's wire format, bound to its base URL and credentials.
pub trait WireFormat: Send + Sync + 'static {
    /// The wire-format label (`openai`, `anthropic` ...).
    fn kind(&self) -> &'static str;
    /// The headers sent with every call (credentials included), or `None` when the provider needs
    /// a key and has none: then nothing is sent.
    fn headers(&self) -> Option<&HeaderMap>;
    /// The provider's HTTP request for `req`.
    fn encode(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError>;
    /// The provider's answer read into a completion or a typed error.
    fn decode(&self, answer: Answer) -> Result<Completion, ProviderError>;
    /// How the provider streams an answer, when it does; a provider that does not answers a
    /// streamed request whole, as a stream of one piece.
    fn streaming(&self) -> Option<&dyn StreamFormat> {
        None
    }
}

/// How a provider streams: the request that asks for server-sent events, and a reader of them.
/// An error answer before the stream starts is read by [`WireFormat::decode`].
pub trait StreamFormat: Send + Sync {
    /// The provider's HTTP request for a streamed answer to `req`.
    fn encode_stream(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError>;
    /// A reader for one answer's events.
    fn reader(&self) -> Box<dyn EventReader>;
}

/// Reads one streamed answer's server-sent events, in order.
pub trait EventReader: Send {
    /// One event (`event` is its type, empty when it has none): the piece of the answer it
    /// carries, `None` for one that carries nothing, or the error the provider reported in it.
    fn read(&mut self, event: &str, data: &str) -> Result<Option<Chunk>, ProviderError>;
    /// Whether the provider's end-of-answer marker has been read.
    fn done(&self) -> bool;
}

/// A provider error reported inside a stream, given the status its type stands for: a stream
/// that failed before its first piece is retried or falls back like the same error answered
/// with that status.
pub fn stream_error(kind: Option<&str>, message: String) -> ProviderError {
    let status = match kind.unwrap_or_default() {
        "overloaded_error" | "overloaded" => 529,
        "rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens" => 429,
        "invalid_request_error" | "invalid_request" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        _ => 500,
    };
    ProviderError::Status {
        status,
        message,
        retry_after: None,
        should_retry: None,
    }
}

/// Every adapter behind one type: a cloneable, shareable `tower::Service`.
pub type AdapterService = BoxCloneSyncService<Arc<ChatRequest>, Completion, ProviderError>;

/// Every adapter's streaming side: its answer is ready when the first piece has arrived.
pub type StreamService = BoxCloneSyncService<Arc<ChatRequest>, ChatStream, ProviderError>;

/// A provider adapter and what the pool needs to know of it.
#[derive(Clone)]
pub struct Adapter {
    /// The wire format (`openai`, `anthropic`, `rules` ...).
    pub kind: &'static str,
    /// Whether the provider can be called (credentials present, or none needed).
    pub has_credentials: bool,
    pub service: AdapterService,
    pub stream: StreamService,
    /// The provider's batch API (OpenAI, Azure OpenAI, Anthropic), on the same client.
    pub batch: Option<provider_batch::BatchClient>,
}

/// Builds the adapter for one configured provider: its `reqwest::Client` (made once, here) and
/// its wire format. `grader` answers for the `rules` kind.
pub fn build(p: &ProviderSettings, grader: Arc<dyn Grader>) -> anyhow::Result<Adapter> {
    let key = p.api_key.as_ref().map(|k| k.expose().to_string());
    let key = key.filter(|k| !k.is_empty());
    let client = http::client(&http::ClientOptions::from_settings(p))?;
    let batch_http = provider_batch::Http {
        client: client.clone(),
        secret: key.as_deref().map(Into::into),
        polling: provider_batch::Polling {
            first: p.batch_poll,
            max: p.batch_poll_max,
            ..provider_batch::Polling::default()
        },
    };
    fn adapter<W: WireFormat>(
        client: reqwest::Client,
        wire: Arc<W>,
        key: Option<String>,
        batch: Option<provider_batch::BatchClient>,
    ) -> Adapter {
        let http = http::HttpAdapter::shared(client, wire, key);
        Adapter {
            kind: http.wire().kind(),
            has_credentials: http.wire().headers().is_some(),
            stream: BoxCloneSyncService::new(http::Streamed(http.clone())),
            service: BoxCloneSyncService::new(http),
            batch,
        }
    }
    Ok(match p.kind {
        ProviderKind::Rules => {
            let rules = rules::RulesAdapter::new(grader);
            Adapter {
                kind: "rules",
                has_credentials: true,
                stream: BoxCloneSyncService::new(tower::ServiceExt::map_response(
                    rules.clone(),
                    ChatStream::whole,
                )),
                service: BoxCloneSyncService::new(rules),
                batch: None,
            }
        }
        ProviderKind::Openai => {
            let wire = Arc::new(openai::OpenAi::new(
                "openai",
                &p.base_url,
                key.as_deref(),
                &p.headers,
            )?);
            let batches = provider_batch::openai::Batches::openai(
                batch_http,
                &p.base_url,
                wire.headers().cloned(),
                wire.clone(),
            );
            adapter(
                client,
                wire,
                key,
                Some(provider_batch::BatchClient::OpenAi(batches)),
            )
        }
        ProviderKind::Together => {
            let wire = openai::OpenAi::new("together", &p.base_url, key.as_deref(), &p.headers)?;
            adapter(client, Arc::new(wire), key, None)
        }
        ProviderKind::Azure => {
            let wire = Arc::new(azure::Azure::new(
                &p.base_url,
                &p.api_version,
                key.as_deref(),
            )?);
            let batches = provider_batch::openai::Batches::azure(
                batch_http,
                &p.base_url,
                &p.api_version,
                wire.headers().cloned(),
                wire.clone(),
            );
            adapter(
                client,
                wire,
                key,
                Some(provider_batch::BatchClient::OpenAi(batches)),
            )
        }
        ProviderKind::Anthropic => {
            let wire = Arc::new(
                anthropic::Anthropic::new(&p.base_url, key.as_deref())?
                    .with_prompt_cache(p.prompt_cache),
            );
            let batches = provider_batch::anthropic::Batches::new(batch_http, wire.clone());
            adapter(
                client,
                wire,
                key,
                Some(provider_batch::BatchClient::Anthropic(batches)),
            )
        }
        ProviderKind::Cohere => adapter(
            client,
            Arc::new(cohere::Cohere::new(&p.base_url, key.as_deref())?),
            key,
            None,
        ),
        ProviderKind::Gemini => adapter(
            client,
            Arc::new(gemini::Gemini::new(&p.base_url, key.as_deref())?),
            key,
            None,
        ),
    })
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

/// Parses a provider URL. The error names no part of the URL, which may carry a key in its query.
pub fn parse_url(url: &str) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(url).map_err(|e| {
        ProviderError::Connect(format!("the provider's base_url is not a valid URL ({e})"))
    })
}

/// The headers a provider sends with every call, built once at start-up. Every value is marked
/// sensitive, so a credential is never printed; a value that cannot be a header is refused with
/// an error that names the header, never the value. `extra` are configured headers.
pub fn fixed_headers(
    pairs: &[(&'static str, &str)],
    extra: &[(String, String)],
) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::with_capacity(pairs.len() + extra.len());
    for (name, value) in pairs {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            anyhow::anyhow!("the {name} header value (from the API key) is not valid in HTTP")
        })?;
        v.set_sensitive(true);
        map.insert(*name, v);
    }
    for (k, v) in extra {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| anyhow::anyhow!("{k:?} is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| anyhow::anyhow!("the {k} header value is not valid in HTTP"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

/// Reads an error body leniently: `{"error":{"message",...}}` (OpenAI, Azure, Together, recent
/// vLLM), the top-level `{"object":"error","message"}` of older vLLM, `{"message"}`, `{"detail"}`,
/// or plain text. The pool scrubs and clips what it returns.
pub fn error_message(body: &[u8]) -> String {
    use serde_json::Value;
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error").filter(|e| e.is_string()),
            v.get("message"),
            v.get("detail"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                return s.to_string();
            }
            if !c.is_null() {
                return c.to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error body".into()
    } else {
        text.to_string()
    }
}

/// `{"error":{"type"|"status", "message"}}` as `"{type}: {message}"` (Anthropic, Gemini), else
/// [`error_message`].
pub fn typed_error_message(body: &[u8], type_pointer: &str) -> String {
    use serde_json::Value;
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(msg) = v.pointer("/error/message").and_then(Value::as_str)
    {
        return match v.pointer(type_pointer).and_then(Value::as_str) {
            Some(kind) => format!("{kind}: {msg}"),
            None => msg.to_string(),
        };
    }
    error_message(body)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the value stays one path
/// segment (or one query value) whatever it contains.
pub fn encode_path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Serialises a wire body; a body that cannot be serialised is a bug in an adapter, reported as
/// an unsupported request rather than a panic.
pub fn json_body<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body)
        .map_err(|e| ProviderError::Unsupported(format!("the request cannot be encoded: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_ms_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(parse_retry_after(&h), None);
        h.insert("x-should-retry", HeaderValue::from_static("false"));
        assert_eq!(parse_should_retry(&h), Some(false));
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        assert_eq!(
            error_message(
                br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#
            ),
            "bad key"
        );
        assert_eq!(
            error_message(
                br#"{"object":"error","message":"model not found","type":"NotFoundError","param":null,"code":404}"#
            ),
            "model not found"
        );
        assert_eq!(error_message(br#"{"detail":{"x":1}}"#), r#"{"x":1}"#);
        assert_eq!(error_message(b"<html>502</html>"), "<html>502</html>");
        assert_eq!(error_message(b"  "), "no error body");
        assert_eq!(
            typed_error_message(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "/error/type"
            ),
            "overloaded_error: Overloaded"
        );
    }

    #[test]
    fn path_segments_stay_one_segment() {
        assert_eq!(encode_path_segment("gpt-4o_v1.2~x"), "gpt-4o_v1.2~x");
        assert_eq!(encode_path_segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn header_values_are_checked_and_sensitive() {
        let h = fixed_headers(
            &[("x-api-key", "k1")],
            &[("OpenAI-Organization".into(), "o".into())],
        )
        .unwrap();
        assert!(h.get("x-api-key").unwrap().is_sensitive());
        assert_eq!(h.get("openai-organization").unwrap(), "o");
        let e = fixed_headers(&[("x-api-key", "bad\nkey")], &[]).unwrap_err();
        assert!(e.to_string().contains("x-api-key") && !e.to_string().contains("bad"));
    }
}
