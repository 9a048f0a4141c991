//! Provider adapters: one wire format per module, each a `tower::Service` from a provider-neutral
//! [`ChatRequest`] to a [`Completion`] or a typed [`ProviderError`].
//!
//! A wire format ([`WireFormat`]) says how a request becomes its provider's HTTP request and how
//! the answer (or the error body, status and retry headers) is read back; [`http::HttpAdapter`]
//! sends it with the provider's one `reqwest::Client`. Nothing here knows about judges, routes,
//! retries or limits: that is the pool's business (`llm-judge-pool`).
//!
//! Each provider keeps the same order: the format and its constructor (URL, credentials), the
//! [`WireFormat`] impl, the borrowed wire types, the answer conversion, then its own tests; the
//! larger ones (`openai`, `anthropic`) are folders with the request, the answer, the stream
//! reader and the tests in files of their own. What every adapter must do alike is tested once,
//! against every adapter, in `conformance`.

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
pub mod transport;

mod adapter;
mod answer;
mod outgoing;
mod wire;

#[cfg(test)]
mod conformance;

pub use adapter::{Adapter, AdapterService, StreamService, build};
pub use answer::{
    Answer, MAX_ANSWER_BYTES, MAX_ERROR_CHARS, error_message, parse_retry_after,
    parse_should_retry, typed_error_message,
};
pub use outgoing::{Outgoing, encode_path_segment, fixed_headers, json_body, parse_url};
pub use settings::{ModelLimits, ProviderKind, ProviderSettings};
pub use wire::{EventReader, StreamFormat, WireFormat, stream_error};

pub use llm_judge_chat::{ChatRequest, Completion, ProviderError, Usage};
