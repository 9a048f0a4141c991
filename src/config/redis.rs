//! The `[redis]` section: the state a fleet of replicas shares (off unless `redis.url` is set),
//! with its defaults and checks. Its settings are the fleet layer's own [`RedisSettings`].

use llm_judge_fleet::settings::RedisSettings;

use super::check::{ConfigError, DAY_S, range};

/// The `[redis]` defaults.
pub(super) const DEFAULTS: &str = r#"
[redis]
url = ""
key_prefix = "llm-judge"
timeout_ms = 250
connect_timeout_ms = 1000
on_redis_error = "local"
expected_replicas = 1
claim_idle_s = 30.0
"#;

/// Range checks of the `[redis]` keys, then its URL and key prefix.
pub(super) fn check(r: &RedisSettings) -> Result<(), ConfigError> {
    range("redis.timeout_ms", r.timeout_ms, 1, 60_000)?;
    range("redis.connect_timeout_ms", r.connect_timeout_ms, 1, 60_000)?;
    range("redis.expected_replicas", r.expected_replicas, 1, 10_000)?;
    range("redis.claim_idle_s", r.claim_idle_s, 0.1, DAY_S)?;
    if let Some(url) = r.url() {
        // The URL is not echoed: it may carry a password.
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some());
        if !ok {
            return Err(ConfigError(
                "redis.url is not a URL such as redis://host:6379/0 (or rediss:// for TLS)".into(),
            ));
        }
    }
    if r.key_prefix.is_empty() || r.key_prefix.chars().any(|c| c.is_whitespace()) {
        return Err(ConfigError(
            "redis.key_prefix must be a non-empty word with no spaces".into(),
        ));
    }
    Ok(())
}
