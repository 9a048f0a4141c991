//! The verdict cache's shared tier: answers in Redis (`PREFIX:vc:KEY`, expiring after
//! `cache.ttl_hours`), so that a verdict judged on one replica is a hit on every other.
//!
//! A lookup that fails or times out is a miss, and a store that fails is dropped: the cache never
//! holds a judgment up for longer than the Redis timeout, and during an outage it is skipped.
//! Lookups (MGET) and stores (a pipeline of SET EX) that arrive together share a round trip.

use std::sync::Arc;
use std::time::Duration;

use super::Redis;
use crate::pipeline::Batcher;
use futures::FutureExt;
use futures::future::BoxFuture;
use llm_judge_judge::cache::{CacheTier, CachedAnswer, Key};

pub struct RedisCache {
    redis: Arc<Redis>,
    gets: Batcher<String, Option<Vec<u8>>>,
    puts: Batcher<(String, Vec<u8>), ()>,
}

impl RedisCache {
    /// Needs a tokio runtime (its batch senders are tasks).
    pub fn new(redis: Arc<Redis>, ttl: Duration) -> RedisCache {
        let ttl_s = ttl.as_secs().max(1);
        let r = redis.clone();
        let gets = Batcher::new(Arc::new(move |keys: Vec<String>| {
            let r = r.clone();
            Box::pin(async move {
                r.call("cache_get", |mut c| async move {
                    redis::cmd("MGET").arg(&keys).query_async(&mut c).await
                })
                .await
            }) as BoxFuture<'static, _>
        }));
        let r = redis.clone();
        let puts = Batcher::new(Arc::new(move |items: Vec<(String, Vec<u8>)>| {
            let r = r.clone();
            Box::pin(async move {
                let n = items.len();
                let mut pipe = redis::pipe();
                for (k, v) in items {
                    pipe.set_ex(k, v, ttl_s).ignore();
                }
                r.call("cache_put", |mut c| async move {
                    pipe.query_async::<()>(&mut c).await
                })
                .await?;
                Ok(vec![(); n])
            }) as BoxFuture<'static, _>
        }));
        RedisCache { redis, gets, puts }
    }

    fn key(&self, key: &Key) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut k = self.redis.key("vc:");
        k.reserve(64);
        for b in key {
            k.push(char::from(HEX[usize::from(b >> 4)]));
            k.push(char::from(HEX[usize::from(b & 15)]));
        }
        k
    }
}

impl CacheTier for RedisCache {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Option<CachedAnswer>> {
        if !self.redis.is_up() {
            return futures::future::ready(None).boxed();
        }
        let k = self.key(key);
        async move {
            let bytes = self.gets.call(k).await.ok().flatten();
            bytes.and_then(|b| CachedAnswer::decode(&b))
        }
        .boxed()
    }

    fn put(&self, key: Key, value: &CachedAnswer) {
        if self.redis.is_up() {
            self.puts.send((self.key(&key), value.encode()));
        }
    }
}
