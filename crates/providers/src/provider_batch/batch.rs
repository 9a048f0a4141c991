//! What a provider batch is, whichever API runs it: the requests put in, the handle kept for it,
//! what a submission did, where the batch is, what each request came to, and the provider's
//! limits.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::custom_id::CustomId;
use llm_judge_chat::{ChatRequest, Completion, ProviderError};

/// A request to put in a provider batch.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: CustomId,
    /// With its route step's model set.
    pub chat: Arc<ChatRequest>,
}

/// Which batch API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI's Batch API (and Azure OpenAI's).
    OpenAi,
    Anthropic,
}

/// A submitted provider batch: what is needed to poll it, read its results and cancel it,
/// after a restart too (it is plain data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    pub api: Api,
    /// The provider's batch id.
    pub id: String,
    /// OpenAI: the uploaded input file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_file_id: Option<String>,
    /// Every request in the batch, for the ones the provider returns nothing for.
    pub requests: Vec<CustomId>,
}

/// What [`BatchClient::submit`](super::BatchClient::submit) did: the batches created, and the
/// requests it could not put in any (one too large for a batch, one the wire format cannot
/// encode), to be sent online.
#[derive(Debug, Default)]
pub struct Submission {
    pub batches: Vec<Handle>,
    pub refused: Vec<(CustomId, ProviderError)>,
}

/// Where a batch is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// OpenAI: the input file is being checked.
    Validating,
    InProgress,
    /// OpenAI: the results are being written.
    Finalizing,
    Cancelling,
    /// Over: every request has a result (succeeded, errored, expired or cancelled).
    Ended,
    /// OpenAI: the batch was refused as a whole (its input failed validation); the message says
    /// why. No request has a result.
    Failed(String),
    /// OpenAI: the completion window passed; requests not run are expired.
    Expired,
    /// Cancelled; requests not run by then are cancelled.
    Cancelled,
}

impl Phase {
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Phase::Ended | Phase::Failed(_) | Phase::Expired | Phase::Cancelled
        )
    }
}

/// Requests by outcome, as far as the provider says (Anthropic counts only once a batch ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub errored: u64,
    pub expired: u64,
    pub cancelled: u64,
}

impl Counts {
    /// Requests with an outcome.
    pub fn done(&self) -> u64 {
        self.succeeded + self.errored + self.expired + self.cancelled
    }
}

/// A batch as one poll saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub phase: Phase,
    pub counts: Counts,
    /// Where the results are read from once over (OpenAI: the output and error files;
    /// Anthropic: the results URL).
    pub results: Vec<String>,
}

/// Why one request of a batch has no answer. Every one of them can be sent online.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemFailure {
    /// The provider answered this request with an error, as an online call would have been
    /// answered: its typed error (status, message, retryability).
    Errored(ProviderError),
    /// The batch expired before the request was run.
    Expired,
    /// The batch was cancelled before the request was run.
    Cancelled,
    /// The provider refused the whole batch (its message says why).
    BatchFailed(String),
    /// The batch ended and no result names the request.
    Missing,
}

impl fmt::Display for ItemFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemFailure::Errored(e) => write!(f, "the provider batch answered an error: {e}"),
            ItemFailure::Expired => write!(f, "the provider batch expired before the request ran"),
            ItemFailure::Cancelled => {
                write!(f, "the provider batch was cancelled before the request ran")
            }
            ItemFailure::BatchFailed(m) => write!(f, "the provider refused the batch: {m}"),
            ItemFailure::Missing => write!(f, "the provider batch returned no result for it"),
        }
    }
}

/// One request's result, read as the online answer would be.
pub type Outcome = Result<Completion, ItemFailure>;

/// A provider's limits per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_requests: usize,
    /// Of the upload (OpenAI: the JSONL file; Anthropic: the creation body).
    pub max_bytes: usize,
}

/// A submission that stopped on an error.
#[derive(Debug)]
pub struct SubmitError {
    pub error: ProviderError,
    /// What was done before it.
    pub done: Submission,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "creating a provider batch failed ({} created before): {}",
            self.done.batches.len(),
            self.error
        )
    }
}

impl std::error::Error for SubmitError {}
