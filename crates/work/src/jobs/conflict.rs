//! Idempotency keys that cannot be honoured: the key made a job from another request, or
//! belongs to an upload still arriving.

use super::record::JobRecord;

/// Why an idempotency key could not be honoured.
#[derive(Debug)]
pub enum KeyConflict {
    /// The key made a job from a different request.
    DifferentRequest { key: String, job: String },
    /// The key belongs to an upload still arriving.
    InProgress { key: String, job: String },
}

pub(super) fn conflict(record: JobRecord, in_progress: bool) -> KeyConflict {
    let key = record.idempotency_key.unwrap_or_default();
    if in_progress {
        KeyConflict::InProgress {
            key,
            job: record.id,
        }
    } else {
        KeyConflict::DifferentRequest {
            key,
            job: record.id,
        }
    }
}
