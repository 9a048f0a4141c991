//! The fleet's job store as a [`JobStore`]: each call one Redis command, script or pipeline.

use std::time::Duration;

use futures::future::BoxFuture;
use redis::Value as R;
use serde_json::Value;
use serde_json::value::RawValue;

use super::RedisJobs;
use super::reply::{
    RECORD_FIELDS, array, int, now_ms, record_of, status_str, store_error, text, work_items,
};
use super::scripts::{GROUP, UPLOAD_TTL_MS};
use crate::settings::OnRedisError;
use llm_judge_work::batch::Summary;
use llm_judge_work::jobs::record::{Counts, JobRecord, JobStatus};
use llm_judge_work::jobs::store::{
    Change, Created, Done, JobStore, StoreError, Stored, Take, WorkItem,
};

impl JobStore for RedisJobs {
    fn fleet(&self) -> bool {
        true
    }

    fn claim_idle(&self) -> Option<Duration> {
        Some(self.redis.claim_idle)
    }

    fn create(
        &self,
        record: JobRecord,
        items: Vec<Box<RawValue>>,
    ) -> BoxFuture<'_, Result<Created, StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(&record)
                .map_err(|e| StoreError::other(format!("encode job: {e}")))?;
            let scope = record.idempotency_scope();
            let key = scope.as_deref();
            let mut inv = self.scripts.create.prepare_invoke();
            inv.key(self.idem(key))
                .key(self.job(&record.id))
                .key(self.redis.key("jobs"))
                .key(self.redis.key("jobs:active"))
                .key(self.part(&record.id, "q"))
                .arg(if key.is_some() { "1" } else { "0" })
                .arg(&record.id)
                .arg(&json)
                .arg(status_str(record.status))
                .arg(record.total)
                .arg(record.created_at_ms)
                .arg(self.redis.key("job:"))
                .arg(UPLOAD_TTL_MS);
            for item in &items {
                inv.arg(item.get());
            }
            let reply: Vec<R> = self
                .redis
                .call_unchecked("job_create", |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await
                .map_err(store_error("create job"))?;
            match reply.first().and_then(text).as_deref() {
                Some("new") => Ok(Created::New(record)),
                Some("existing") => {
                    let existing_json = reply.get(1).and_then(text).unwrap_or_default();
                    let mut existing: JobRecord = serde_json::from_str(&existing_json)
                        .map_err(|e| StoreError::other(format!("decode job: {e}")))?;
                    existing.committed = reply.get(2).map_or(0, int);
                    Ok(Created::found(existing, &record))
                }
                other => Err(StoreError::other(format!("create job: {other:?}"))),
            }
        })
    }

    fn append_items(
        &self,
        id: &str,
        first: u64,
        items: Vec<Value>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let key = self
                .read(&id)
                .await?
                .and_then(|(r, _)| r.idempotency_scope());
            let mut inv = self.scripts.append.prepare_invoke();
            inv.key(self.job(&id))
                .key(self.part(&id, "q"))
                .key(self.idem(key.as_deref()))
                .arg(first)
                .arg(UPLOAD_TTL_MS);
            for item in &items {
                inv.arg(serde_json::to_vec(item).unwrap_or_default());
            }
            let _: i64 = self
                .redis
                .call_unchecked("job_append", |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await
                .map_err(store_error("append items"))?;
            Ok(())
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move { Ok(self.read(&id).await?.map(|(r, _)| r)) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        Box::pin(async move {
            let ids = self.ids().await?;
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let mut pipe = redis::pipe();
                for id in chunk {
                    pipe.cmd("HMGET").arg(self.job(id)).arg(&RECORD_FIELDS[..]);
                }
                let rows: Vec<Vec<R>> =
                    self.redis
                        .call_unchecked("job_list", |mut c| async move {
                            pipe.query_async(&mut c).await
                        })
                        .await
                        .map_err(store_error("list jobs"))?;
                for fields in rows {
                    // A job whose keys expired is left out (the janitor removes its id).
                    if let Some(json) = fields.first().and_then(text) {
                        out.push(record_of(&json, &fields)?);
                    }
                }
            }
            out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
            Ok(out)
        })
    }

    fn update(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move { self.compare_and_set(&id, change, false).await })
    }

    fn retry_errors(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<(JobRecord, u64)>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move { self.retry(&id, change).await })
    }

    fn abandon_upload<'a>(
        &'a self,
        id: &'a str,
        stale_before_ms: u64,
        reason: String,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, StoreError>> {
        let change: Change = std::sync::Arc::new(move |r: &mut JobRecord| {
            if !r.upload_is_stale(stale_before_ms) {
                return false;
            }
            r.status = JobStatus::Failed;
            r.error = Some(reason.clone());
            r.finished_at_ms = Some(now_ms());
            true
        });
        Box::pin(async move { self.compare_and_set(id, change, true).await })
    }

    fn take<'a>(
        &'a self,
        id: &'a str,
        _cursor: &'a mut u64,
        free: usize,
    ) -> BoxFuture<'a, Result<Take, StoreError>> {
        Box::pin(async move {
            let mut inv = self.scripts.take.prepare_invoke();
            inv.key(self.job(id))
                .key(self.part(id, "q"))
                .arg(self.redis.replica())
                .arg(free.max(1))
                .arg(self.redis.claim_idle.as_millis().max(1) as u64);
            let reply: Vec<R> = self
                .redis
                .call(
                    "job_take",
                    |mut c| async move { inv.invoke_async(&mut c).await },
                )
                .await
                .map_err(store_error("take items"))?;
            let entries = reply.get(1).map(array).unwrap_or_default();
            Ok(match reply.first().and_then(text).as_deref() {
                Some("items") => Take::Items(work_items(entries, false)),
                Some("claimed") => Take::Items(work_items(entries, true)),
                Some("wait") => Take::Wait,
                Some("drained") => Take::Drained,
                _ => Take::Stopped,
            })
        })
    }

    fn items<'a>(
        &'a self,
        id: &'a str,
        wanted: &'a [(u64, String)],
    ) -> BoxFuture<'a, Result<Vec<WorkItem>, StoreError>> {
        Box::pin(async move {
            if wanted.is_empty() {
                return Ok(Vec::new());
            }
            let key = self.part(id, "q");
            let mut pipe = redis::pipe();
            for (_, ticket) in wanted {
                pipe.cmd("XRANGE").arg(&key).arg(ticket).arg(ticket);
            }
            let replies: Vec<R> = self
                .redis
                .call("job_items", |mut c| async move {
                    pipe.query_async(&mut c).await
                })
                .await
                .map_err(store_error("read items"))?;
            let entries: Vec<R> = replies.iter().flat_map(array).cloned().collect();
            Ok(work_items(&entries, false))
        })
    }

    fn touch<'a>(
        &'a self,
        id: &'a str,
        tickets: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.part(id, "q");
            let consumer = self.redis.replica().to_string();
            let _: R = self
                .redis
                .call("job_touch", |mut c| async move {
                    redis::cmd("XCLAIM")
                        .arg(key)
                        .arg(GROUP)
                        .arg(consumer)
                        .arg(0)
                        .arg(tickets)
                        .arg("JUSTID")
                        .query_async(&mut c)
                        .await
                })
                .await
                .map_err(store_error("touch items"))?;
            Ok(())
        })
    }

    fn commit(
        &self,
        id: &str,
        _first_seq: u64,
        done: Vec<Done>,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let mut inv = self.scripts.commit.prepare_invoke();
            inv.key(self.job(&id))
                .key(self.part(&id, "res"))
                .key(self.part(&id, "ord"))
                .key(self.part(&id, "q"));
            for d in &done {
                inv.arg(d.index)
                    .arg(&d.ticket)
                    .arg(&d.json[..])
                    .arg(Counts::field(&d.tally));
            }
            let reply: Vec<R> = self
                .redis
                .call_unchecked("job_commit", |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await
                .map_err(store_error("commit results"))?;
            let Some(json) = reply.first().and_then(text) else {
                return Ok(None);
            };
            let mut record: JobRecord = serde_json::from_str(&json)
                .map_err(|e| StoreError::other(format!("decode job: {e}")))?;
            record.committed = reply.get(1).map_or(0, int);
            Ok(Some(record))
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
        Box::pin(async move {
            if by_completion {
                self.results_by_completion(&id, after, limit).await
            } else {
                self.results_by_index(&id, after, limit).await
            }
        })
    }

    fn summarize(&self, id: &str, summary: Summary) -> BoxFuture<'_, Result<Summary, StoreError>> {
        let id = id.to_string();
        Box::pin(async move { self.summarize_results(&id, summary).await })
    }

    fn delete(&self, record: &JobRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let record = record.clone();
        Box::pin(async move {
            let id = &record.id;
            let scope = record.idempotency_scope();
            let key = scope.as_deref();
            let mut inv = self.scripts.delete.prepare_invoke();
            inv.key(self.job(id))
                .key(self.part(id, "q"))
                .key(self.part(id, "res"))
                .key(self.part(id, "ord"))
                .key(self.redis.key("jobs"))
                .key(self.redis.key("jobs:active"))
                .key(self.idem(key))
                .arg(id)
                .arg(if key.is_some() { "1" } else { "0" });
            let _: i64 = self
                .redis
                .call_unchecked("job_delete", |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await
                .map_err(store_error("delete job"))?;
            Ok(())
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        // With local fallbacks the replica keeps judging while Redis is away (job endpoints
        // answer 503 meanwhile); with `fail` it is not ready.
        let result = if self.redis.is_up() || self.redis.on_error == OnRedisError::Local {
            Ok(())
        } else {
            Err("redis does not answer".to_string())
        };
        Box::pin(async move { result })
    }

    fn active(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let key = self.redis.key("jobs:active");
            self.redis
                .call("job_active", |mut c| async move {
                    redis::cmd("SMEMBERS").arg(key).query_async(&mut c).await
                })
                .await
                .map_err(store_error("active jobs"))
        })
    }
}
