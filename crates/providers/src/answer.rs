//! A provider's answer as every wire format reads it: status, headers and whole body, the retry
//! hints in its headers, the message in its error body, and the bounds on both.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;

use llm_judge_chat::ProviderError;

/// The largest answer read from a provider (after decompression); a judge's answer is a few
/// hundred bytes, so anything near this is a misbehaving server.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// How long a provider's error text may be in attempts, responses and logs.
pub const MAX_ERROR_CHARS: usize = 500;

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

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

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
}
