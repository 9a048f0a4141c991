//! Persistent jobs: a batch accepted at once (202), run in the background, each result committed
//! as it completes, resumed after a restart or a crash, readable while and after it runs, and
//! expired after a retention period.

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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
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

    /// Resumes every job that was queued or running when the process stopped, and starts the
    /// janitor that expires finished jobs.
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

    /// Stores a job's items (before it is accepted) and starts it. The same idempotency key
    /// returns the job made with it.
    pub async fn submit(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: String,
        max_concurrent: usize,
        items: Vec<Box<serde_json::value::RawValue>>,
        idempotency_key: Option<String>,
    ) -> Result<(JobView, bool), StoreError> {
        let total = items.len() as u64;
        let record = new_record(
            JobStatus::Queued,
            kind,
            route,
            max_concurrent,
            total,
            idempotency_key,
        );
        let store = self.store.clone();
        let created = blocking(move || store.create(record, &items)).await?;
        match created {
            Created::New(record) => {
                self.spawn_runner(record.clone());
                Ok((self.view(&record), true))
            }
            Created::Existing(record) => Ok((self.view(&record), false)),
        }
    }

    /// Starts an upload: items arrive later through [`Upload::push`]. Returns the existing job
    /// instead when the idempotency key was used before.
    pub async fn begin_upload(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: String,
        max_concurrent: usize,
        idempotency_key: Option<String>,
    ) -> Result<Result<Upload, JobView>, StoreError> {
        if let Some(key) = idempotency_key.clone() {
            let store = self.store.clone();
            if let Some(existing) = blocking(move || store.by_key(&key)).await? {
                return Ok(Err(self.view(&existing)));
            }
        }
        let record = new_record(
            JobStatus::Uploading,
            kind,
            route,
            max_concurrent,
            0,
            idempotency_key,
        );
        let store = self.store.clone();
        let created = blocking(move || store.create::<Value>(record, &[])).await?;
        match created {
            Created::New(record) => Ok(Ok(Upload {
                jobs: self.clone(),
                record,
                buffer: Vec::new(),
                next: 0,
            })),
            Created::Existing(record) => Ok(Err(self.view(&record))),
        }
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

    /// Cancels a job; finished results stay readable. A finished job is left as it is.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobView>, StoreError> {
        let cancel = self.live.lock().unwrap().get(id).map(|l| l.cancel.clone());
        if let Some(c) = cancel {
            c.cancel();
        }
        let store = self.store.clone();
        let key = id.to_string();
        let Some(mut record) = blocking(move || store.get(&key)).await? else {
            return Ok(None);
        };
        if record.status == JobStatus::Queued
            || (record.status == JobStatus::Running && cancel_was_missing(&self.live, id))
        {
            // Not running in this process (e.g. queued): mark it cancelled here.
            record.status = JobStatus::Cancelled;
            record.finished_at_ms = Some(now_ms());
            let store = self.store.clone();
            let r = record.clone();
            blocking(move || store.put(&r)).await?;
        }
        Ok(Some(self.view(&record)))
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
                let key = id.clone();
                let message = e.to_string();
                let _ = blocking(move || {
                    if let Some(mut r) = store.get(&key)? {
                        r.status = JobStatus::Failed;
                        r.error = Some(message);
                        r.finished_at_ms = Some(now_ms());
                        store.put(&r)?;
                    }
                    Ok(())
                })
                .await;
            }
            me.live.lock().unwrap().remove(&id);
        });
    }

    /// Runs a job to its end: pending items are read from the store in pages, judged with the
    /// job's concurrency, and their results committed in small groups.
    async fn run(self: &Arc<Self>, mut record: JobRecord) -> Result<(), StoreError> {
        // Counts of what finished before (a resumed job).
        let mut summary = Summary::new(record.kind, record.total as usize);
        let store = self.store.clone();
        let id = record.id.clone();
        let kind = record.kind;
        let earlier: Vec<Value> = {
            let mut v = Vec::new();
            let s = store.clone();
            let id2 = id.clone();
            let mut collected = blocking(move || {
                let mut out = Vec::new();
                s.for_each_result(&id2, |b| {
                    out.push(serde_json::from_slice::<Value>(b).unwrap_or(Value::Null))
                })?;
                Ok(out)
            })
            .await?;
            v.append(&mut collected);
            v
        };
        for e in &earlier {
            summary.add(e);
        }
        let done_before = summary.done();
        drop(earlier);
        let cancel = CancellationToken::new();
        let shared = Arc::new(Mutex::new(summary));
        self.live.lock().unwrap().insert(
            id.clone(),
            Live {
                cancel: cancel.clone(),
                summary: shared.clone(),
                started: Instant::now(),
                done_before,
            },
        );
        record.status = JobStatus::Running;
        record.committed = done_before as u64;
        {
            let (s, r) = (store.clone(), record.clone());
            blocking(move || s.put(&r)).await?;
        }

        // Pages of pending items, read lazily so a huge job never sits in memory.
        let pages = futures::stream::unfold(Some(0u64), {
            let store = store.clone();
            let id = id.clone();
            move |from| {
                let store = store.clone();
                let id = id.clone();
                async move {
                    let from = from?;
                    let page = blocking(move || store.pending(&id, from, 512)).await;
                    match page {
                        Ok(p) if p.is_empty() => None,
                        Ok(p) => {
                            let next = p.last().map(|(i, _)| i + 1);
                            Some((futures::stream::iter(p), next))
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reading job items failed");
                            None
                        }
                    }
                }
            }
        })
        .flatten();
        let judge = self.judge.clone();
        let route = record.route.clone();
        let mut results = pages
            .map(move |(index, value)| {
                let judge = judge.clone();
                let route = route.clone();
                async move {
                    if let Some(msg) = value.get(INVALID_LINE).and_then(Value::as_str) {
                        let v = batch::error_entry(index as usize, "invalid_line", msg, None, None);
                        return (index, batch::Entry::from_value(index as usize, &v));
                    }
                    let item = BatchItem::parse(kind, index as usize, value);
                    let entry = batch::judge_one(&judge, &route, index as usize, item).await;
                    (index, entry)
                }
            })
            .buffer_unordered(record.max_concurrent.max(1))
            .take_until(cancel.clone().cancelled_owned())
            .boxed();

        let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut flush_at = tokio::time::Instant::now() + self.settings.commit_interval;
        loop {
            let next = tokio::select! {
                n = results.next() => n,
                _ = tokio::time::sleep_until(flush_at), if !pending.is_empty() => {
                    self.flush(&mut record, &mut pending).await?;
                    continue;
                }
            };
            let Some((index, entry)) = next else { break };
            shared.lock().unwrap().count(&entry.tally);
            self.judge.count_batch_item(entry.is_ok());
            if pending.is_empty() {
                flush_at = tokio::time::Instant::now() + self.settings.commit_interval;
            }
            pending.push((index, entry.json.get().as_bytes().to_vec()));
            if pending.len() >= 256 {
                self.flush(&mut record, &mut pending).await?;
            }
        }
        self.flush(&mut record, &mut pending).await?;
        let started = self
            .live
            .lock()
            .unwrap()
            .get(&id)
            .map(|l| l.started)
            .unwrap_or_else(Instant::now);
        let mut final_summary = shared.lock().unwrap().clone();
        final_summary.finish(started.elapsed());
        record.status = if cancel.is_cancelled() {
            JobStatus::Cancelled
        } else {
            JobStatus::Completed
        };
        record.finished_at_ms = Some(now_ms());
        record.summary = serde_json::to_value(&final_summary).ok();
        let (s, r) = (store.clone(), record.clone());
        blocking(move || s.put(&r)).await?;
        tracing::info!(job = %id, status = ?record.status, "job finished");
        Ok(())
    }

    async fn flush(
        &self,
        record: &mut JobRecord,
        pending: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        record.committed += pending.len() as u64;
        let entries = std::mem::take(pending);
        let (s, r) = (self.store.clone(), record.clone());
        blocking(move || s.commit_results(&r, &entries)).await
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

fn cancel_was_missing(live: &Mutex<HashMap<String, Live>>, id: &str) -> bool {
    !live.lock().unwrap().contains_key(id)
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
/// million items never sits in memory.
pub struct Upload {
    jobs: Arc<Jobs>,
    record: JobRecord,
    buffer: Vec<Value>,
    next: u64,
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

    /// Stores the last items, marks the job queued and starts it.
    pub async fn finish(mut self) -> Result<JobView, StoreError> {
        self.write().await?;
        self.record.total = self.next;
        self.record.status = JobStatus::Queued;
        let (store, r) = (self.jobs.store.clone(), self.record.clone());
        blocking(move || store.put(&r)).await?;
        self.jobs.spawn_runner(self.record.clone());
        Ok(self.jobs.view(&self.record))
    }

    /// Drops a failed upload and everything stored of it.
    pub async fn abandon(self) {
        let (store, r) = (self.jobs.store.clone(), self.record.clone());
        let _ = blocking(move || store.delete(&r)).await;
    }
}
