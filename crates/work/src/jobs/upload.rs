//! NDJSON uploads: a job whose items arrive as the request is read, stored page by page, and
//! queued once the upload finishes.

use std::sync::Arc;

use serde_json::Value;

use super::conflict::KeyConflict;
use super::manager::Jobs;
use super::record::{JobRecord, JobStatus, now_ms};
use super::store::{JobStore, StoreError, change};
use super::view::JobView;

/// What [`Jobs::begin_upload`] found.
pub enum Begin {
    /// A new upload: push its items, then finish it.
    Upload(Box<Upload>),
    /// The idempotency key made this job; its request digest is to be compared with the
    /// upload's (which takes reading it).
    Existing {
        view: Box<JobView>,
        digest: Option<String>,
    },
    Conflict(KeyConflict),
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
    /// In a fleet: tells the other replicas, now and then, that the upload is still arriving.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Upload {
    /// A new upload of the job `record` (stored with no items yet).
    pub(super) fn new(jobs: Arc<Jobs>, record: JobRecord) -> Upload {
        let heartbeat = jobs
            .store
            .claim_idle()
            .map(|idle| tokio::spawn(heartbeat(jobs.store.clone(), record.id.clone(), idle)));
        Upload {
            jobs,
            record,
            buffer: Vec::new(),
            next: 0,
            open: true,
            heartbeat,
        }
    }
}

/// While an upload arrives: its record says so every third of `idle`, so that the other
/// replicas of a fleet never take it for one whose replica stopped (and, when that replica does
/// stop, find out within `idle`).
async fn heartbeat(store: Arc<dyn JobStore>, id: String, idle: std::time::Duration) {
    let mut every = tokio::time::interval(idle / 3);
    every.tick().await;
    loop {
        every.tick().await;
        let seen = change(|r| {
            if r.status != JobStatus::Uploading {
                return false;
            }
            r.upload_seen_ms = Some(now_ms());
            true
        });
        match store.update(&id, seen).await {
            Ok(Some(r)) if r.status == JobStatus::Uploading => {}
            Ok(_) => return,
            Err(e) => tracing::debug!(job = %id, error = %e, "an upload's heartbeat failed"),
        }
    }
}

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
        self.jobs
            .store
            .append_items(&self.record.id, first, items)
            .await
    }

    /// Stores the last items, marks the job queued (with the digest of the upload that made
    /// it) and starts it.
    pub async fn finish(mut self, digest: Option<String>) -> Result<JobView, StoreError> {
        self.write().await?;
        let total = self.next;
        let queue = change(move |r| {
            if r.status != JobStatus::Uploading {
                return false; // cancelled while it was arriving
            }
            r.status = JobStatus::Queued;
            r.total = total;
            r.request_digest = digest.clone();
            true
        });
        let record = self.jobs.store.update(&self.record.id, queue).await?;
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
        let _ = self.jobs.store.delete(&self.record).await;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if !self.open {
            return;
        }
        // The request was dropped mid-upload: remove what was stored, in a task of its own.
        let (store, r) = (self.jobs.store.clone(), self.record.clone());
        let remove = async move {
            if let Err(e) = store.delete(&r).await {
                tracing::warn!(job = %r.id, error = %e, "removing an unfinished upload failed");
            }
        };
        if let Some(rt) = self
            .jobs
            .runtime
            .get()
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        {
            drop(rt.spawn(remove));
        }
    }
}
