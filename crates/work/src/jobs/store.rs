//! What the job runner needs of a store, whichever it is: the embedded one of a single node
//! (redb) or one a fleet of replicas shares (Redis). The runner, the cancel path, idempotency
//! and the views are written once against [`JobStore`].
//!
//! The contract every store keeps: a job's status only changes through [`JobStore::update`], a
//! compare-and-set (a cancel wins every race); a job and its items are stored before it is
//! accepted; each index ends with exactly one result, and the first one committed is kept; an
//! idempotency key names one job until that job is deleted.
//!
//! The words of that contract live here with it, beside the record ([`super::record`]): the
//! items handed out, the results to commit, what creating a job did, a store's failure.
//! Implementations import them; the contract imports no implementation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use serde_json::value::RawValue;

use super::record::{JobRecord, JobStatus};
use crate::batch::{Summary, Tally};

/// How long a store call that failed with an I/O error waits before it is tried again: a job's
/// runner tries its call again this often, and the embedded store reopens its database (or
/// probes it) at most this often after a failure.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// A stored result: its index (or completion sequence number) and its JSON.
pub type Stored = (u64, Vec<u8>);

/// A compare-and-set on a job's record: sees the stored record, returns true to store what it
/// made of it. A store may call it more than once (when another writer came first).
pub type Change = Arc<dyn Fn(&mut JobRecord) -> bool + Send + Sync>;

/// One item handed to a runner.
#[derive(Debug)]
pub struct WorkItem {
    pub index: u64,
    pub item: Value,
    /// What the store needs to know the item done (a queue's entry id); empty when nothing.
    pub ticket: String,
    /// Taken over from a runner that stopped answering.
    pub claimed: bool,
}

/// Marks an input line that was not a JSON object; it becomes an error entry when the job runs.
pub const INVALID_LINE: &str = "__llm_judge_invalid_line";

/// A finished item, ready to commit.
#[derive(Debug, Clone)]
pub struct Done {
    pub index: u64,
    pub ticket: String,
    pub json: Vec<u8>,
    pub tally: Tally,
}

/// What [`JobStore::take`] found.
#[derive(Debug)]
pub enum Take {
    Items(Vec<WorkItem>),
    /// Nothing to take now, but the job is not done: others hold items in flight.
    Wait,
    /// Every item has its result (or, for a single runner, every item has been handed out).
    Drained,
    /// The job is no longer running (cancelled, or gone).
    Stopped,
}

/// What creating a job did.
pub enum Created {
    New(JobRecord),
    /// The idempotency key was used before, for the same request: this is that job.
    Existing(JobRecord),
    /// The idempotency key was used before for a different request.
    Conflict(JobRecord),
    /// The idempotency key belongs to an upload that has not finished.
    InProgress(JobRecord),
}

impl Created {
    /// What a new job's idempotency key finds when it names `existing` already: that job (the
    /// same request), a conflict (another request digest), or an upload still arriving.
    pub fn found(existing: JobRecord, new: &JobRecord) -> Created {
        if existing.status == JobStatus::Uploading {
            Created::InProgress(existing)
        } else if new.request_digest.is_some()
            && existing.request_digest.is_some()
            && new.request_digest != existing.request_digest
        {
            Created::Conflict(existing)
        } else {
            Created::Existing(existing)
        }
    }
}

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("job store: {message}")]
pub struct StoreError {
    pub(crate) message: String,
    /// An I/O failure (a full disk, a failed write): the same call may work later.
    pub(crate) transient: bool,
}

impl StoreError {
    /// A failure that retrying will not mend (a record that does not decode, a task that died).
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }

    /// A failure the same call may get past later (a store that does not answer just now).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }

    /// True for an I/O failure, after which the store reopens its database: the same call may
    /// succeed later (once there is space on the disk again, say).
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// A job store.
pub trait JobStore: Send + Sync + 'static {
    /// True when other processes serve the same jobs (their runners take items too, and an
    /// upload in progress may be another process's).
    fn fleet(&self) -> bool;

    /// Stores a new job and all its items at once, or finds the job that has its idempotency
    /// key (compared by request digest).
    fn create(
        &self,
        record: JobRecord,
        items: Vec<Box<RawValue>>,
    ) -> BoxFuture<'_, Result<Created, StoreError>>;

    /// Appends items `first..` of an upload.
    fn append_items(
        &self,
        id: &str,
        first: u64,
        items: Vec<Value>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>>;

    /// Every job, newest first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>>;

    /// The compare-and-set: returns the record as stored after it (`None`: no such job).
    fn update(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>>;

    /// Hands out items to run: up to `free` (a single runner may take more, paging through
    /// the items with `cursor`, the next index to look at).
    fn take<'a>(
        &'a self,
        id: &'a str,
        cursor: &'a mut u64,
        free: usize,
    ) -> BoxFuture<'a, Result<Take, StoreError>>;

    /// Reads again items [`JobStore::take`] handed out (`wanted`: their index and ticket), as
    /// stored, in no particular order; an item no longer stored is left out. A runner reads the
    /// items of a provider batch again when the batch answers, instead of holding them while it
    /// runs.
    fn items<'a>(
        &'a self,
        id: &'a str,
        wanted: &'a [(u64, String)],
    ) -> BoxFuture<'a, Result<Vec<WorkItem>, StoreError>>;

    /// Tells the store that the runner still works on these items (so no one takes them over).
    fn touch<'a>(
        &'a self,
        id: &'a str,
        tickets: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Commits results (a result for an index that has one already is dropped), numbered in
    /// completion order from `first_seq` where the store needs it; returns the record as stored.
    fn commit(
        &self,
        id: &str,
        first_seq: u64,
        done: Vec<Done>,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>>;

    /// Up to `limit` results after `after` (an index, or a completion sequence number).
    fn results(
        &self,
        id: &str,
        after: Option<u64>,
        by_completion: bool,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StoreError>>;

    /// Counts every stored result into `summary`, one result at a time (nothing is collected).
    fn summarize(&self, id: &str, summary: Summary) -> BoxFuture<'_, Result<Summary, StoreError>>;

    /// Removes a job with its items and results, and releases its idempotency key.
    fn delete(&self, record: &JobRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// An upload whose replica stopped: when job `id` is still uploading and was last heard of
    /// before `stale_before_ms` ([`JobRecord::upload_is_stale`]), marks it failed with
    /// `reason` and frees its idempotency key (a new upload may use it); the record as it is
    /// stored then, or `None` when there is no such job.
    fn abandon_upload<'a>(
        &'a self,
        id: &'a str,
        stale_before_ms: u64,
        reason: String,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, StoreError>>;

    /// Sends a finished job's errored items again, in one step: removes their results (the
    /// completion order of the results kept is renumbered, and `committed` counts them), applies
    /// `change` to the record (queues the job again), and leaves every item without a result
    /// to be taken again. Returns the record as stored and how many results were removed;
    /// a job not finished is left as it is (its record says so); `None`: no such job.
    fn retry_errors(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<(JobRecord, u64)>, StoreError>>;

    /// `Ok` while the store takes writes; otherwise why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;

    /// How long an item a runner took may go without a word from it before another takes it
    /// over (`None`: nobody else would).
    fn claim_idle(&self) -> Option<std::time::Duration> {
        None
    }

    /// Jobs some runner should be working on (queued, running or being cancelled), for a
    /// fleet's replicas to join; a single node's store knows them from its own start.
    fn active(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Runs a store call, and again every [`RETRY_INTERVAL`] for as long as it fails with an
/// I/O error (a full disk, an unreachable Redis): a job's runner waits for the store instead of
/// losing its work.
pub(super) async fn retrying<T, F, Fut>(job: &str, f: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut waited = false;
    loop {
        match f().await {
            Err(e) if e.is_transient() => {
                if !waited {
                    tracing::warn!(job, error = %e, "the job waits for the store to work again");
                    waited = true;
                }
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
            result => {
                if waited && result.is_ok() {
                    tracing::info!(job, "the job goes on: the store works again");
                }
                return result;
            }
        }
    }
}

/// Whether a stored result is an error entry (`{"index":N,"status":"error",...}`).
pub fn is_error_result(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        status: Option<&'a str>,
    }
    serde_json::from_slice::<Head<'_>>(bytes).is_ok_and(|h| h.status == Some("error"))
}

/// A compare-and-set change from a closure.
pub(super) fn change(f: impl Fn(&mut JobRecord) -> bool + Send + Sync + 'static) -> Change {
    Arc::new(f)
}
