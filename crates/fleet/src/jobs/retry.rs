//! Sending a finished job's errored items again, in Redis: one script removes their results
//! and their places in the completion order, counts them out, adds their items to the job's
//! stream again and queues the job, if its record is still the one read (a compare-and-set).

use super::RedisJobs;
use super::reply::{int, store_error, text};
use llm_judge_work::jobs::record::JobRecord;
use llm_judge_work::jobs::store::{Change, StoreError};

/// KEYS: job, active, stream, results, order. ARGV: the record as read, the new record, the id.
/// The results and the stream are read a page at a time (a job may have a million of them); a
/// result is an error when its head (`{"index":N,"status":"error"`) says so.
pub(super) const RETRY: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'record')
if not cur then return {'gone'} end
if cur ~= ARGV[1] then return {'changed'} end
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled' then return {'busy'} end
local removed, n = {}, 0
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[4], cursor, 'COUNT', 1000)
  cursor = page[1]
  local kv = page[2]
  for i = 1, #kv, 2 do
    if not removed[kv[i]] and string.find(string.sub(kv[i + 1], 1, 64), '"status":"error"', 1, true) then
      removed[kv[i]] = true
      n = n + 1
    end
  end
until cursor == '0'
if n > 0 then
  for i in pairs(removed) do redis.call('HDEL', KEYS[4], i) end
  local len = redis.call('LLEN', KEYS[5])
  local kept = {}
  for from = 0, len - 1, 1000 do
    for _, i in ipairs(redis.call('LRANGE', KEYS[5], from, from + 999)) do
      if not removed[i] then kept[#kept + 1] = i end
    end
  end
  redis.call('DEL', KEYS[5])
  for from = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[5], unpack(kept, from, math.min(from + 999, #kept)))
  end
  local start = '-'
  while true do
    local entries = redis.call('XRANGE', KEYS[3], start, '+', 'COUNT', 1000)
    if #entries == 0 then break end
    for _, e in ipairs(entries) do
      local f = e[2]
      local index, item
      for j = 1, #f, 2 do
        if f[j] == 'i' then index = f[j + 1] elseif f[j] == 'v' then item = f[j + 1] end
      end
      if index and removed[index] then
        removed[index] = nil
        redis.call('XADD', KEYS[3], '*', 'i', index, 'v', item)
      end
    end
    start = '(' .. entries[#entries][1]
  end
  redis.call('HINCRBY', KEYS[1], 'errors', -n)
  redis.call('HINCRBY', KEYS[1], 'committed', -n)
end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'status', 'queued')
redis.call('SADD', KEYS[2], ARGV[3])
for i = 1, 5 do
  if i ~= 2 then redis.call('PERSIST', KEYS[i]) end
end
return {'ok', n, redis.call('HGET', KEYS[1], 'committed')}
"#;

impl RedisJobs {
    /// See `JobStore::retry_errors`.
    pub(super) async fn retry(
        &self,
        id: &str,
        change: Change,
    ) -> Result<Option<(JobRecord, u64)>, StoreError> {
        for _ in 0..1000 {
            let Some((mut record, json)) = self.read(id).await? else {
                return Ok(None);
            };
            if !record.status.is_finished() {
                return Ok(Some((record, 0)));
            }
            let counts = record.counts.take();
            if !change(&mut record) {
                record.counts = counts;
                return Ok(Some((record, 0)));
            }
            let new = serde_json::to_string(&record)
                .map_err(|e| StoreError::other(format!("encode job: {e}")))?;
            let mut inv = self.scripts.retry.prepare_invoke();
            inv.key(self.job(id))
                .key(self.redis.key("jobs:active"))
                .key(self.part(id, "q"))
                .key(self.part(id, "res"))
                .key(self.part(id, "ord"))
                .arg(&json)
                .arg(&new)
                .arg(id);
            let reply: Vec<redis::Value> = self
                .redis
                .call_unchecked("job_retry", |mut c| async move {
                    inv.invoke_async(&mut c).await
                })
                .await
                .map_err(store_error("retry job"))?;
            match reply.first().and_then(text).as_deref() {
                Some("ok") => {
                    let removed = reply.get(1).map_or(0, int);
                    record.committed = reply.get(2).map_or(0, int);
                    // As stored now, with the counts of the errors removed gone.
                    let stored = self.read(id).await?.map_or(record, |(r, _)| r);
                    return Ok(Some((stored, removed)));
                }
                Some("gone") => return Ok(None),
                Some("busy") => return Ok(self.read(id).await?.map(|(r, _)| (r, 0))),
                _ => continue,
            }
        }
        Err(StoreError::transient(format!(
            "retry job {id}: too many concurrent writers"
        )))
    }
}
