//! The verdict cache: identical requests (same route, template version, prompt, images,
//! decoding parameters and parser version) at temperature 0 reuse the judge's earlier answer
//! instead of paying for it again.
//!
//! Only answers that read as a verdict are kept, and what is kept is the judge's raw text (with
//! the provider and model that wrote it): a hit is parsed again like a fresh answer.
//!
//! Tiers, looked up in order: an in-memory front (bounded by entries and by bytes), then any
//! further [`CacheTier`]s (an embedded one on disk, a shared one in Redis). A hit in a later tier
//! is copied into the earlier ones; a new answer goes into every tier.

pub mod disk;
mod tier;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use llm_judge_metrics as m;
pub use tier::{CacheTier, CachedAnswer, Key};

/// One tier with its counters.
struct Tier {
    tier: Arc<dyn CacheTier>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl Tier {
    fn new(tier: Arc<dyn CacheTier>) -> Tier {
        let name = tier.name();
        Tier {
            hits: metrics::counter!(m::CACHE_HITS, "tier" => name),
            misses: metrics::counter!(m::CACHE_MISSES, "tier" => name),
            tier,
        }
    }
}

/// The tiers, the in-memory one first.
pub struct VerdictCache {
    memory: Option<moka::sync::Cache<Key, Arc<CachedAnswer>>>,
    memory_hits: Option<(metrics::Counter, metrics::Counter)>,
    tiers: Vec<Tier>,
}

impl VerdictCache {
    /// An in-memory cache of at most `entries` answers and about `bytes` bytes; `entries` 0
    /// turns the cache off (every tier).
    pub fn new(entries: usize, bytes: u64) -> Self {
        let memory = (entries > 0).then(|| {
            let bytes = bytes.max(1);
            // Each entry weighs at least bytes / entries: both bounds hold.
            let floor = (bytes / entries as u64).max(1);
            moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(move |_: &Key, v: &Arc<CachedAnswer>| {
                    (v.weight() as u64).max(floor).min(u64::from(u32::MAX)) as u32
                })
                .build()
        });
        let memory_hits = memory.as_ref().map(|_| {
            (
                metrics::counter!(m::CACHE_HITS, "tier" => "memory"),
                metrics::counter!(m::CACHE_MISSES, "tier" => "memory"),
            )
        });
        Self {
            memory,
            memory_hits,
            tiers: Vec::new(),
        }
    }

    /// Adds a tier behind those already there (ignored when the cache is off).
    pub fn with_tier(mut self, tier: Arc<dyn CacheTier>) -> Self {
        if self.enabled() {
            self.tiers.push(Tier::new(tier));
        }
        self
    }

    pub fn enabled(&self) -> bool {
        self.memory.is_some()
    }

    /// The key of a request: every part that can change the judge's answer.
    pub fn key(parts: &[&str]) -> Key {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        h.finalize().into()
    }

    /// The answer stored under `key`, from the first tier that has it.
    pub async fn get(&self, key: &Key) -> Option<CachedAnswer> {
        let memory = self.memory.as_ref()?;
        let (hits, misses) = self.memory_hits.as_ref()?;
        if let Some(v) = memory.get(key) {
            hits.increment(1);
            return Some((*v).clone());
        }
        misses.increment(1);
        for (i, t) in self.tiers.iter().enumerate() {
            match t.tier.get(key).await {
                Some(v) => {
                    t.hits.increment(1);
                    for earlier in &self.tiers[..i] {
                        earlier.tier.put(*key, &v);
                    }
                    memory.insert(*key, Arc::new(v.clone()));
                    return Some(v);
                }
                None => t.misses.increment(1),
            }
        }
        None
    }

    /// Stores an answer in every tier.
    pub fn put(&self, key: Key, value: CachedAnswer) {
        let Some(memory) = &self.memory else { return };
        for t in &self.tiers {
            t.tier.put(key, &value);
        }
        memory.insert(key, Arc::new(value));
    }

    /// `Ok` while every tier can store answers; otherwise why the first that cannot.
    pub fn health(&self) -> Result<(), String> {
        self.tiers.iter().try_for_each(|t| t.tier.health())
    }

    /// Answers held in memory (after pending evictions are applied).
    pub fn memory_entries(&self) -> u64 {
        self.memory.as_ref().map_or(0, |m| {
            m.run_pending_tasks();
            m.entry_count()
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use std::sync::Mutex;

    fn answer(t: &str) -> CachedAnswer {
        CachedAnswer {
            text: t.into(),
            provider: "p".into(),
            model: "m".into(),
            logprobs: None,
        }
    }

    #[tokio::test]
    async fn keys_separate_fields_and_both_bounds_hold() {
        assert_ne!(
            VerdictCache::key(&["ab", "c"]),
            VerdictCache::key(&["a", "bc"])
        );
        // Bounded by entries.
        let c = VerdictCache::new(16, 1 << 30);
        for i in 0..200 {
            c.put(VerdictCache::key(&[&i.to_string()]), answer("x"));
        }
        assert!(c.memory_entries() <= 16, "{}", c.memory_entries());
        // Bounded by bytes: 1 KiB answers in 64 KiB.
        let c = VerdictCache::new(100_000, 64 * 1024);
        let big = "y".repeat(1024);
        for i in 0..1000 {
            c.put(VerdictCache::key(&[&i.to_string()]), answer(&big));
        }
        assert!(c.memory_entries() <= 64, "{}", c.memory_entries());
        let off = VerdictCache::new(0, 1 << 20);
        let k = VerdictCache::key(&["k"]);
        off.put(k, answer("x"));
        assert!(off.get(&k).await.is_none());
    }

    /// A tier in memory that counts its calls.
    #[derive(Default)]
    struct Recording {
        stored: Mutex<std::collections::HashMap<Key, CachedAnswer>>,
        gets: Mutex<usize>,
    }

    impl CacheTier for Recording {
        fn name(&self) -> &'static str {
            "test"
        }
        fn get<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Option<CachedAnswer>> {
            *self.gets.lock().unwrap() += 1;
            let v = self.stored.lock().unwrap().get(key).cloned();
            Box::pin(async move { v })
        }
        fn put(&self, key: Key, value: &CachedAnswer) {
            self.stored.lock().unwrap().insert(key, value.clone());
        }
    }

    #[tokio::test]
    async fn a_hit_in_a_later_tier_fills_the_front_and_puts_reach_every_tier() {
        let tier = Arc::new(Recording::default());
        let k = VerdictCache::key(&["k"]);
        tier.put(k, &answer("from the tier"));
        let c = VerdictCache::new(100, 1 << 20).with_tier(tier.clone());
        assert_eq!(c.get(&k).await.unwrap().text, "from the tier");
        assert_eq!(c.get(&k).await.unwrap().text, "from the tier");
        assert_eq!(
            *tier.gets.lock().unwrap(),
            1,
            "the second get is the front's"
        );
        let k2 = VerdictCache::key(&["k2"]);
        c.put(k2, answer("new"));
        assert_eq!(tier.stored.lock().unwrap()[&k2].text, "new");
        assert!(c.get(&VerdictCache::key(&["none"])).await.is_none());
        assert_eq!(
            CachedAnswer::decode(&answer("z").encode()),
            Some(answer("z"))
        );
        assert_eq!(CachedAnswer::decode(b"not json"), None);
    }
}
