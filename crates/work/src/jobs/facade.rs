//! What the HTTP handlers ask of jobs: submitting one (all its items at once, or as an upload),
//! reading one or all, cancelling one, and reading its results.

use std::sync::Arc;

use super::conflict::{KeyConflict, conflict};
use super::manager::Jobs;
use super::options::{DEFAULT_PROVIDER_BATCH_DEADLINE_S, JobOptions};
use super::record::{JobRecord, JobStatus, now_ms};
use super::store::{Created, StoreError, change};
use super::upload::{Begin, Upload};
use super::view::JobView;
use llm_judge_judge::JudgeKind;

impl Jobs {
    /// True when the store is a fleet's (other replicas run the same jobs).
    pub fn fleet(&self) -> bool {
        self.store.fleet()
    }

    /// `Ok` while the store takes writes; otherwise why not (it reopens itself and retries).
    pub async fn ready(&self) -> Result<(), String> {
        self.store.check().await
    }

    /// Stores a job's items (before it is accepted) and starts it. The same idempotency key
    /// with the same request digest returns the job made with it.
    pub async fn submit(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: String,
        max_concurrent: usize,
        items: Vec<Box<serde_json::value::RawValue>>,
        key: Option<(String, String)>,
        options: &JobOptions,
    ) -> Result<Result<(JobView, bool), KeyConflict>, StoreError> {
        let total = items.len() as u64;
        let (key, digest) = key.unzip();
        let record = new_record(
            JobStatus::Queued,
            kind,
            route,
            max_concurrent,
            total,
            key,
            digest,
            options,
        );
        // Kept for a second try, should the key name an upload whose replica stopped.
        let again = record
            .idempotency_key
            .is_some()
            .then(|| (record.clone(), items.clone()));
        let mut created = self.store.create(record, items).await?;
        if let (Created::InProgress(existing), Some((record, items))) = (&created, again)
            && self.free_stranded(existing).await?
        {
            created = self.store.create(record, items).await?;
        }
        Ok(match created {
            Created::New(record) => {
                self.spawn_runner(record.clone());
                Ok((self.view(&record), true))
            }
            Created::Existing(record) => Ok((self.view(&record), false)),
            Created::Conflict(record) => Err(conflict(record, false)),
            Created::InProgress(record) => Err(conflict(record, true)),
        })
    }

    /// Starts an upload: items arrive later through [`Upload::push`]. An idempotency key used
    /// before answers with its job instead (or with a conflict while that job is uploading).
    pub async fn begin_upload(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: String,
        max_concurrent: usize,
        idempotency_key: Option<String>,
        options: &JobOptions,
    ) -> Result<Begin, StoreError> {
        let record = new_record(
            JobStatus::Uploading,
            kind,
            route,
            max_concurrent,
            0,
            idempotency_key,
            None,
            options,
        );
        let mut created = self.store.create(record.clone(), Vec::new()).await?;
        if let Created::InProgress(existing) = &created
            && self.free_stranded(existing).await?
        {
            created = self.store.create(record, Vec::new()).await?;
        }
        Ok(match created {
            Created::New(record) => Begin::Upload(Box::new(Upload::new(self.clone(), record))),
            Created::Existing(record) | Created::Conflict(record) => Begin::Existing {
                digest: record.request_digest.clone(),
                view: Box::new(self.view(&record)),
            },
            Created::InProgress(record) => Begin::Conflict(conflict(record, true)),
        })
    }

    /// An upload in progress whose replica has not been heard of for the store's `claim_idle`
    /// (it stopped mid-upload): marked failed with the reason, and its idempotency key freed.
    /// True when it was.
    pub(super) async fn free_stranded(&self, upload: &JobRecord) -> Result<bool, StoreError> {
        let Some(idle) = self.store.claim_idle() else {
            return Ok(false);
        };
        let before = now_ms().saturating_sub(idle.as_millis() as u64);
        if !upload.upload_is_stale(before) {
            return Ok(false);
        }
        let abandoned = self
            .store
            .abandon_upload(&upload.id, before, STRANDED.to_string())
            .await?;
        let freed = abandoned.is_some_and(|r| r.status == JobStatus::Failed);
        if freed {
            tracing::warn!(job = %upload.id, "an upload whose replica stopped was marked failed; its idempotency key is free again");
        }
        Ok(freed)
    }

    /// A job, when `tenant` may see it (see [`JobRecord::visible_to`]); `None` otherwise, as
    /// for a job that does not exist.
    pub async fn get(&self, id: &str, tenant: Option<&str>) -> Result<Option<JobView>, StoreError> {
        Ok(self
            .store
            .get(id)
            .await?
            .filter(|r| r.visible_to(tenant))
            .map(|r| self.view(&r)))
    }

    /// The newest `limit` jobs `tenant` may see.
    pub async fn list(
        &self,
        limit: usize,
        tenant: Option<&str>,
    ) -> Result<Vec<JobView>, StoreError> {
        let all = self.store.list().await?;
        Ok(all
            .iter()
            .filter(|r| r.visible_to(tenant))
            .take(limit)
            .map(|r| self.view(r))
            .collect())
    }

    /// Cancels a job; finished results stay readable. A job not started yet is `cancelled` at
    /// once; a running one is `cancelling` until its runner has stopped. A finished job is left
    /// as it is.
    /// `None` when there is no such job, or `tenant` may not see it.
    pub async fn cancel(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<JobView>, StoreError> {
        match self.store.get(id).await? {
            Some(r) if r.visible_to(tenant) => {}
            _ => return Ok(None),
        }
        let record = self
            .store
            .update(
                id,
                change(|r| match r.status {
                    // No runner has claimed it (its claim would have made it `running`): the
                    // claim will see this and stop.
                    JobStatus::Queued | JobStatus::Uploading => {
                        r.status = JobStatus::Cancelled;
                        r.finished_at_ms = Some(now_ms());
                        true
                    }
                    JobStatus::Running => {
                        r.status = JobStatus::Cancelling;
                        true
                    }
                    _ => false,
                }),
            )
            .await?;
        // The runner is registered before it claims the job, so a claim made before the write
        // above is always found here. (Other replicas' runners see the write within a tick.)
        if let Some(live) = self.live.lock().unwrap().get(id) {
            live.cancel.cancel();
        }
        Ok(record.map(|r| self.view(&r)))
    }

    /// Up to `limit` finished results after `after` (an index, or a completion sequence number
    /// when `by_completion`).
    pub async fn results(
        &self,
        id: &str,
        after: Option<u64>,
        by_completion: bool,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.store.results(id, after, by_completion, limit).await
    }
}

/// A fresh job record: nothing committed, not finished.
#[allow(clippy::too_many_arguments)]
fn new_record(
    status: JobStatus,
    kind: JudgeKind,
    route: String,
    max_concurrent: usize,
    total: u64,
    idempotency_key: Option<String>,
    request_digest: Option<String>,
    options: &JobOptions,
) -> JobRecord {
    JobRecord {
        id: new_id(),
        status,
        kind,
        route,
        max_concurrent,
        total,
        created_at_ms: now_ms(),
        finished_at_ms: None,
        idempotency_key,
        request_digest,
        committed: 0,
        summary: None,
        error: None,
        counts: None,
        provider_batch: options.provider_batch,
        provider_batch_deadline_s: options.provider_batch.then(|| {
            options
                .provider_batch_deadline_s
                .unwrap_or(DEFAULT_PROVIDER_BATCH_DEADLINE_S)
        }),
        provider_batches: Vec::new(),
        budget: (!options.budget.is_empty()).then_some(options.budget),
        driver: None,
        batch_submits: Vec::new(),
        client: options.client.clone(),
        owner: options.owner.clone(),
        upload_seen_ms: (status == JobStatus::Uploading).then(now_ms),
        max_wait_s: options.max_wait_s,
    }
}

/// Why an upload whose replica stopped failed.
pub(super) const STRANDED: &str = "the upload broke off: the replica receiving it stopped before it ended; \
                        send it again (its idempotency key is free)";

fn new_id() -> String {
    format!("job_{:016x}", rand::random::<u64>())
}

/// Whether `id` has the form of a job's id (`job_` and 16 lowercase hex digits): anything else
/// names no job, and never reaches a store (whose keys it would otherwise become part of).
pub fn is_job_id(id: &str) -> bool {
    id.strip_prefix("job_").is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_have_one_form() {
        for _ in 0..100 {
            assert!(is_job_id(&new_id()));
        }
        for bad in [
            "",
            "job_",
            "job_0123456789abcdef:q",
            "job_0123456789ABCDEF",
            "job_0123456789abcde",
            "job_0123456789abcdef0",
            "jab_0123456789abcdef",
            "../job_0123456789abcdef",
        ] {
            assert!(!is_job_id(bad), "{bad:?}");
        }
    }
}
