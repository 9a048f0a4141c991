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

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::Value as R;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Redis, RedisError};
use crate::settings::OnRedisError;
use llm_judge_work::batch::Summary;
use llm_judge_work::jobs::record::{Counts, JobRecord, JobStatus};
use llm_judge_work::jobs::store::{
    Change, Created, Done, JobStore, StoreError, Stored, Take, WorkItem,
};

const GROUP: &str = "workers";
/// An upload nobody adds to for this long is dropped (its uploader is presumed gone).
const UPLOAD_TTL_MS: u64 = 3_600_000;

/// Creates a job (and its items), unless its idempotency key names one already.
/// KEYS: idem (or any key when there is none), job, jobs, active, stream.
/// ARGV: has key, id, record, status, total, created_ms, job key prefix, upload ttl, items...
const CREATE: &str = r#"
if ARGV[1] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local h = redis.call('HMGET', ARGV[7] .. existing, 'record', 'committed')
    if h[1] then return {'existing', h[1], h[2] or '0'} end
  end
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('HSET', KEYS[2], 'record', ARGV[3], 'status', ARGV[4], 'total', ARGV[5], 'committed', 0)
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
redis.call('XGROUP', 'CREATE', KEYS[5], 'workers', '0', 'MKSTREAM')
for i = 9, #ARGV do
  redis.call('XADD', KEYS[5], '*', 'i', i - 9, 'v', ARGV[i])
end
if ARGV[4] == 'queued' then
  redis.call('SADD', KEYS[4], ARGV[2])
elseif ARGV[4] == 'uploading' then
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
  redis.call('PEXPIRE', KEYS[5], ARGV[8])
  if ARGV[1] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[8]) end
end
return {'new'}
"#;

/// Appends items of an upload, and keeps it from expiring.
/// KEYS: job, stream, idem (or any). ARGV: first index, upload ttl, items...
const APPEND: &str = r#"
if redis.call('HGET', KEYS[1], 'status') ~= 'uploading' then return 0 end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'i', tonumber(ARGV[1]) + i - 3, 'v', ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
"#;

/// The compare-and-set of a job's record.
/// KEYS: job, active, stream, results, order, idem (or any).
/// ARGV: the record as read, the new record, its status, its total, the id, now (ms),
/// the retention (ms) for a finished job, whether KEYS[6] is the job's idempotency key.
const UPDATE: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'record')
if not cur then return 'gone' end
if cur ~= ARGV[1] then return 'changed' end
local st = ARGV[3]
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'status', st, 'total', ARGV[4])
if st == 'running' then redis.call('HSETNX', KEYS[1], 'started_ms', ARGV[6]) end
local mine = ARGV[8] == '1' and redis.call('GET', KEYS[6]) == ARGV[5]
if st == 'queued' or st == 'running' or st == 'cancelling' then
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[3])
  if mine then redis.call('PERSIST', KEYS[6]) end
elseif st ~= 'uploading' then
  redis.call('SREM', KEYS[2], ARGV[5])
  for i = 1, 5 do
    if i ~= 2 then redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
  end
  if mine then redis.call('PEXPIRE', KEYS[6], ARGV[7]) end
end
return 'ok'
"#;

/// Hands out items: new ones first, then ones a silent replica holds.
/// KEYS: job, stream. ARGV: consumer, count, min idle (ms).
const TAKE: &str = r#"
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'running' then return {'stopped'} end
local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', ARGV[2], 'STREAMS', KEYS[2], '>')
if r and r[1] and #r[1][2] > 0 then return {'items', r[1][2]} end
local c = redis.call('XAUTOCLAIM', KEYS[2], 'workers', ARGV[1], ARGV[3], '0-0', 'COUNT', ARGV[2])
if #c[2] > 0 then return {'claimed', c[2]} end
local h = redis.call('HMGET', KEYS[1], 'committed', 'total')
if tonumber(h[1] or '0') >= tonumber(h[2] or '0') then return {'drained'} end
return {'wait'}
"#;

/// Stores results (the first of an index is kept), counts them, acknowledges their items.
/// KEYS: job, results, order, stream. ARGV: (index, entry id, result, count field)...
const COMMIT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {false, 0} end
local added = 0
for i = 1, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('RPUSH', KEYS[3], ARGV[i])
    redis.call('HINCRBY', KEYS[1], ARGV[i + 3], 1)
    added = added + 1
  end
  if ARGV[i + 1] ~= '' then redis.call('XACK', KEYS[4], 'workers', ARGV[i + 1]) end
end
local committed = redis.call('HINCRBY', KEYS[1], 'committed', added)
return {redis.call('HGET', KEYS[1], 'record'), committed}
"#;

/// Removes a job, and its idempotency key if it is still the job's.
/// KEYS: job, stream, results, order, jobs, active, idem (or any). ARGV: id, has key.
const DELETE: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('SREM', KEYS[6], ARGV[1])
if ARGV[2] == '1' and redis.call('GET', KEYS[7]) == ARGV[1] then redis.call('DEL', KEYS[7]) end
return 1
"#;

/// The fields of a job's hash a record is read from.
const RECORD_FIELDS: [&str; 8] = [
    "record",
    "committed",
    "correct",
    "incorrect",
    "unscored",
    "errors",
    "started_ms",
    "scored",
];

pub struct RedisJobs {
    redis: Arc<Redis>,
    retention: Duration,
    scripts: Scripts,
}

struct Scripts {
    create: redis::Script,
    append: redis::Script,
    update: redis::Script,
    take: redis::Script,
    commit: redis::Script,
    delete: redis::Script,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn store_error(what: &str) -> impl Fn(RedisError) -> StoreError + '_ {
    move |e| StoreError::transient(format!("{what}: {e}"))
}

fn status_str(s: JobStatus) -> &'static str {
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

fn text(v: &R) -> Option<String> {
    match v {
        R::BulkString(b) => String::from_utf8(b.clone()).ok(),
        R::SimpleString(s) => Some(s.clone()),
        R::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &R) -> u64 {
    text(v).and_then(|t| t.parse().ok()).unwrap_or(0)
}

fn array(v: &R) -> &[R] {
    match v {
        R::Array(a) => a,
        _ => &[],
    }
}

/// A record from its JSON and the hash's counters.
fn record_of(json: &str, fields: &[R]) -> Result<JobRecord, StoreError> {
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
fn work_items(entries: &[R], claimed: bool) -> Vec<WorkItem> {
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

impl RedisJobs {
    pub fn new(redis: Arc<Redis>, retention: Duration) -> RedisJobs {
        RedisJobs {
            redis,
            retention,
            scripts: Scripts {
                create: redis::Script::new(CREATE),
                append: redis::Script::new(APPEND),
                update: redis::Script::new(UPDATE),
                take: redis::Script::new(TAKE),
                commit: redis::Script::new(COMMIT),
                delete: redis::Script::new(DELETE),
            },
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
            let key = record.idempotency_key.as_deref();
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
            let key = self.read(&id).await?.and_then(|(r, _)| r.idempotency_key);
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
        Box::pin(async move {
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
                let key = record.idempotency_key.as_deref();
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
                    .arg(if key.is_some() { "1" } else { "0" });
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
        })
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
            let results = self.part(&id, "res");
            if by_completion {
                let start = after.map_or(0, |a| a.saturating_add(1));
                let order = self.part(&id, "ord");
                let stop = start.saturating_add(limit.max(1) as u64 - 1);
                let (indices, values): (Vec<String>, Vec<Option<Vec<u8>>>) = self
                    .redis
                    .call_unchecked("job_results", |mut c| async move {
                        let indices: Vec<String> = redis::cmd("LRANGE")
                            .arg(&order)
                            .arg(start)
                            .arg(stop)
                            .query_async(&mut c)
                            .await?;
                        if indices.is_empty() {
                            return Ok((indices, Vec::new()));
                        }
                        let values = redis::cmd("HMGET")
                            .arg(&results)
                            .arg(&indices)
                            .query_async(&mut c)
                            .await?;
                        Ok((indices, values))
                    })
                    .await
                    .map_err(store_error("read results"))?;
                return Ok((start..)
                    .zip(indices.iter().zip(values))
                    .filter_map(|(seq, (_, v))| Some((seq, v?)))
                    .collect());
            }
            if after == Some(u64::MAX) {
                return Ok(Vec::new());
            }
            let total = self.read(&id).await?.map_or(0, |(r, _)| r.total);
            let mut from = after.map_or(0, |a| a + 1);
            let mut out = Vec::new();
            // Windows of indices, skipping those with no result yet.
            while from < total && out.len() < limit {
                let to = (from + 1000).min(total);
                let fields: Vec<u64> = (from..to).collect();
                let key = results.clone();
                let values: Vec<Option<Vec<u8>>> = self
                    .redis
                    .call_unchecked("job_results", |mut c| async move {
                        redis::cmd("HMGET")
                            .arg(key)
                            .arg(&fields)
                            .query_async(&mut c)
                            .await
                    })
                    .await
                    .map_err(store_error("read results"))?;
                for (i, v) in (from..to).zip(values) {
                    if let Some(v) = v {
                        out.push((i, v));
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                from = to;
            }
            Ok(out)
        })
    }

    fn summarize(
        &self,
        id: &str,
        mut summary: Summary,
    ) -> BoxFuture<'_, Result<Summary, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let key = self.part(&id, "res");
            let mut cursor = 0u64;
            loop {
                let k = key.clone();
                let (next, page): (u64, Vec<(String, Vec<u8>)>) = self
                    .redis
                    .call_unchecked("job_summary", |mut c| async move {
                        redis::cmd("HSCAN")
                            .arg(k)
                            .arg(cursor)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut c)
                            .await
                    })
                    .await
                    .map_err(store_error("read results"))?;
                for (_, v) in &page {
                    summary.add(&serde_json::from_slice::<Value>(v).unwrap_or(Value::Null));
                }
                if next == 0 {
                    return Ok(summary);
                }
                cursor = next;
            }
        })
    }

    fn delete(&self, record: &JobRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let record = record.clone();
        Box::pin(async move {
            let id = &record.id;
            let key = record.idempotency_key.as_deref();
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
