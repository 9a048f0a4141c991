//! The rate limiter's contract (`Limiter`), run against the in-process limiter and the fleet's
//! limiter in Redis, both made from the same provider settings: never more requests or tokens in
//! a window than the limits, a token estimate capped at the window, a grant settled at what the
//! call used (nothing for a call never sent), a model's own limits on top of its provider's, and
//! a full window that frees up once the window has passed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use llm_judge_pool::rate_limit::{Limiter, NoPermit};
use tokio::time::Instant;

use crate::support::RedisServer;

contract! {
    cases: [
        a_provider_without_limits_grants_every_call_at_once,
        never_more_requests_in_a_window_than_the_limit,
        a_call_never_sent_gives_its_request_back,
        tokens_are_capped_at_the_window_and_settled_at_what_was_used,
        a_models_limit_binds_that_model_on_top_of_the_providers,
        a_full_window_grants_again_once_the_window_has_passed,
    ],
    implementations: { local: open_local, redis: open_redis }
}

/// The providers the cases use, one per kind of limit (a limiter is a provider's).
const PROVIDERS: &str = r#"
[providers.free]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-test"
[providers.req]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-test"
requests_per_minute = 3
[providers.tok]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-test"
tokens_per_minute = 100
[providers.models]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-test"
requests_per_minute = 3
[providers.models.model_limits."small"]
requests_per_minute = 1
[providers.fast]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-test"
requests_per_minute = 2
rate_window_s = 0.3
"#;

/// Each provider's limiter, with what must live as long as they do (their Redis).
struct Subject {
    limiters: HashMap<String, Arc<dyn Limiter>>,
    _keep: Option<RedisServer>,
}

impl Subject {
    fn of(&self, provider: &str) -> &dyn Limiter {
        &*self.limiters[provider]
    }
}

async fn open_local() -> Option<Subject> {
    let settings = crate::support::settings(PROVIDERS, &[]);
    let limiters = settings
        .providers
        .iter()
        .map(|(name, p)| {
            let l: Arc<dyn Limiter> = Arc::new(llm_judge_pool::local_limiter(p));
            (name.clone(), l)
        })
        .collect();
    Some(Subject {
        limiters,
        _keep: None,
    })
}

async fn open_redis() -> Option<Subject> {
    let server = RedisServer::start().await?;
    let redis = crate::redis_handle(&server, "");
    let settings = crate::support::settings(PROVIDERS, &[]);
    let limiters = settings
        .providers
        .iter()
        .map(|(name, p)| {
            let l: Arc<dyn Limiter> = Arc::new(llm_judge_fleet::limiter::RedisLimiter::new(
                redis.clone(),
                p,
            ));
            (name.clone(), l)
        })
        .collect();
    Some(Subject {
        limiters,
        _keep: Some(server),
    })
}

/// A wait budget too short for a window to free up.
fn soon() -> Instant {
    Instant::now() + Duration::from_millis(100)
}

/// A wait budget long enough for a settling to reach the limiter.
fn patiently() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

async fn a_provider_without_limits_grants_every_call_at_once(s: &Subject) {
    let l = s.of("free");
    assert_eq!(l.limits(), (None, None));
    for i in 0..50 {
        let r = l.reserve("m", 1000 + i, Instant::now()).await.unwrap();
        assert_eq!(r.tokens, 1000 + i, "the whole estimate is reserved");
        l.settle("m", r, Some(10));
    }
}

async fn never_more_requests_in_a_window_than_the_limit(s: &Subject) {
    let l = s.of("req");
    assert_eq!(l.limits(), (Some(3), None));
    for _ in 0..3 {
        l.reserve("m", 10, soon()).await.unwrap();
    }
    assert_eq!(l.reserve("m", 10, soon()).await, Err(NoPermit));
    assert_eq!(
        l.reserve("other-model", 10, soon()).await,
        Err(NoPermit),
        "the provider's limit counts every model"
    );
}

async fn a_call_never_sent_gives_its_request_back(s: &Subject) {
    let l = s.of("req");
    let first = l.reserve("m", 10, soon()).await.unwrap();
    for _ in 0..2 {
        let r = l.reserve("m", 10, soon()).await.unwrap();
        l.settle("m", r, Some(10));
    }
    assert_eq!(l.reserve("m", 10, soon()).await, Err(NoPermit));
    l.settle("m", first, None);
    l.reserve("m", 10, patiently())
        .await
        .expect("the unsent call's place is free again");
    assert_eq!(l.reserve("m", 10, soon()).await, Err(NoPermit));
}

async fn tokens_are_capped_at_the_window_and_settled_at_what_was_used(s: &Subject) {
    let l = s.of("tok");
    assert_eq!(l.limits(), (None, Some(100)));
    let big = l.reserve("m", 500, soon()).await.unwrap();
    assert_eq!(
        big.tokens, 100,
        "an estimate above the window goes alone, capped"
    );
    // It used 10: the other 90 are free again.
    l.settle("m", big, Some(10));
    let rest = l.reserve("m", 90, patiently()).await.unwrap();
    assert_eq!(rest.tokens, 90);
    assert_eq!(
        l.reserve("m", 1, soon()).await,
        Err(NoPermit),
        "10 used and 90 reserved fill the window"
    );
    // Never sent: its 90 tokens are given back.
    l.settle("m", rest, None);
    l.reserve("m", 90, patiently()).await.unwrap();
    assert_eq!(l.reserve("m", 1, soon()).await, Err(NoPermit));
}

async fn a_models_limit_binds_that_model_on_top_of_the_providers(s: &Subject) {
    let l = s.of("models");
    let small = l.reserve("small", 1, soon()).await.unwrap();
    assert_eq!(l.reserve("small", 1, soon()).await, Err(NoPermit));
    // The refused model call took nothing from its provider: two more for other models.
    l.reserve("big", 1, soon()).await.unwrap();
    l.reserve("big", 1, soon()).await.unwrap();
    assert_eq!(l.reserve("big", 1, soon()).await, Err(NoPermit));
    l.settle("small", small, None);
    l.reserve("small", 1, patiently()).await.unwrap();
}

async fn a_full_window_grants_again_once_the_window_has_passed(s: &Subject) {
    let l = s.of("fast");
    for _ in 0..2 {
        let r = l.reserve("m", 1, soon()).await.unwrap();
        l.settle("m", r, Some(1));
    }
    let full = std::time::Instant::now();
    assert_eq!(l.reserve("m", 1, Instant::now()).await, Err(NoPermit));
    l.reserve("m", 1, patiently())
        .await
        .expect("granted once the window has passed");
    let waited = full.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "granted after {waited:?}, inside the 300 ms window"
    );
}
