//! What is stored about a job: its record (status, route, totals, budget, provider batches),
//! whichever store keeps it. The job store's contract, its implementations, the runner and the
//! views all speak of jobs in these words.

mod provider_batches;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::Tally;
pub(crate) use provider_batches::ATTEMPT;
pub use provider_batches::{BatchRecord, Lease, SubmitMark};

/// The time now, in Unix milliseconds (as records keep their times).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Items are still arriving (an NDJSON upload); never run, removed at start-up if unfinished.
    Uploading,
    Queued,
    Running,
    /// Cancelled while running: the calls in flight are being stopped; `cancelled` follows.
    Cancelling,
    Completed,
    Cancelled,
    Failed,
}

impl JobStatus {
    /// The status as the API writes it (`completed`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Uploading => "uploading",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Cancelling => "cancelling",
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Failed => "failed",
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Cancelled | JobStatus::Failed
        )
    }
}

/// What is stored about a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub status: JobStatus,
    pub kind: llm_judge_judge::JudgeKind,
    pub route: String,
    pub max_concurrent: usize,
    pub total: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    /// A digest of the request that made the job, compared when its idempotency key comes back.
    #[serde(default)]
    pub request_digest: Option<String>,
    /// Results committed so far (also the next completion sequence number).
    pub committed: u64,
    /// The final summary, once finished.
    pub summary: Option<Value>,
    pub error: Option<String>,
    /// Fleet-wide counts of the results committed so far, when the store keeps them (a store
    /// shared by replicas); not stored in the record itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Items whose route's first step has a batch API go as provider batches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provider_batch: bool,
    /// Seconds after the job's creation when what its provider batches have not answered goes
    /// online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_batch_deadline_s: Option<u64>,
    /// The provider batches the job made (stored as soon as each is created, so that a
    /// restarted service polls them again instead of making new ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_batches: Vec<BatchRecord>,
    /// The job's spend budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::batch::Limits>,
    /// In a fleet: the replica that drives the job's provider batches, until its lease ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Lease>,
    /// Provider batches being made: each set before a batch is made and cleared once its id is
    /// stored, so that a service that stopped in between looks for the batch at the provider
    /// instead of making it again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_submits: Vec<SubmitMark>,
    /// The name of the client token that sent the job, when its day has a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The tenant the job belongs to (the name of the client token that made it, with client
    /// tokens configured): only that token, and admin tokens, see it, and its idempotency key is
    /// that token's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// While the job's items are arriving (an NDJSON upload): when the replica receiving them
    /// last said it still is (Unix ms). An upload not heard of for longer than the store's
    /// `claim_idle` was cut off with its replica (see [`JobRecord::upload_is_stale`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_seen_ms: Option<u64>,
    /// How long the job waits for its route to be served again before it fails, when the job
    /// asked for its own (else the `jobs.max_wait_s` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_s: Option<u64>,
}

impl JobRecord {
    /// Whether `tenant` may see this job: everyone when `tenant` is `None` (no client tokens,
    /// or an admin token), else only the token that made it.
    pub fn visible_to(&self, tenant: Option<&str>) -> bool {
        tenant.is_none_or(|t| self.owner.as_deref() == Some(t))
    }

    /// Whether this is an upload whose replica has not been heard of since `before_ms`: its
    /// items stopped arriving for good.
    pub fn upload_is_stale(&self, before_ms: u64) -> bool {
        self.status == JobStatus::Uploading
            && self.upload_seen_ms.unwrap_or(self.created_at_ms) < before_ms
    }

    /// The key the store keeps the idempotency key under: scoped to the job's owner, so that
    /// two tenants' keys never meet.
    pub fn idempotency_scope(&self) -> Option<String> {
        let key = self.idempotency_key.as_deref()?;
        Some(match &self.owner {
            Some(owner) => format!("{owner}/{key}"),
            None => key.to_string(),
        })
    }
}

/// Fleet-wide counts of a job's committed results, kept by a shared store (a single node's
/// runner counts for itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub correct: u64,
    pub incorrect: u64,
    pub unscored: u64,
    pub errors: u64,
    /// When a runner first took the job (Unix ms).
    pub started_at_ms: Option<u64>,
}

impl Counts {
    /// The count a result goes into.
    pub fn field(t: &Tally) -> &'static str {
        match (t.ok, t.verdict) {
            (false, _) => "errors",
            (true, Some("correct")) => "correct",
            (true, Some("incorrect")) => "incorrect",
            (true, Some("unscored")) => "unscored",
            (true, _) => "scored",
        }
    }
}
