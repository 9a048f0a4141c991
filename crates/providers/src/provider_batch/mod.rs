//! Provider batch APIs: many requests sent as one provider batch, billed at about half the
//! online price, in a rate-limit pool of their own, with results within 24 hours.
//!
//! - [`openai`]: OpenAI's Files and Batch API (`/v1/files`, `/v1/batches`), also Azure OpenAI's
//!   global-batch deployments (`{endpoint}/openai/files`, `/openai/batches`).
//! - [`anthropic`]: Anthropic's Message Batches (`/v1/messages/batches`).
//!
//! A [`BatchClient`] is built beside a provider's adapter, on the same `reqwest::Client`, with
//! the adapter's credential headers and wire format: a request in a batch has exactly the body
//! the online call would send, and each result's body is read by the adapter's own `decode`, so
//! a result reads exactly as the online answer would. Requests are matched back by their
//! [`CustomId`] (an item's index and attempt), never by their order.
//!
//! Each call to a batch endpoint is retried on what the provider says is transient (429, 5xx,
//! connection failures), waiting as its `retry-after` asks or backing off exponentially with
//! jitter; creating a batch is retried only when it cannot have been made (429, 503, 529, no
//! connection), so that a batch is never created twice. Polling backs off the same way, from
//! [`Polling::first`] up to [`Polling::max`].

pub mod anthropic;
pub mod openai;

mod batch;
mod calls;
mod client;
mod clock;
mod custom_id;
mod packing;
mod polling;

pub use batch::{
    Api, Counts, Handle, ItemFailure, Limits, Outcome, Phase, Queued, Status, Submission,
    SubmitError,
};
pub use calls::Http;
pub use client::BatchClient;
pub use clock::CLOCK_SLACK_S;
pub use custom_id::CustomId;
pub use polling::Polling;
