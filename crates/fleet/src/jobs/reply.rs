//! Reading Redis's replies: values as text and numbers, a job's record with the counters of
//! its hash, stream entries as work items; and the words written back (a status, an error).

use redis::Value as R;
use serde_json::Value;

use crate::RedisError;
use llm_judge_work::jobs::record::{Counts, JobRecord, JobStatus};
use llm_judge_work::jobs::store::{StoreError, WorkItem};

/// The fields of a job's hash a record is read from.
pub(super) const RECORD_FIELDS: [&str; 8] = [
    "record",
    "committed",
    "correct",
    "incorrect",
    "unscored",
    "errors",
    "started_ms",
    "scored",
];

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn store_error(what: &str) -> impl Fn(RedisError) -> StoreError + '_ {
    move |e| StoreError::transient(format!("{what}: {e}"))
}

pub(super) fn status_str(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Uploading => "uploading",
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Cancelling => "cancelling",
        JobStatus::Completed => "completed",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Failed => "failed",
    }
}

pub(super) fn text(v: &R) -> Option<String> {
    match v {
        R::BulkString(b) => String::from_utf8(b.clone()).ok(),
        R::SimpleString(s) => Some(s.clone()),
        R::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(super) fn int(v: &R) -> u64 {
    text(v).and_then(|t| t.parse().ok()).unwrap_or(0)
}

pub(super) fn array(v: &R) -> &[R] {
    match v {
        R::Array(a) => a,
        _ => &[],
    }
}

/// A record from its JSON and the hash's counters.
pub(super) fn record_of(json: &str, fields: &[R]) -> Result<JobRecord, StoreError> {
    let mut r: JobRecord =
        serde_json::from_str(json).map_err(|e| StoreError::other(format!("decode job: {e}")))?;
    let f = |i: usize| fields.get(i).map_or(0, int);
    r.committed = f(1);
    r.counts = Some(Counts {
        correct: f(2),
        incorrect: f(3),
        unscored: f(4),
        errors: f(5),
        started_at_ms: fields.get(6).and_then(text).and_then(|t| t.parse().ok()),
    });
    Ok(r)
}

/// Stream entries `[[id, [field, value, ...]], ...]` as work items.
pub(super) fn work_items(entries: &[R], claimed: bool) -> Vec<WorkItem> {
    entries
        .iter()
        .filter_map(|e| {
            let e = array(e);
            let id = text(e.first()?)?;
            let fields = array(e.get(1)?);
            let mut index = None;
            let mut item = Value::Null;
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                    (Some("i"), Some(v)) => index = Some(int(v)),
                    (Some("v"), Some(R::BulkString(b))) => {
                        item = serde_json::from_slice(b).unwrap_or(Value::Null)
                    }
                    _ => {}
                }
            }
            Some(WorkItem {
                index: index?,
                item,
                ticket: id,
                claimed,
            })
        })
        .collect()
}
