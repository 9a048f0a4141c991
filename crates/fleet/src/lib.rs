//! What a fleet of replicas shares when `[redis]` is configured: the rate limiter ([`limiter`]),
//! the verdict cache's shared tier ([`cache`]), jobs ([`jobs`]) and each client token's daily
//! spend ([`spend`]).
//!
//! Each is an implementation of a small trait of the layer it serves (`pool`'s `Limiter`,
//! `judge`'s cache tier, `jobs`' store and spend ledger), wired in by the service's composition
//! root: those layers never import this one. Without Redis, nothing here is built and the single-node defaults serve as before.
//!
//! Every Redis call goes through [`Redis::call`]: bounded by `redis.timeout_ms`, counted in
//! `llm_judge_redis_errors_total{op}` when it fails, and reflected in `llm_judge_redis_up`. An
//! outage is logged once when it starts and once when it ends; a probe finds out when Redis
//! answers again, so shared state resumes on its own.

pub mod cache;
pub mod jobs;
pub mod limiter;
pub mod pipeline;
pub mod settings;
pub mod spend;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::settings::{OnRedisError, RedisSettings};
use llm_judge_metrics as m;

/// A Redis call that did not succeed in time.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis is unavailable")]
    Down,
    #[error("redis: {0}")]
    Failed(String),
}

/// The shared Redis: one multiplexed, reconnecting connection, the key prefix and the health.
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    pub on_error: OnRedisError,
    pub expected_replicas: u32,
    pub claim_idle: Duration,
    /// This process's name among the replicas (a job queue's consumer name).
    replica: String,
    up: AtomicBool,
    up_gauge: metrics::Gauge,
}

/// Where the URL points, with no credentials: for log lines.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(6379),
            u.path()
        ),
        Err(_) => "(unparsable URL)".into(),
    }
}

impl Redis {
    /// A handle on the configured Redis. It connects lazily: a Redis that is down at start-up
    /// is an outage like any other, not a failed start. `None` when no URL is set.
    pub fn connect(s: &RedisSettings) -> anyhow::Result<Option<Arc<Redis>>> {
        let Some(url) = s.url() else {
            return Ok(None);
        };
        let client = redis::Client::open(url)
            .map_err(|_| anyhow::anyhow!("redis.url ({}) is not usable", describe_url(url)))?;
        let timeout = Duration::from_millis(s.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(s.connect_timeout_ms)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("redis ({}): {e}", describe_url(url)))?;
        let replica = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        let up_gauge = metrics::gauge!(m::REDIS_UP);
        let me = Arc::new(Redis {
            conn,
            prefix: s.key_prefix.clone(),
            timeout,
            on_error: s.on_redis_error,
            expected_replicas: s.expected_replicas,
            claim_idle: Duration::from_secs_f64(s.claim_idle_s),
            replica,
            up: AtomicBool::new(true),
            up_gauge,
        });
        tracing::info!(redis = %describe_url(url), replica = %me.replica, "shared state in Redis");
        Ok(Some(me))
    }

    /// Starts the probe that pings Redis every second: it sets `llm_judge_redis_up` and ends an
    /// outage as soon as Redis answers. It stops when the last handle is dropped.
    pub fn start_probe(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(r) = me.upgrade() else { return };
                let _ = r
                    .call_unchecked("ping", |mut c| async move {
                        redis::cmd("PING").query_async::<String>(&mut c).await
                    })
                    .await;
                drop(r);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The key `prefix:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether the last call (or probe) succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Runs one Redis operation, labelled `op` in the error metric, within the timeout. While
    /// an outage lasts, nothing is sent (the probe alone finds out when it ends): the call fails
    /// at once with [`RedisError::Down`].
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(RedisError::Down);
        }
        self.call_unchecked(op, f).await
    }

    /// [`Redis::call`], sent even during an outage (the probe, and writes that must not be lost).
    pub async fn call_unchecked<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_reply_error(&e) => {
                // Redis answered: it is up, the command was wrong (a bug, or a full memory).
                self.mark_up();
                metrics::counter!(m::REDIS_ERRORS, "op" => op).increment(1);
                return Err(RedisError::Failed(e.to_string()));
            }
            Ok(Err(e)) => Err(RedisError::Failed(e.to_string())),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        match &result {
            Ok(_) => self.mark_up(),
            Err(e) => {
                metrics::counter!(m::REDIS_ERRORS, "op" => op).increment(1);
                if self.up.swap(false, Ordering::Relaxed) {
                    self.up_gauge.set(0.0);
                    let fallback = match self.on_error {
                        OnRedisError::Local => "each replica enforces its share of the limits",
                        OnRedisError::Fail => "calls needing a rate-limit permit are refused",
                    };
                    tracing::warn!(error = %e, op, "redis stopped answering: {fallback}, the shared cache is skipped, shared jobs wait");
                }
            }
        }
        result
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("redis answers again: shared limits, cache and jobs resume");
        }
        self.up_gauge.set(1.0);
    }
}

/// An error Redis itself answered with (as opposed to a connection that failed).
fn is_reply_error(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "replica".into())
}
