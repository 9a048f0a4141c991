//! What the verdict cache's tiers share: the answer kept, the key it is kept under, and what a
//! tier behind the in-memory front does.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use llm_judge_chat::TokenLogprob;

/// A cached provider answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub text: String,
    pub provider: String,
    pub model: String,
    /// When the route reads confidence from log probabilities: the one token it was read at
    /// (the verdict token with its alternatives), so that a cached answer has the same
    /// confidence as the first.
    pub logprobs: Option<Vec<TokenLogprob>>,
}

impl CachedAnswer {
    /// The stored form of an answer (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An answer from its stored form; `None` for anything unreadable (it is then a miss).
    pub fn decode(bytes: &[u8]) -> Option<CachedAnswer> {
        serde_json::from_slice(bytes).ok()
    }

    /// Bytes the answer takes in memory, roughly.
    pub(super) fn weight(&self) -> usize {
        self.text.len() + self.provider.len() + self.model.len() + 32 + 3 * 24
    }
}

/// A cache key: the SHA-256 of every part that can change the judge's answer.
pub type Key = [u8; 32];

/// A tier behind the in-memory front.
pub trait CacheTier: Send + Sync + 'static {
    /// The tier's label in `llm_judge_cache_{hits,misses}_total{tier}`.
    fn name(&self) -> &'static str;
    /// The answer stored under `key`, if the tier has one (a tier that fails answers `None`).
    fn get<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Option<CachedAnswer>>;
    /// Stores an answer; it may be written after the call returns.
    fn put(&self, key: Key, value: &CachedAnswer);
    /// `Ok` while the tier can store answers; otherwise why not (for a readiness probe). A
    /// tier whose outages are reported elsewhere (Redis) answers `Ok`.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}
