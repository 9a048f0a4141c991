//! The verdict cache's tier contract (`CacheTier`), run against the tier on disk (redb, one
//! node) and the fleet's tier in Redis: an answer put is got back whole (it may be written after
//! `put` returns), answers are kept apart by key and a later one replaces an earlier one, and an
//! answer past its age is a miss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_judge_chat::TokenLogprob;
use llm_judge_judge::cache::disk::DiskCache;
use llm_judge_judge::cache::{CacheTier, CachedAnswer, Key, VerdictCache};

use crate::support::RedisServer;
use crate::within;

contract! {
    cases: [
        an_answer_put_is_got_back_whole,
        answers_are_kept_apart_by_key_and_a_later_one_replaces_an_earlier_one,
        an_answer_past_its_age_is_a_miss,
    ],
    implementations: { disk: open_disk, redis: open_redis }
}

/// How long a case waits for an answer put to be readable.
const WRITTEN: Duration = Duration::from_secs(5);

/// Opens tiers of one implementation, each keeping answers for its time to live.
struct Subject {
    open: Box<dyn Fn(Duration) -> Arc<dyn CacheTier> + Send + Sync>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

async fn open_disk() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let opened = std::sync::atomic::AtomicUsize::new(0);
    Some(Subject {
        // Each tier in a directory of its own: a database file is one tier's.
        open: Box::new(move |ttl| {
            let n = opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tier = DiskCache::open(&root.join(n.to_string()), 1 << 20, ttl).unwrap();
            Arc::new(tier) as Arc<dyn CacheTier>
        }),
        _keep: Box::new(dir),
    })
}

async fn open_redis() -> Option<Subject> {
    let server = RedisServer::start().await?;
    let redis = crate::redis_handle(&server, "");
    Some(Subject {
        open: Box::new(move |ttl| {
            let tier = llm_judge_fleet::cache::RedisCache::new(redis.clone(), ttl);
            Arc::new(tier) as Arc<dyn CacheTier>
        }),
        _keep: Box::new(server),
    })
}

fn key(name: &str) -> Key {
    VerdictCache::key(&["contract", name])
}

fn answer(text: &str) -> CachedAnswer {
    CachedAnswer {
        text: text.into(),
        provider: "p".into(),
        model: "m".into(),
        logprobs: None,
    }
}

/// Waits until the tier answers `want` for `key`.
async fn got(tier: &dyn CacheTier, key: &Key, want: &CachedAnswer) {
    within("the answer put", WRITTEN, async || {
        (tier.get(key).await.as_ref() == Some(want)).then_some(())
    })
    .await;
}

async fn an_answer_put_is_got_back_whole(s: &Subject) {
    let tier = (s.open)(Duration::from_secs(3600));
    let name = tier.name();
    assert!(
        !name.is_empty() && name != "memory",
        "{name}: the front is `memory`"
    );
    let k = key("whole");
    assert_eq!(tier.get(&k).await, None);
    let full = CachedAnswer {
        logprobs: Some(vec![TokenLogprob {
            token: " 1".into(),
            logprob: -0.25,
            top: vec![(" 1".into(), -0.25), (" 0".into(), -1.5)],
        }]),
        ..answer("The candidate matches.\nVerdict: 1")
    };
    tier.put(k, &full);
    got(&*tier, &k, &full).await;
}

async fn answers_are_kept_apart_by_key_and_a_later_one_replaces_an_earlier_one(s: &Subject) {
    let tier = (s.open)(Duration::from_secs(3600));
    let (one, two) = (key("one"), key("two"));
    tier.put(one, &answer("first"));
    tier.put(two, &answer("second"));
    got(&*tier, &one, &answer("first")).await;
    got(&*tier, &two, &answer("second")).await;
    tier.put(one, &answer("again"));
    got(&*tier, &one, &answer("again")).await;
    assert_eq!(tier.get(&two).await, Some(answer("second")));
    assert_eq!(tier.get(&key("three")).await, None);
}

async fn an_answer_past_its_age_is_a_miss(s: &Subject) {
    let ttl = Duration::from_secs(1);
    let tier = (s.open)(ttl);
    let k = key("aged");
    let put_at = Instant::now();
    tier.put(k, &answer("short-lived"));
    got(&*tier, &k, &answer("short-lived")).await;
    within("the answer to age", ttl + WRITTEN, async || {
        tier.get(&k).await.is_none().then_some(())
    })
    .await;
    let aged = put_at.elapsed();
    assert!(
        aged >= ttl - Duration::from_millis(100),
        "a miss after {aged:?}, before its age of {ttl:?}"
    );
}
