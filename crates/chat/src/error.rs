//! The typed reasons a call fails, from which the pool decides to retry, fall back or stop.

use std::fmt;
use std::time::Duration;

use crate::text::{clip, scrub};

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
            // An answer that came whole but cannot be read was billed: asking the same provider
            // again buys the same answer again. The route's next step may read differently.
            ProviderError::Tls(_)
            | ProviderError::Decode(_)
            | ProviderError::ContentFilter(_)
            | ProviderError::NoCredentials
            | ProviderError::Unsupported(_) => false,
        }
    }

    /// Whether the provider cannot serve anyone now, for a while: a connection refused or broken,
    /// a timeout, 408, 429 or a 5xx (whatever `x-should-retry` says: it speaks of this request
    /// now, not of the provider's health). Not a request at fault (400, 413, 422, a content
    /// filter, an unreadable answer) nor a configuration at fault (401, 403, 404, a bad
    /// certificate, no credentials).
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            ProviderError::Timeout | ProviderError::Connect(_) => true,
            ProviderError::Tls(_)
            | ProviderError::Decode(_)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
