//! The compare-and-set of a job's record in Redis: read, change, write if unchanged meanwhile.

use super::RedisJobs;
use super::reply::{now_ms, status_str, store_error};
use llm_judge_work::jobs::record::JobRecord;
use llm_judge_work::jobs::store::{Change, StoreError};

impl RedisJobs {
    /// The compare-and-set of a record; with `free_key`, a change to a finished status frees
    /// the job's idempotency key at once (instead of keeping it for the retention).
    pub(super) async fn compare_and_set(
        &self,
        id: &str,
        change: Change,
        free_key: bool,
    ) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        {
            // Read, change, write if unchanged meanwhile; again if another writer came first.
            for _ in 0..1000 {
                let Some((mut record, json)) = self.read(&id).await? else {
                    return Ok(None);
                };
                if !change(&mut record) {
                    return Ok(Some(record));
                }
                let counts = record.counts.take();
                let new = serde_json::to_string(&record)
                    .map_err(|e| StoreError::other(format!("encode job: {e}")))?;
                record.counts = counts;
                let scope = record.idempotency_scope();
                let key = scope.as_deref();
                let mut inv = self.scripts.update.prepare_invoke();
                inv.key(self.job(&id))
                    .key(self.redis.key("jobs:active"))
                    .key(self.part(&id, "q"))
                    .key(self.part(&id, "res"))
                    .key(self.part(&id, "ord"))
                    .key(self.idem(key))
                    .arg(&json)
                    .arg(&new)
                    .arg(status_str(record.status))
                    .arg(record.total)
                    .arg(&id)
                    .arg(now_ms())
                    .arg(self.retention.as_millis().max(1) as u64)
                    .arg(if key.is_some() { "1" } else { "0" })
                    .arg(if free_key { "1" } else { "0" });
                let reply: String = self
                    .redis
                    .call_unchecked("job_update", |mut c| async move {
                        inv.invoke_async(&mut c).await
                    })
                    .await
                    .map_err(store_error("update job"))?;
                match reply.as_str() {
                    "ok" => return Ok(Some(record)),
                    "gone" => return Ok(None),
                    _ => continue,
                }
            }
            Err(StoreError::transient(format!(
                "update job {id}: too many concurrent writers"
            )))
        }
    }
}
