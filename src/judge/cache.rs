//! The verdict cache: identical requests (same route, template version, prompt, images and
//! options) at temperature 0 reuse the judge's earlier answer instead of paying for it again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::chat::TokenLogprob;

/// A cached provider answer.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub text: String,
    pub provider: String,
    pub model: String,
    /// When the route reads confidence from log probabilities: the one token it was read at
    /// (the verdict token with its alternatives), so that a cached answer has the same
    /// confidence as the first.
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// A bounded map, evicting the oldest entry first. Sharded to keep lock contention low.
pub struct VerdictCache {
    capacity_per_shard: usize,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<[u8; 32], CachedAnswer>,
    order: VecDeque<[u8; 32]>,
}

const SHARDS: usize = 16;

impl VerdictCache {
    /// `capacity` 0 turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity_per_shard: capacity.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity_per_shard > 0
    }

    /// The key of a request: every part that can change the judge's answer.
    pub fn key(parts: &[&str]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        h.finalize().into()
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<Shard> {
        &self.shards[key[0] as usize % SHARDS]
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<CachedAnswer> {
        if !self.enabled() {
            return None;
        }
        self.shard(key).lock().unwrap().map.get(key).cloned()
    }

    pub fn put(&self, key: [u8; 32], value: CachedAnswer) {
        if !self.enabled() {
            return;
        }
        let mut s = self.shard(&key).lock().unwrap();
        if s.map.insert(key, value).is_none() {
            s.order.push_back(key);
            while s.order.len() > self.capacity_per_shard {
                if let Some(old) = s.order.pop_front() {
                    s.map.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(t: &str) -> CachedAnswer {
        CachedAnswer {
            text: t.into(),
            provider: "p".into(),
            model: "m".into(),
            logprobs: None,
        }
    }

    #[test]
    fn keys_separate_fields_and_capacity_is_bounded() {
        assert_ne!(
            VerdictCache::key(&["ab", "c"]),
            VerdictCache::key(&["a", "bc"])
        );
        let c = VerdictCache::new(SHARDS);
        let mut keys = Vec::new();
        for i in 0..200 {
            let k = VerdictCache::key(&[&i.to_string()]);
            c.put(k, answer("x"));
            keys.push(k);
        }
        let kept = keys.iter().filter(|k| c.get(k).is_some()).count();
        assert!(kept <= SHARDS, "{kept}");
        assert!(
            c.get(keys.last().unwrap()).is_some(),
            "the newest entry stays"
        );
        let off = VerdictCache::new(0);
        off.put(keys[0], answer("x"));
        assert!(off.get(&keys[0]).is_none());
    }
}
