//! The `[redis]` section, and a model's limits checked like any other key.

use super::load;
use crate::config::OnRedisError;

#[test]
fn redis_is_off_by_default_and_its_url_is_checked_without_being_echoed() {
    let s = load(&[], None).unwrap();
    assert!(s.redis.url().is_none());
    assert_eq!(s.redis.on_redis_error, OnRedisError::Local);
    let s = load(
        &[
            (
                "LLM_JUDGE__REDIS__URL",
                "rediss://:hunter2@cache.internal:6380/2",
            ),
            ("LLM_JUDGE__REDIS__ON_REDIS_ERROR", "fail"),
            ("LLM_JUDGE__REDIS__EXPECTED_REPLICAS", "4"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        s.redis.url(),
        Some("rediss://:hunter2@cache.internal:6380/2")
    );
    assert_eq!(s.redis.on_redis_error, OnRedisError::Fail);
    assert_eq!(s.redis.expected_replicas, 4);
    assert!(!format!("{s:?}").contains("hunter2"));
    let e = load(&[("LLM_JUDGE__REDIS__URL", "http://:hunter2@h:1")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("redis.url") && !e.contains("hunter2"), "{e}");
    let e = load(&[("LLM_JUDGE__REDIS__EXPECTED_REPLICAS", "0")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("redis.expected_replicas = 0"), "{e}");
    let e = load(&[("LLM_JUDGE__REDIS__ON_REDIS_ERROR", "panic")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("panic"), "{e}");
    let limits = "[providers.openai.model_limits.\"gpt-4o-mini\"]\nrequests_per_minute = 0\n";
    let e = load(&[], Some(limits)).unwrap_err().to_string();
    assert!(
        e.contains("model_limits.\"gpt-4o-mini\".requests_per_minute = 0"),
        "{e}"
    );
}
