//! Progress of a running batch or job, as streamed to clients, with each provider batch of a
//! job.

use serde::Serialize;
use utoipa::ToSchema;

/// Progress of a running batch or job, as streamed to clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub correct: usize,
    pub incorrect: usize,
    pub unscored: usize,
    pub errors: usize,
    pub items_per_second: f64,
    /// Seconds left at the current rate; null before the first result.
    pub eta_s: Option<f64>,
    /// Jobs with `provider_batch`: each provider batch the job made, as last polled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_batches: Vec<ProviderBatchProgress>,
    /// Jobs: present while the job waits for its route's providers to answer again (an
    /// outage, a rate limit, timeouts); its items are not failed meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
}

/// A job waiting for its route's providers: why, which, since when and when it tries again.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct Waiting {
    /// What the last call said (`openai: connection refused`, `circuit open`, ...).
    pub reason: String,
    /// The providers the route's steps tried.
    pub providers: Vec<String>,
    /// When the wait began (Unix milliseconds).
    pub since_ms: u64,
    /// When one item is next sent to find out whether the route answers (Unix milliseconds).
    pub next_try_ms: u64,
    /// Items waiting to be sent again.
    pub items: usize,
}

/// Where one of a job's provider batches is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ProviderBatchProgress {
    /// The provider's batch id.
    pub id: String,
    /// The configured provider it went to.
    pub provider: String,
    /// `submitted` (created; the provider is checking it), `in_progress`, or `ended`.
    pub phase: String,
    /// Requests with an outcome, those that failed (errored, expired, cancelled: they go
    /// online), and all of them.
    pub done: u64,
    pub failed: u64,
    pub total: u64,
}
