//! Prompt caching, as far as `usage` shows it (`--cached-tokens N`).
//!
//! The rule, the same for online calls and batch requests:
//! - A request's *prefix* is its model and everything before its last message: Anthropic's
//!   `system` and every message but the last; OpenAI's every message but the last. A judge puts
//!   its instructions first and the item last, so the requests of one judge share a prefix.
//! - OpenAI caches on its own: the first request of a prefix reports
//!   `prompt_tokens_details.cached_tokens: 0`, every later one `N`.
//! - Anthropic caches only what the request marks: a request without `cache_control` anywhere
//!   reports no cache tokens; with it, the first request of a prefix reports
//!   `cache_creation_input_tokens: N`, every later one `cache_read_input_tokens: N`, and
//!   `input_tokens` is the rest (`--prompt-tokens` less N), as Anthropic counts them.
//! - The prefixes seen are kept until `POST /stats/reset` (no five-minute lifetime), and the
//!   minimum cacheable length is not applied (token counts are the configured ones anyway).
//!
//! With `--cached-tokens 0` (the default) nothing is looked at: the chat path does no extra work.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::Api;

/// What the prompt cache did for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Nothing cached or read (caching off, or an Anthropic request with no `cache_control`).
    None,
    /// The first request of its prefix: Anthropic reports the prefix written to the cache.
    Write,
    /// A later request of a prefix already seen: read from the cache.
    Read,
}

/// The prefixes seen so far.
pub struct PromptCache {
    tokens: u64,
    seen: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

/// The fields of a chat request the rule looks at, borrowed from the request's bytes.
#[derive(Deserialize)]
struct Prompt<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Vec<&'a RawValue>,
}

impl PromptCache {
    /// A cache that reports `tokens` cached tokens (0: caching off).
    pub fn new(tokens: u64) -> PromptCache {
        PromptCache {
            tokens,
            seen: Mutex::new(HashSet::new()),
            hasher: Default::default(),
        }
    }

    /// The cached-token count reported when a request reads or writes the cache.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// What the cache does for `request` (a chat request body of `api`'s format).
    pub fn lookup(&self, api: Api, request: &[u8]) -> CacheUse {
        if self.tokens == 0 {
            return CacheUse::None;
        }
        if api == Api::Anthropic && !contains(request, b"\"cache_control\"") {
            return CacheUse::None;
        }
        // A body that is not a chat request gets an ordinary answer with nothing cached.
        let Ok(prompt) = serde_json::from_slice::<Prompt>(request) else {
            return CacheUse::None;
        };
        let mut h = self.hasher.build_hasher();
        (api == Api::Anthropic).hash(&mut h);
        prompt.model.map(RawValue::get).hash(&mut h);
        prompt.system.map(RawValue::get).hash(&mut h);
        let prefix = prompt.messages.len().saturating_sub(1);
        for m in &prompt.messages[..prefix] {
            m.get().hash(&mut h);
        }
        let first = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(h.finish());
        if first {
            CacheUse::Write
        } else {
            CacheUse::Read
        }
    }

    /// Forgets every prefix seen.
    pub fn clear(&self) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_of_a_prefix_writes_and_later_ones_read() {
        let c = PromptCache::new(100);
        let a = br#"{"model":"m","messages":[{"role":"system","content":"judge"},{"role":"user","content":"item 1"}]}"#;
        let b = br#"{"model":"m","messages":[{"role":"system","content":"judge"},{"role":"user","content":"item 2"}]}"#;
        let other = br#"{"model":"m","messages":[{"role":"system","content":"another judge"},{"role":"user","content":"item 1"}]}"#;
        assert_eq!(c.lookup(Api::OpenAi, a), CacheUse::Write);
        assert_eq!(c.lookup(Api::OpenAi, b), CacheUse::Read);
        assert_eq!(c.lookup(Api::OpenAi, other), CacheUse::Write);
        // Another model is another prefix.
        let m2 = br#"{"model":"m2","messages":[{"role":"system","content":"judge"},{"role":"user","content":"x"}]}"#;
        assert_eq!(c.lookup(Api::OpenAi, m2), CacheUse::Write);
        c.clear();
        assert_eq!(c.lookup(Api::OpenAi, b), CacheUse::Write);
        assert_eq!(c.lookup(Api::OpenAi, b"not json"), CacheUse::None);
    }

    #[test]
    fn anthropic_caches_only_marked_requests_and_zero_tokens_is_off() {
        let c = PromptCache::new(100);
        let plain =
            br#"{"model":"c","system":"judge","messages":[{"role":"user","content":"item"}]}"#;
        assert_eq!(c.lookup(Api::Anthropic, plain), CacheUse::None);
        assert_eq!(c.lookup(Api::Anthropic, plain), CacheUse::None);
        let marked = br#"{"model":"c","system":[{"type":"text","text":"judge","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"item 1"}]}"#;
        let marked2 = br#"{"model":"c","system":[{"type":"text","text":"judge","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"item 2"}]}"#;
        assert_eq!(c.lookup(Api::Anthropic, marked), CacheUse::Write);
        assert_eq!(c.lookup(Api::Anthropic, marked2), CacheUse::Read);
        // The same prefix through OpenAI is not Anthropic's cache.
        assert_eq!(c.lookup(Api::OpenAi, marked), CacheUse::Write);
        let off = PromptCache::new(0);
        assert_eq!(off.lookup(Api::OpenAi, marked), CacheUse::None);
        assert_eq!(off.lookup(Api::OpenAi, marked), CacheUse::None);
    }
}
