//! The contract every wire format implements: how a provider-neutral request becomes its
//! provider's HTTP request, how the answer is read back, and, where the provider streams, how
//! its server-sent events become the pieces of an answer.

use reqwest::header::HeaderMap;

use crate::answer::Answer;
use crate::outgoing::Outgoing;
use llm_judge_chat::{ChatRequest, Chunk, Completion, ProviderError};

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
