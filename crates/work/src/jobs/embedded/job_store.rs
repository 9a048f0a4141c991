//! The embedded store as a [`JobStore`]: each call runs on tokio's blocking pool.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::Store;
use crate::batch::Summary;
use crate::jobs::record::JobRecord;
use crate::jobs::store::{Change, Created, Done, JobStore, StoreError, Stored, Take, WorkItem};

/// The embedded store as a [`JobStore`]: every call runs on tokio's blocking pool.
pub struct Embedded(pub Arc<Store>);

impl Embedded {
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&store))
                .await
                .map_err(|e| StoreError::other(format!("store task failed: {e}")))?
        })
    }
}

impl JobStore for Embedded {
    fn fleet(&self) -> bool {
        false
    }

    fn create(
        &self,
        record: JobRecord,
        items: Vec<Box<serde_json::value::RawValue>>,
    ) -> BoxFuture<'_, Result<Created, StoreError>> {
        self.run(move |s| s.create(record, &items))
    }

    fn append_items(
        &self,
        id: &str,
        first: u64,
        items: Vec<Value>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.append_items(&id, first, &items))
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.get(&id))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        self.run(|s| s.list())
    }

    fn retry_errors(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<(JobRecord, u64)>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.retry_errors(&id, &change))
    }

    fn update(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.update(&id, |r| change(r)))
    }

    fn take<'a>(
        &'a self,
        id: &'a str,
        cursor: &'a mut u64,
        _free: usize,
    ) -> BoxFuture<'a, Result<Take, StoreError>> {
        let (key, from) = (id.to_string(), *cursor);
        let page = self.run(move |s| s.pending(&key, from, 512));
        Box::pin(async move {
            let page = page.await?;
            let Some((last, _)) = page.last() else {
                return Ok(Take::Drained);
            };
            *cursor = last + 1;
            Ok(Take::Items(
                page.into_iter()
                    .map(|(index, item)| WorkItem {
                        index,
                        item,
                        ticket: String::new(),
                        claimed: false,
                    })
                    .collect(),
            ))
        })
    }

    fn items<'a>(
        &'a self,
        id: &'a str,
        wanted: &'a [(u64, String)],
    ) -> BoxFuture<'a, Result<Vec<WorkItem>, StoreError>> {
        let key = id.to_string();
        let indices: Vec<u64> = wanted.iter().map(|(i, _)| *i).collect();
        let read = self.run(move |s| s.stored_items(&key, &indices));
        Box::pin(async move {
            Ok(read
                .await?
                .into_iter()
                .map(|(index, item)| WorkItem {
                    index,
                    item,
                    ticket: String::new(),
                    claimed: false,
                })
                .collect())
        })
    }

    fn touch<'a>(
        &'a self,
        _id: &'a str,
        _tickets: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn commit(
        &self,
        id: &str,
        first_seq: u64,
        done: Vec<Done>,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| {
            let entries: Vec<(u64, Vec<u8>)> =
                done.into_iter().map(|d| (d.index, d.json)).collect();
            s.commit_results(&id, first_seq, &entries)
        })
    }

    fn results(
        &self,
        id: &str,
        after: Option<u64>,
        by_completion: bool,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| {
            if by_completion {
                s.results_by_completion(&id, after, limit)
            } else {
                s.results_by_index(&id, after, limit)
            }
        })
    }

    fn summarize(
        &self,
        id: &str,
        mut summary: Summary,
    ) -> BoxFuture<'_, Result<Summary, StoreError>> {
        let id = id.to_string();
        self.run(move |s| {
            s.for_each_result(&id, |b| {
                summary.add(&serde_json::from_slice::<Value>(b).unwrap_or(Value::Null))
            })?;
            Ok(summary)
        })
    }

    fn delete(&self, record: &JobRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let record = record.clone();
        self.run(move |s| s.delete(&record))
    }

    fn abandon_upload<'a>(
        &'a self,
        id: &'a str,
        stale_before_ms: u64,
        reason: String,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.abandon_upload(&id, stale_before_ms, &reason))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.check())
                .await
                .unwrap_or_else(|e| Err(format!("store check failed: {e}")))
        })
    }
}
