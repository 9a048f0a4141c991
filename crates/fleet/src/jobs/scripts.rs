//! The Lua scripts every change of a fleet's job runs as (each atomic), and the names they
//! share with the calls that are not scripts.

pub(super) const GROUP: &str = "workers";
/// An upload nobody adds to for this long is dropped (its uploader is presumed gone).
pub(super) const UPLOAD_TTL_MS: u64 = 3_600_000;

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
/// the retention (ms) for a finished job, whether KEYS[6] is the job's idempotency key,
/// whether to free that key now (an upload whose replica stopped).
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
  if mine then
    if ARGV[9] == '1' then redis.call('DEL', KEYS[6]) else redis.call('PEXPIRE', KEYS[6], ARGV[7]) end
  end
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

/// The scripts, loaded once.
pub(super) struct Scripts {
    pub(super) create: redis::Script,
    pub(super) append: redis::Script,
    pub(super) update: redis::Script,
    pub(super) take: redis::Script,
    pub(super) commit: redis::Script,
    pub(super) delete: redis::Script,
    pub(super) retry: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            create: redis::Script::new(CREATE),
            append: redis::Script::new(APPEND),
            update: redis::Script::new(UPDATE),
            take: redis::Script::new(TAKE),
            commit: redis::Script::new(COMMIT),
            delete: redis::Script::new(DELETE),
            retry: redis::Script::new(super::retry::RETRY),
        }
    }
}
