//! What a successful call is answered with, online or in a batch: the pre-rendered bodies, the
//! prompt cache that sets their cached-token counts, and the token counts batches add up.

use crate::body::Canned;
use crate::cache::PromptCache;

/// The pieces of every successful answer.
pub struct Answers {
    pub canned: Canned,
    pub cache: PromptCache,
    /// Token counts of every successful answer.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}
