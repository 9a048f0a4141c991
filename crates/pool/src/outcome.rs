//! What a call along a route came to: each attempt as clients see it, and the completion
//! delivered with how it was obtained, or the failure of every step.

use std::time::Duration;

use serde::Serialize;

use llm_judge_chat::Completion;

/// What one attempt did, as reported to clients.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// `ok`, `error`, `skipped`.
    pub outcome: &'static str,
    /// The provider's HTTP status, when it answered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong (never contains credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: f64,
}

/// A completion and how it was obtained.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub completion: Completion,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    pub fallback: bool,
    pub cost_usd: Option<f64>,
    /// Time spent waiting on providers (attempts and backoff), for the overhead metric.
    pub provider_time: Duration,
    /// The provider batch that answered, when the call went through one (its id).
    pub provider_batch: Option<String>,
}

/// Every step of the route failed.
#[derive(Debug, Clone)]
pub struct RouteFailed {
    pub attempts: Vec<Attempt>,
    pub provider_time: Duration,
    /// The last error, for the message.
    pub last_error: String,
    /// True when the last step ended on an error no other provider would avoid (e.g. 400).
    pub client_error: bool,
    /// True when every step was tried and failed for a transient reason (unreachable, timed
    /// out, 429, 5xx, circuit open, no permit in time): the route cannot be served now, and
    /// later it may be. A job waits such failures out instead of failing its items.
    pub outage: bool,
    /// True when no call was made yet: the deliverer kept the request to make later (an item
    /// of a job's provider batch, answered when its batch is). Neither an answer nor an error.
    pub parked: bool,
}

impl RouteFailed {
    /// A call its deliverer kept to make later (see [`RouteFailed::parked`]).
    pub fn parked() -> RouteFailed {
        RouteFailed {
            attempts: Vec::new(),
            provider_time: Duration::ZERO,
            last_error: "the call waits for its provider batch".into(),
            client_error: false,
            outage: false,
            parked: true,
        }
    }
}
