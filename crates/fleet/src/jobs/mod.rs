//! Jobs any replica serves: a job's record, items, results and progress in Redis, its items
//! spread over the replicas by a Streams consumer group.
//!
//! Keys (`P` is the key prefix, `J` the job id):
//! - `P:job:J`, a hash: `record` (the job's record, JSON; changed only by a compare-and-set of
//!   the whole of it), `status` and `total` (read by the scripts), `committed` and the counts of
//!   committed results by verdict, `started_ms`;
//! - `P:job:J:q`, a stream of the items (`i` index, `v` the item) with the consumer group
//!   `workers`: a replica takes items with XREADGROUP, acknowledges each with XACK once its
//!   result is stored, keeps the ones it works on fresh (XCLAIM to itself), and takes over with
//!   XAUTOCLAIM the items another replica has not touched for `redis.claim_idle_s`;
//! - `P:job:J:res`, a hash index -> result (HSETNX: the first result of an index is kept),
//!   and `P:job:J:ord`, a list of indices in completion order (position = sequence number);
//! - `P:jobs`, a sorted set of every job by creation time; `P:jobs:active`, the set of jobs
//!   some runner should work on; `P:idem:KEY`, an idempotency key's job.
//!
//! A finished job's keys expire after the retention; an upload expires an hour after its last
//! page unless it finishes. Every change is one Lua script (atomic), so the guarantees of the
//! embedded store hold across replicas: a cancel wins every race, a job is stored with its items
//! before it is accepted, and an idempotency key names one job fleet-wide.

mod cas;
mod job_store;
mod reply;
mod results;
mod retry;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use redis::Value as R;

use crate::Redis;
use llm_judge_work::jobs::record::JobRecord;
use llm_judge_work::jobs::store::StoreError;
use reply::{RECORD_FIELDS, record_of, store_error, text};
use scripts::Scripts;

/// The job store a fleet's replicas share, in Redis.
pub struct RedisJobs {
    redis: Arc<Redis>,
    retention: Duration,
    scripts: Scripts,
}

impl RedisJobs {
    pub fn new(redis: Arc<Redis>, retention: Duration) -> RedisJobs {
        RedisJobs {
            redis,
            retention,
            scripts: Scripts::new(),
        }
    }

    fn job(&self, id: &str) -> String {
        self.redis.key(&format!("job:{id}"))
    }

    fn part(&self, id: &str, part: &str) -> String {
        self.redis.key(&format!("job:{id}:{part}"))
    }

    fn idem(&self, key: Option<&str>) -> String {
        match key {
            Some(k) => self.redis.key(&format!("idem:{k}")),
            None => self.redis.key("idem:-"),
        }
    }

    /// A job's record as stored, with the raw JSON it was read from.
    async fn read(&self, id: &str) -> Result<Option<(JobRecord, String)>, StoreError> {
        let key = self.job(id);
        let fields: Vec<R> = self
            .redis
            .call_unchecked("job_get", |mut c| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&RECORD_FIELDS[..])
                    .query_async(&mut c)
                    .await
            })
            .await
            .map_err(store_error("read job"))?;
        let Some(json) = fields.first().and_then(text) else {
            return Ok(None);
        };
        Ok(Some((record_of(&json, &fields)?, json)))
    }

    /// Every id of a job, newest first.
    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let key = self.redis.key("jobs");
        self.redis
            .call_unchecked("job_list", |mut c| async move {
                redis::cmd("ZREVRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await
            .map_err(store_error("list jobs"))
    }
}
