//! Persistent jobs: a batch accepted at once (202), run in the background, each result committed
//! as it completes, resumed after a restart or a crash, readable while and after it runs, and
//! expired after a retention period.
//!
//! A job's status only moves through compare-and-set writes on its stored record, so a cancel
//! wins every race with the job's runner: a job cancelled before its runner starts (right after
//! a restart, or right after it was submitted) never calls a provider. A failed write (a full
//! disk) does not lose a job: its runner keeps the results not yet committed and retries until
//! the store works again.

pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::batch::{self, BatchItem, Progress, Summary};
use crate::judge::{Judge, JudgeKind};
pub use store::{Created, JobRecord, JobStatus, Store, StoreError};

/// Job settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub data_dir: std::path::PathBuf,
    /// Finished jobs are deleted this long after they finish.
    pub retention: Duration,
    pub janitor_interval: Duration,
    /// Results finishing within this window are committed together (one disk sync for many).
    pub commit_interval: Duration,
    /// The store's page cache, in bytes.
    pub cache_bytes: usize,
}

/// A running job's live state.
struct Live {
    cancel: CancellationToken,
    summary: Arc<Mutex<Summary>>,
    started: Instant,
    done_before: usize,
}

/// The job manager, shared by the HTTP handlers.
pub struct Jobs {
    store: Arc<Store>,
    judge: Arc<Judge>,
    settings: JobSettings,
    live: Mutex<HashMap<String, Live>>,
    /// The runtime [`Jobs::start`] ran on, where every job runs: not the serving thread that
    /// happened to take the request that made it.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh job record: nothing committed, not finished.
fn new_record(
    status: JobStatus,
    kind: JudgeKind,
    route: String,
    max_concurrent: usize,
    total: u64,
    idempotency_key: Option<String>,
    request_digest: Option<String>,
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
    }
}

fn new_id() -> String {
    format!("job_{:016x}", rand::random::<u64>())
}

/// A job as shown to clients.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub kind: JudgeKind,
    pub judge: String,
    pub total: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub progress: Progress,
    /// The final summary, once finished.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    pub error: Option<String>,
}

/// Why an idempotency key could not be honoured.
#[derive(Debug)]
pub enum KeyConflict {
    /// The key made a job from a different request.
    DifferentRequest { key: String, job: String },
    /// The key belongs to an upload still arriving.
    InProgress { key: String, job: String },
}

/// What [`Jobs::begin_upload`] found.
pub enum Begin {
    /// A new upload: push its items, then finish it.
    Upload(Upload),
    /// The idempotency key made this job; its request digest is to be compared with the
    /// upload's (which takes reading it).
    Existing {
        view: JobView,
        digest: Option<String>,
    },
    Conflict(KeyConflict),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::other(format!("store task failed: {e}")))?
}

/// Runs a store call, and again every [`store::RETRY_INTERVAL`] for as long as it fails with an
/// I/O error (a full disk): a job's runner waits for the store instead of losing its work.
async fn retrying<T: Send + 'static>(
    job: &str,
    f: impl Fn() -> Result<T, StoreError> + Send + Sync + 'static,
) -> Result<T, StoreError> {
    let f = Arc::new(f);
    let mut waited = false;
    loop {
        let call = f.clone();
        match blocking(move || call()).await {
            Err(e) if e.is_transient() => {
                if !waited {
                    tracing::warn!(job, error = %e, "the job waits for the store to work again");
                    waited = true;
                }
                tokio::time::sleep(store::RETRY_INTERVAL).await;
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

impl Jobs {
    /// Opens the store; call [`Jobs::start`] to resume unfinished jobs and run the janitor.
    pub fn open(settings: JobSettings, judge: Arc<Judge>) -> Result<Arc<Jobs>, StoreError> {
        let store = Arc::new(Store::open(&settings.data_dir, settings.cache_bytes)?);
        Ok(Arc::new(Jobs {
            store,
            judge,
            settings,
            live: Mutex::new(HashMap::new()),
            runtime: std::sync::OnceLock::new(),
        }))
    }

    /// Resumes every job that was queued, running or being cancelled when the process stopped,
    /// and starts the janitor that expires finished jobs.
    pub async fn start(self: &Arc<Self>) -> Result<usize, StoreError> {
        let _ = self.runtime.set(tokio::runtime::Handle::current());
        let store = self.store.clone();
        let all = blocking(move || store.list()).await?;
        // An upload cut off by the crash was never accepted: drop it.
        for job in all.iter().filter(|j| j.status == JobStatus::Uploading) {
            tracing::warn!(job = %job.id, "removing a job whose upload did not finish");
            let (store, job) = (self.store.clone(), job.clone());
            blocking(move || store.delete(&job)).await?;
        }
        let unfinished: Vec<JobRecord> = all
            .into_iter()
            .filter(|j| !j.status.is_finished() && j.status != JobStatus::Uploading)
            .collect();
        let n = unfinished.len();
        for job in unfinished {
            tracing::info!(job = %job.id, committed = job.committed, total = job.total, "resuming job");
            self.spawn_runner(job);
        }
        let me = Arc::downgrade(self);
        let every = self.settings.janitor_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(jobs) = me.upgrade() else { return };
                if let Err(e) = jobs.expire().await {
                    tracing::warn!(error = %e, "expiring old jobs failed");
                }
            }
        });
        Ok(n)
    }

    /// `Ok` while the store takes writes; otherwise why not (it reopens itself and retries).
    pub async fn ready(&self) -> Result<(), String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.check())
            .await
            .unwrap_or_else(|e| Err(format!("store check failed: {e}")))
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
        );
        let store = self.store.clone();
        let created = blocking(move || store.create(record, &items)).await?;
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
    ) -> Result<Begin, StoreError> {
        let record = new_record(
            JobStatus::Uploading,
            kind,
            route,
            max_concurrent,
            0,
            idempotency_key,
            None,
        );
        let store = self.store.clone();
        let created = blocking(move || store.create::<Value>(record, &[])).await?;
        Ok(match created {
            Created::New(record) => Begin::Upload(Upload {
                jobs: self.clone(),
                record,
                buffer: Vec::new(),
                next: 0,
                open: true,
            }),
            Created::Existing(record) | Created::Conflict(record) => Begin::Existing {
                digest: record.request_digest.clone(),
                view: self.view(&record),
            },
            Created::InProgress(record) => Begin::Conflict(conflict(record, true)),
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobView>, StoreError> {
        let store = self.store.clone();
        let id = id.to_string();
        Ok(blocking(move || store.get(&id))
            .await?
            .map(|r| self.view(&r)))
    }

    pub async fn list(&self, limit: usize) -> Result<Vec<JobView>, StoreError> {
        let store = self.store.clone();
        let all = blocking(move || store.list()).await?;
        Ok(all.iter().take(limit).map(|r| self.view(r)).collect())
    }

    /// Cancels a job; finished results stay readable. A job not started yet is `cancelled` at
    /// once; a running one is `cancelling` until its runner has stopped. A finished job is left
    /// as it is.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobView>, StoreError> {
        let store = self.store.clone();
        let key = id.to_string();
        let record = blocking(move || {
            store.update(&key, |r| match r.status {
                // No runner has claimed it (its claim would have made it `running`): the claim
                // will see this and stop.
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
            })
        })
        .await?;
        // The runner is registered before it claims the job, so a claim made before the write
        // above is always found here.
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
        let store = self.store.clone();
        let id = id.to_string();
        blocking(move || {
            if by_completion {
                store.results_by_completion(&id, after, limit)
            } else {
                store.results_by_index(&id, after, limit)
            }
        })
        .await
    }

    fn view(&self, r: &JobRecord) -> JobView {
        let live = self.live.lock().unwrap();
        let progress = match live.get(&r.id) {
            Some(l) => l
                .summary
                .lock()
                .unwrap()
                .progress(l.started.elapsed(), l.done_before),
            None => finished_progress(r),
        };
        JobView {
            id: r.id.clone(),
            status: if live.contains_key(&r.id) && r.status == JobStatus::Queued {
                JobStatus::Running
            } else {
                r.status
            },
            kind: r.kind,
            judge: r.route.clone(),
            total: r.total,
            created_at_ms: r.created_at_ms,
            finished_at_ms: r.finished_at_ms,
            progress,
            summary: r.summary.clone(),
            error: r.error.clone(),
        }
    }

    fn spawn_runner(self: &Arc<Self>, record: JobRecord) {
        let me = self.clone();
        let runtime = self
            .runtime
            .get()
            .cloned()
            .unwrap_or_else(tokio::runtime::Handle::current);
        runtime.spawn(async move {
            let id = record.id.clone();
            if let Err(e) = me.run(record).await {
                tracing::error!(job = %id, error = %e, "job failed");
                let store = me.store.clone();
                let message = e.to_string();
                let key = id.clone();
                let _ = retrying(&id, move || {
                    store.update(&key, |r| {
                        if r.status.is_finished() {
                            return false;
                        }
                        r.status = JobStatus::Failed;
                        r.error = Some(message.clone());
                        r.finished_at_ms = Some(now_ms());
                        true
                    })
                })
                .await;
            }
            me.live.lock().unwrap().remove(&id);
        });
    }

    /// Runs a job to its end: pending items are read from the store in pages, judged with the
    /// job's concurrency, and their results committed in small groups.
    async fn run(self: &Arc<Self>, record: JobRecord) -> Result<(), StoreError> {
        let store = self.store.clone();
        let id = record.id.clone();
        let kind = record.kind;
        // What finished before (a resumed job), counted one stored result at a time.
        let summary = {
            let (s, id, total) = (store.clone(), id.clone(), record.total as usize);
            retrying(&id.clone(), move || {
                let mut summary = Summary::new(kind, total);
                s.for_each_result(&id, |b| {
                    summary.add(&serde_json::from_slice::<Value>(b).unwrap_or(Value::Null))
                })?;
                Ok(summary)
            })
            .await?
        };
        let done_before = summary.done();
        let cancel = CancellationToken::new();
        let shared = Arc::new(Mutex::new(summary));
        // Registered before the claim below, so that a cancel after the claim finds the token.
        self.live.lock().unwrap().insert(
            id.clone(),
            Live {
                cancel: cancel.clone(),
                summary: shared.clone(),
                started: Instant::now(),
                done_before,
            },
        );
        // The claim: queued or running becomes running; a cancel that came first wins.
        let claimed = {
            let (s, key) = (store.clone(), id.clone());
            retrying(&id, move || {
                s.update(&key, |r| match r.status {
                    JobStatus::Queued | JobStatus::Running => {
                        r.status = JobStatus::Running;
                        r.committed = done_before as u64;
                        true
                    }
                    JobStatus::Cancelling => {
                        r.status = JobStatus::Cancelled;
                        r.finished_at_ms = Some(now_ms());
                        true
                    }
                    _ => false,
                })
            })
            .await?
        };
        if claimed.is_none_or(|r| r.status != JobStatus::Running) {
            tracing::info!(job = %id, "job cancelled before it started");
            return Ok(());
        }

        // Pages of pending items, read lazily so a huge job never sits in memory. A page that
        // cannot be read ends the job as failed, never as completed without its items.
        let pages = futures::stream::unfold(Some(0u64), {
            let store = store.clone();
            let id = id.clone();
            move |from| {
                let store = store.clone();
                let id = id.clone();
                async move {
                    let from = from?;
                    let job = id.clone();
                    match retrying(&job, move || store.pending(&id, from, 512)).await {
                        Ok(p) if p.is_empty() => None,
                        Ok(p) => {
                            let next = p.last().map(|(i, _)| i + 1);
                            Some((futures::stream::iter(p.into_iter().map(Ok)).boxed(), next))
                        }
                        Err(e) => Some((futures::stream::iter([Err(e)]).boxed(), None)),
                    }
                }
            }
        })
        .flatten();
        let judge = self.judge.clone();
        let route = record.route.clone();
        let mut results = pages
            .map(move |page| {
                let judge = judge.clone();
                let route = route.clone();
                async move {
                    let (index, value) = page?;
                    if let Some(msg) = value.get(INVALID_LINE).and_then(Value::as_str) {
                        let v = batch::error_entry(index as usize, "invalid_line", msg, None, None);
                        return Ok((index, batch::Entry::from_value(index as usize, &v)));
                    }
                    let item = BatchItem::parse(kind, index as usize, value);
                    let entry = batch::judge_one(&judge, &route, index as usize, item).await;
                    Ok((index, entry))
                }
            })
            .buffer_unordered(record.max_concurrent.max(1))
            .take_until(cancel.clone().cancelled_owned())
            .boxed();

        let mut committed = done_before as u64;
        let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut flush_at = tokio::time::Instant::now() + self.settings.commit_interval;
        loop {
            let next = tokio::select! {
                n = results.next() => n,
                _ = tokio::time::sleep_until(flush_at), if !pending.is_empty() => {
                    self.flush(&id, &mut committed, &mut pending, &cancel).await?;
                    continue;
                }
            };
            let (index, entry) = match next {
                None => break,
                Some(Ok(done)) => done,
                Some(Err(e)) => {
                    self.flush(&id, &mut committed, &mut pending, &cancel)
                        .await?;
                    return Err(e);
                }
            };
            shared.lock().unwrap().count(&entry.tally);
            self.judge.count_batch_item(entry.is_ok());
            if pending.is_empty() {
                flush_at = tokio::time::Instant::now() + self.settings.commit_interval;
            }
            pending.push((index, entry.json.get().as_bytes().to_vec()));
            if pending.len() >= 256 {
                self.flush(&id, &mut committed, &mut pending, &cancel)
                    .await?;
            }
        }
        drop(results);
        self.flush(&id, &mut committed, &mut pending, &cancel)
            .await?;
        let started = self
            .live
            .lock()
            .unwrap()
            .get(&id)
            .map(|l| l.started)
            .unwrap_or_else(Instant::now);
        let mut final_summary = shared.lock().unwrap().clone();
        final_summary.finish(started.elapsed());
        let summary = serde_json::to_value(&final_summary).ok();
        let stopped = cancel.is_cancelled();
        let (s, key) = (store.clone(), id.clone());
        let finished = retrying(&id, move || {
            s.update(&key, |r| {
                r.status = match r.status {
                    JobStatus::Cancelling => JobStatus::Cancelled,
                    JobStatus::Running if stopped => JobStatus::Cancelled,
                    JobStatus::Running => JobStatus::Completed,
                    _ => return false,
                };
                r.finished_at_ms = Some(now_ms());
                r.summary = summary.clone();
                true
            })
        })
        .await?;
        tracing::info!(job = %id, status = ?finished.map(|r| r.status), "job finished");
        Ok(())
    }

    /// Commits the results waiting in `pending`, retrying while the store fails with an I/O
    /// error (they stay in memory meanwhile); a record found `cancelling` stops the job.
    async fn flush(
        &self,
        id: &str,
        committed: &mut u64,
        pending: &mut Vec<(u64, Vec<u8>)>,
        cancel: &CancellationToken,
    ) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let entries = Arc::new(std::mem::take(pending));
        let (s, key, first, batch) = (
            self.store.clone(),
            id.to_string(),
            *committed,
            entries.clone(),
        );
        let stored = retrying(id, move || s.commit_results(&key, first, &batch)).await?;
        *committed += entries.len() as u64;
        if stored.is_none_or(|r| r.status != JobStatus::Running) {
            cancel.cancel();
        }
        Ok(())
    }

    /// Deletes finished jobs older than the retention.
    pub async fn expire(&self) -> Result<usize, StoreError> {
        let store = self.store.clone();
        let retention = self.settings.retention.as_millis() as u64;
        blocking(move || {
            let now = now_ms();
            let mut n = 0;
            for job in store.list()? {
                if job.status.is_finished()
                    && job
                        .finished_at_ms
                        .is_some_and(|t| now.saturating_sub(t) >= retention)
                {
                    store.delete(&job)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

fn conflict(record: JobRecord, in_progress: bool) -> KeyConflict {
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

/// The progress of a job not running here (finished, or not yet resumed).
fn finished_progress(r: &JobRecord) -> Progress {
    let s = r.summary.as_ref();
    let n = |k: &str| s.and_then(|s| s[k].as_u64()).unwrap_or(0) as usize;
    Progress {
        done: r.committed as usize,
        total: r.total as usize,
        correct: n("correct"),
        incorrect: n("incorrect"),
        unscored: n("unscored"),
        errors: n("errors"),
        items_per_second: s
            .and_then(|s| s["items_per_second"].as_f64())
            .unwrap_or(0.0),
        eta_s: None,
    }
}

/// An NDJSON upload in progress: items are written in pages as they arrive, so an upload of a
/// million items never sits in memory. An upload dropped before it finished (the client went
/// away) is removed with its items, and its idempotency key is free again.
pub struct Upload {
    jobs: Arc<Jobs>,
    record: JobRecord,
    buffer: Vec<Value>,
    next: u64,
    /// Neither finished nor abandoned yet.
    open: bool,
}

/// Marks an input line that was not a JSON object; it becomes an error entry when the job runs.
pub const INVALID_LINE: &str = "__llm_judge_invalid_line";

impl Upload {
    pub fn count(&self) -> u64 {
        self.next + self.buffer.len() as u64
    }

    /// Adds one item (or an invalid-line marker).
    pub async fn push(&mut self, item: Value) -> Result<(), StoreError> {
        self.buffer.push(item);
        if self.buffer.len() >= 2000 {
            self.write().await?;
        }
        Ok(())
    }

    async fn write(&mut self) -> Result<(), StoreError> {
        let items = std::mem::take(&mut self.buffer);
        let first = self.next;
        self.next += items.len() as u64;
        let (store, id) = (self.jobs.store.clone(), self.record.id.clone());
        blocking(move || store.append_items(&id, first, &items)).await
    }

    /// Stores the last items, marks the job queued (with the digest of the upload that made
    /// it) and starts it.
    pub async fn finish(mut self, digest: Option<String>) -> Result<JobView, StoreError> {
        self.write().await?;
        let (store, id, total) = (self.jobs.store.clone(), self.record.id.clone(), self.next);
        let record = blocking(move || {
            store.update(&id, |r| {
                if r.status != JobStatus::Uploading {
                    return false; // cancelled while it was arriving
                }
                r.status = JobStatus::Queued;
                r.total = total;
                r.request_digest = digest;
                true
            })
        })
        .await?;
        self.open = false;
        let record = record.ok_or_else(|| StoreError::other("the upload's job disappeared"))?;
        if record.status == JobStatus::Queued {
            self.jobs.spawn_runner(record.clone());
        }
        Ok(self.jobs.view(&record))
    }

    /// Drops a failed upload and everything stored of it.
    pub async fn abandon(mut self) {
        self.open = false;
        let (store, r) = (self.jobs.store.clone(), self.record.clone());
        let _ = blocking(move || store.delete(&r)).await;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // The request was dropped mid-upload: remove what was stored, off this thread.
        let (store, r) = (self.jobs.store.clone(), self.record.clone());
        let remove = move || {
            if let Err(e) = store.delete(&r) {
                tracing::warn!(job = %r.id, error = %e, "removing an unfinished upload failed");
            }
        };
        match self
            .jobs
            .runtime
            .get()
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        {
            Some(rt) => drop(rt.spawn_blocking(remove)),
            None => remove(),
        }
    }
}
