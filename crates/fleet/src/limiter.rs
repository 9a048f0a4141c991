//! The fleet-wide rate limiter: the requests and tokens of a provider's window (and of its
//! models with limits of their own) counted in Redis, atomically, by one Lua script per grant.
//!
//! Each limit is a sliding-window log, as the in-process limiter's: a sorted set of grants
//! scored by Redis's own clock (so replicas' clocks do not matter) and a running sum. A grant
//! takes every counter it needs in one script, or none of them, and says how long to wait when it
//! cannot. A grant keeps its place while its call is in flight and is logged again when the call
//! is settled (see [`RESERVE`]): however long a call takes to leave a replica, limit + 1 calls
//! never reach one of the provider's windows, with no margin taken off the window.
//!
//! On one replica, calls that must wait queue in order, and only the first of the queue asks
//! Redis again, so a saturated limit costs Redis a few scripts per freed slot, not one per
//! waiting call. While Redis does not answer, `on_redis_error = "local"` grants from an
//! in-process limiter holding this replica's share (limit / `expected_replicas`), and `"fail"`
//! refuses; shared grants resume as soon as Redis answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Redis, RedisError};
use crate::pipeline::Batcher;
use crate::settings::OnRedisError;
use llm_judge_metrics as m;
use llm_judge_pool::rate_limit::{Limiter, LocalLimiter, NoPermit, Reservation};
use llm_judge_providers::ProviderSettings;

/// Takes every counter's units for each request of a batch, in order, or says when to ask
/// again.
///
/// A grant in flight is logged at now + the hold (the longest a call may take): it keeps its
/// place in the window until the call is settled, which logs it again at the time of the
/// settling. Every grant is thus logged no earlier than the call's arrival at the provider, and
/// a window of the provider's length holds no more than the limit, however late a call leaves.
///
/// ARGV: window and hold in microseconds; then for each request its grant id, its number of
/// counters, and for each counter its log (sorted set), its sum (string), its limit and units.
/// Returns for each request `granted (1 or 0), wait_us, used...` (what each counter holds).
const RESERVE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window, hold = tonumber(ARGV[1]), tonumber(ARGV[2])
local cutoff = now - window
local ttl = math.ceil((window + hold) / 1000) + 1000
local function units(member)
  return tonumber(string.match(member, ':(%d+)$'))
end
local out = {}
local a = 3
while a <= #ARGV do
  local id, n = ARGV[a], tonumber(ARGV[a + 1])
  local first = a + 2
  local wait = 0
  local used = {}
  for i = 0, n - 1 do
    local log, sum = ARGV[first + 4 * i], ARGV[first + 4 * i + 1]
    local limit, want = tonumber(ARGV[first + 4 * i + 2]), tonumber(ARGV[first + 4 * i + 3])
    local old = redis.call('ZRANGE', log, '-inf', cutoff, 'BYSCORE')
    if #old > 0 then
      local freed = 0
      for _, member in ipairs(old) do freed = freed + units(member) end
      redis.call('ZREMRANGEBYSCORE', log, '-inf', cutoff)
      redis.call('DECRBY', sum, freed)
    end
    local u = tonumber(redis.call('GET', sum) or '0')
    used[i + 1] = u
    if u + want > limit then
      -- Wait until enough of the oldest grants have left the window; a grant still in
      -- flight leaves only after it is settled, so ask again soon.
      local need = u + want - limit
      local freed, from, w = 0, 0, window
      while true do
        local page = redis.call('ZRANGE', log, from, from + 63, 'WITHSCORES')
        if #page == 0 then break end
        local found = false
        for j = 1, #page, 2 do
          freed = freed + units(page[j])
          if freed >= need then
            local at = tonumber(page[j + 1])
            if at > now then
              w = math.min(window / 8, 250000)
            else
              w = at + window - now + 1000
            end
            found = true
            break
          end
        end
        if found then break end
        from = from + 64
      end
      if w > wait then wait = w end
    end
  end
  if wait == 0 then
    for i = 0, n - 1 do
      local log, sum = ARGV[first + 4 * i], ARGV[first + 4 * i + 1]
      local want = tonumber(ARGV[first + 4 * i + 3])
      redis.call('ZADD', log, now + hold, id .. ':' .. want)
      redis.call('INCRBY', sum, want)
      redis.call('PEXPIRE', log, ttl)
      redis.call('PEXPIRE', sum, ttl)
      used[i + 1] = used[i + 1] + want
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  out[#out + 1] = wait
  for i = 1, n do out[#out + 1] = used[i] end
  a = first + 4 * n
end
return out
"#;

/// Settles grants still in the window: logs each at the time of the settling with the units it
/// really used (the tokens of the answer), or removes it (0 units: the call was never sent).
///
/// ARGV: for each grant its id, its number of counters, and for each counter its log, its sum,
/// the units it was granted and the units it is to hold.
const SETTLE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local a = 1
while a <= #ARGV do
  local id, n = ARGV[a], tonumber(ARGV[a + 1])
  for i = 0, n - 1 do
    local b = a + 2 + 4 * i
    local log, sum = ARGV[b], ARGV[b + 1]
    local old, new = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
    local member = id .. ':' .. old
    if redis.call('ZREM', log, member) == 1 then
      if new > 0 then
        redis.call('ZADD', log, now, id .. ':' .. new)
      end
      redis.call('INCRBY', sum, new - old)
    end
  end
  a = a + 2 + 4 * n
end
return 1
"#;

/// One limit counted in Redis.
#[derive(Clone)]
struct Counter {
    log: Arc<str>,
    sum: Arc<str>,
    limit: u64,
    /// Requests (one unit per call) or tokens.
    tokens: bool,
}

impl Counter {
    fn new(redis: &Redis, scope: &str, unit: &str, limit: u64, tokens: bool) -> Counter {
        Counter {
            log: redis.key(&format!("rl:{scope}:{unit}")).into(),
            sum: redis.key(&format!("rl:{scope}:{unit}:sum")).into(),
            limit: limit.max(1),
            tokens,
        }
    }

    fn units(&self, tokens: u64) -> u64 {
        if self.tokens {
            tokens.min(self.limit)
        } else {
            1
        }
    }
}

/// One grant's counters and units: for a reservation, each counter with the units it asks
/// for; for a settling, each counter twice (the units granted, then the units to hold).
struct Grant {
    id: u64,
    units: Vec<(Counter, u64)>,
}

/// What Redis answered to one grant request.
struct Answer {
    granted: bool,
    wait_us: i64,
    used: Vec<i64>,
}

/// Sends the grant requests that arrive together in one script call.
fn reserve_batcher(redis: &Arc<Redis>, window: Duration, hold: Duration) -> Batcher<Grant, Answer> {
    let redis = redis.clone();
    let script = redis::Script::new(RESERVE);
    let (window_us, hold_us) = (window.as_micros() as u64, hold.as_micros() as u64);
    Batcher::new(Arc::new(move |grants: Vec<Grant>| {
        let (redis, script) = (redis.clone(), script.clone());
        Box::pin(async move {
            let mut inv = script.prepare_invoke();
            inv.arg(window_us).arg(hold_us);
            for g in &grants {
                inv.arg(g.id).arg(g.units.len());
                for (c, units) in &g.units {
                    inv.arg(&*c.log).arg(&*c.sum).arg(c.limit).arg(*units);
                }
            }
            let reply: Vec<i64> = redis
                .call("rate_limit_reserve", |mut conn| async move {
                    inv.invoke_async(&mut conn).await
                })
                .await?;
            let mut reply = reply.into_iter();
            Ok(grants
                .iter()
                .map(|g| Answer {
                    granted: reply.next() == Some(1),
                    wait_us: reply.next().unwrap_or(0),
                    used: reply.by_ref().take(g.units.len()).collect(),
                })
                .collect())
        })
    }))
}

/// Sends the settlings that arrive together in one script call.
fn settle_batcher(redis: &Arc<Redis>, provider: &str) -> Batcher<Grant, ()> {
    let redis = redis.clone();
    let script = redis::Script::new(SETTLE);
    let provider: Arc<str> = provider.into();
    Batcher::new(Arc::new(move |settles: Vec<Grant>| {
        let (redis, script, provider) = (redis.clone(), script.clone(), provider.clone());
        Box::pin(async move {
            let mut inv = script.prepare_invoke();
            for g in &settles {
                inv.arg(g.id).arg(g.units.len() / 2);
                for pair in g.units.chunks(2) {
                    let [(c, old), (_, new)] = pair else { continue };
                    inv.arg(&*c.log).arg(&*c.sum).arg(*old).arg(*new);
                }
            }
            let done: Result<i64, _> = redis
                .call("rate_limit_settle", |mut conn| async move {
                    inv.invoke_async(&mut conn).await
                })
                .await;
            if let Err(e) = &done {
                // The grants keep their estimates until they leave the window.
                tracing::debug!(provider = %provider, error = %e, "settling shared grants failed");
            }
            Ok(vec![(); settles.len()])
        })
    }))
}

/// A provider's limits in Redis.
pub struct RedisLimiter {
    redis: Arc<Redis>,
    /// The provider's own counters (requests first, when set).
    counters: Vec<Counter>,
    /// Each model's counters, added to the provider's.
    models: HashMap<String, Vec<Counter>>,
    limits: (Option<u64>, Option<u64>),
    /// This replica's share, while Redis does not answer.
    local: LocalLimiter,
    /// Grant requests, sent to Redis in batches.
    reserves: Batcher<Grant, Answer>,
    /// Settlings, sent in batches (nobody waits for them).
    settles: Batcher<Grant, ()>,
    /// Calls of this replica waiting for a grant, in order; the first asks Redis.
    queue: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
    ids: AtomicU64,
    id_base: u64,
    gauges: Gauges,
}

struct Gauges {
    shared: metrics::Gauge,
    used: [metrics::Gauge; 2],
}

/// What one script call said.
enum Asked {
    Granted(Reservation),
    Wait(Duration),
}

impl RedisLimiter {
    pub fn new(redis: Arc<Redis>, p: &ProviderSettings) -> RedisLimiter {
        let rpm = p.requests_per_minute.map(u64::from);
        let tpm = p.tokens_per_minute;
        let share = |l: Option<u64>| l.map(|l| l.div_ceil(u64::from(redis.expected_replicas)));
        let mut local = LocalLimiter::new(share(rpm), share(tpm), p.rate_window);
        let counters_of = |scope: &str, rpm: Option<u64>, tpm: Option<u64>| {
            let mut c = Vec::new();
            if let Some(r) = rpm {
                c.push(Counter::new(&redis, scope, "req", r, false));
            }
            if let Some(t) = tpm {
                c.push(Counter::new(&redis, scope, "tok", t, true));
            }
            c
        };
        let counters = counters_of(&p.name, rpm, tpm);
        let mut models = HashMap::new();
        for (model, l) in &p.model_limits {
            let (mr, mt) = (l.requests_per_minute.map(u64::from), l.tokens_per_minute);
            local = local.with_model(model, share(mr), share(mt));
            models.insert(
                model.clone(),
                counters_of(&format!("{}:m:{model}", p.name), mr, mt),
            );
        }
        let label = p.name.clone();
        let gauges = Gauges {
            shared: metrics::gauge!(m::RATE_LIMIT_SHARED, "provider" => label.clone()),
            used: [
                metrics::gauge!(m::RATE_LIMIT_USED, "provider" => label.clone(), "unit" => "requests"),
                metrics::gauge!(m::RATE_LIMIT_USED, "provider" => label.clone(), "unit" => "tokens"),
            ],
        };
        for (limit, unit) in [(rpm, "requests"), (tpm, "tokens")] {
            if let Some(l) = limit {
                metrics::gauge!(m::RATE_LIMIT_LIMIT, "provider" => label.clone(), "unit" => unit)
                    .set(l as f64);
            }
        }
        gauges.shared.set(1.0);
        RedisLimiter {
            counters,
            models,
            limits: (rpm, tpm),
            local,
            // A grant in flight keeps its place for at most the attempt timeout (a replica that
            // died mid-call settles nothing).
            reserves: reserve_batcher(&redis, p.rate_window, p.timeout),
            settles: settle_batcher(&redis, &p.name),
            queue: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
            id_base: rand::random::<u64>(),
            gauges,
            redis,
        }
    }

    /// Whether this provider has any limit at all.
    pub fn is_limited(&self) -> bool {
        !self.counters.is_empty() || self.models.values().any(|c| !c.is_empty())
    }

    fn counters_for<'a>(&'a self, model: &str) -> impl Iterator<Item = &'a Counter> + 'a {
        self.counters
            .iter()
            .chain(self.models.get(model).into_iter().flatten())
    }

    /// A grant id no other replica uses (a random base, then a count); never 0.
    fn next_id(&self) -> u64 {
        let id = self
            .id_base
            .wrapping_add(self.ids.fetch_add(1, Ordering::Relaxed));
        id.max(1)
    }

    /// One grant request, sent with the next batch: granted, or how long to wait.
    async fn ask(&self, model: &str, tokens: u64) -> Result<Asked, RedisError> {
        let id = self.next_id();
        let mut reserved_tokens = None;
        let units: Vec<(Counter, u64)> = self
            .counters_for(model)
            .map(|c| {
                if c.tokens {
                    // Every token counter holds the same units unless one caps them lower.
                    reserved_tokens = Some(
                        reserved_tokens.map_or(c.units(tokens), |r: u64| r.min(c.units(tokens))),
                    );
                }
                (c.clone(), c.units(tokens))
            })
            .collect();
        let reply = self
            .reserves
            .call(Grant { id, units })
            .await
            .map_err(|_| RedisError::Failed("the grant's batch failed".into()))?;
        // The provider's own counters come first: requests, then tokens.
        for (c, g) in self.counters.iter().zip(&reply.used) {
            self.gauges.used[usize::from(c.tokens)].set(*g as f64);
        }
        self.gauges.shared.set(1.0);
        if reply.granted {
            Ok(Asked::Granted(Reservation {
                tokens: reserved_tokens.unwrap_or(tokens),
                id,
            }))
        } else {
            Ok(Asked::Wait(Duration::from_micros(
                reply.wait_us.max(1000) as u64
            )))
        }
    }

    /// While Redis does not answer: this replica's share, or a refusal.
    async fn fallback(
        &self,
        model: &str,
        tokens: u64,
        until: tokio::time::Instant,
    ) -> Result<Reservation, NoPermit> {
        self.gauges.shared.set(0.0);
        match self.redis.on_error {
            OnRedisError::Local => self.local.reserve(model, tokens, until).await,
            OnRedisError::Fail => Err(NoPermit),
        }
    }

    async fn reserve_shared(
        &self,
        model: &str,
        tokens: u64,
        until: tokio::time::Instant,
    ) -> Result<Reservation, NoPermit> {
        if !self.redis.is_up() {
            return self.fallback(model, tokens, until).await;
        }
        // Nobody of this replica waiting: ask at once (concurrent asks share the connection).
        if self.waiting.load(Ordering::Acquire) == 0 {
            match self.ask(model, tokens).await {
                Ok(Asked::Granted(r)) => return Ok(r),
                Ok(Asked::Wait(_)) => {}
                Err(_) => return self.fallback(model, tokens, until).await,
            }
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        let Ok(_head) = tokio::time::timeout_at(until, self.queue.lock()).await else {
            return Err(NoPermit);
        };
        loop {
            match self.ask(model, tokens).await {
                Ok(Asked::Granted(r)) => return Ok(r),
                Ok(Asked::Wait(wait)) => {
                    let at = tokio::time::Instant::now() + wait;
                    if at > until {
                        return Err(NoPermit);
                    }
                    tokio::time::sleep_until(at).await;
                }
                Err(_) => return self.fallback(model, tokens, until).await,
            }
        }
    }
}

/// Counts a call in the replica's queue for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter for RedisLimiter {
    fn reserve<'a>(
        &'a self,
        model: &'a str,
        tokens: u64,
        until: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Reservation, NoPermit>> {
        if !self.is_limited() {
            return futures::future::ready(Ok(Reservation { tokens, id: 0 })).boxed();
        }
        self.reserve_shared(model, tokens, until).boxed()
    }

    fn settle(&self, model: &str, reservation: Reservation, used: Option<u64>) {
        if reservation.id == 0 {
            self.local.settle(model, reservation, used);
            return;
        }
        // Every counter's entry is logged again now: with 0 units for a call never sent, with
        // the real usage for tokens, with its one unit for requests.
        let changes: Vec<(Counter, u64, u64)> = self
            .counters_for(model)
            .map(|c| {
                let granted = c.units(reservation.tokens);
                let new = match used {
                    None => 0,
                    Some(u) if c.tokens => u,
                    Some(_) => granted,
                };
                (c.clone(), granted, new)
            })
            .collect();
        self.settles.send(Grant {
            id: reservation.id,
            units: changes
                .into_iter()
                .flat_map(|(c, old, new)| [(c.clone(), old), (c, new)])
                .collect(),
        });
    }

    fn limits(&self) -> (Option<u64>, Option<u64>) {
        self.limits
    }
}
