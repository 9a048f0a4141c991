//! The settings of the Redis a fleet shares.

use llm_judge_chat::Secret;
use serde::Deserialize;

/// What the rate limiter does while Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisError {
    /// Each replica enforces its share of the limits itself (the quota / `expected_replicas`).
    Local,
    /// Calls that need a rate-limit permit are refused until Redis answers.
    Fail,
}

/// The Redis a fleet of replicas shares (rate limits, the verdict cache, jobs). No URL: none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:6379/0`, or `rediss://` for TLS; empty for none.
    pub url: Secret,
    /// Prefix of every key, so that several deployments can share one Redis.
    pub key_prefix: String,
    /// The longest any Redis call may take before it counts as failed.
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub on_redis_error: OnRedisError,
    /// Replicas sharing the limits: while Redis is away, each enforces limit / this.
    pub expected_replicas: u32,
    /// A job item taken by a replica that has not been heard of for this long is taken over
    /// by another (the first one is presumed dead).
    pub claim_idle_s: f64,
}

impl RedisSettings {
    /// The URL when Redis is configured.
    pub fn url(&self) -> Option<&str> {
        Some(self.url.expose().trim()).filter(|u| !u.is_empty())
    }
}
