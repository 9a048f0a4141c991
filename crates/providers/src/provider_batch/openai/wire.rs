//! OpenAI's batch objects and results lines as the Batch API sends them, and a batch's status
//! read from them.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::provider_batch::batch::{Counts, Phase, Status};

#[derive(Deserialize)]
pub(super) struct WireFile {
    pub(super) id: String,
}

#[derive(Deserialize)]
pub(super) struct WireList {
    #[serde(default)]
    pub(super) data: Vec<WireBatch>,
    #[serde(default)]
    pub(super) has_more: bool,
}

#[derive(Deserialize)]
pub(super) struct WireBatch {
    pub(super) id: String,
    status: String,
    #[serde(default)]
    pub(super) created_at: Option<u64>,
    #[serde(default)]
    pub(super) input_file_id: Option<String>,
    #[serde(default)]
    pub(super) metadata: Option<serde_json::Value>,
    #[serde(default)]
    request_counts: Option<WireCounts>,
    #[serde(default)]
    output_file_id: Option<String>,
    #[serde(default)]
    error_file_id: Option<String>,
    #[serde(default)]
    errors: Option<WireErrors>,
}

#[derive(Deserialize, Default)]
struct WireCounts {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    completed: u64,
    #[serde(default)]
    failed: u64,
}

#[derive(Deserialize)]
struct WireErrors {
    #[serde(default)]
    data: Vec<WireError>,
}

#[derive(Deserialize)]
pub(super) struct WireError {
    #[serde(default)]
    pub(super) code: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireResult {
    pub(super) custom_id: String,
    #[serde(default)]
    pub(super) response: Option<WireResponse>,
    #[serde(default)]
    pub(super) error: Option<WireError>,
}

#[derive(Deserialize)]
pub(super) struct WireResponse {
    pub(super) status_code: u16,
    pub(super) body: Box<RawValue>,
}

impl WireBatch {
    pub(super) fn status(self) -> Status {
        let phase = match self.status.as_str() {
            "validating" => Phase::Validating,
            "in_progress" => Phase::InProgress,
            "finalizing" => Phase::Finalizing,
            "cancelling" => Phase::Cancelling,
            "completed" => Phase::Ended,
            "expired" => Phase::Expired,
            "cancelled" => Phase::Cancelled,
            "failed" => Phase::Failed(
                self.errors
                    .map(|e| {
                        let mut seen = HashMap::new();
                        e.data
                            .into_iter()
                            .filter_map(|d| d.message.or(d.code))
                            .filter(|m| seen.insert(m.clone(), ()).is_none())
                            .take(3)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "no reason given".into()),
            ),
            // A status this client does not know yet: keep polling.
            _ => Phase::InProgress,
        };
        let c = self.request_counts.unwrap_or_default();
        let counts = Counts {
            total: c.total,
            succeeded: c.completed,
            errored: c.failed,
            ..Counts::default()
        };
        let results = [self.output_file_id, self.error_file_id]
            .into_iter()
            .flatten()
            .filter(|f| !f.is_empty())
            .collect();
        Status {
            phase,
            counts,
            results,
        }
    }
}
