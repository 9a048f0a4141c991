//! A model's price in the configured price table, with the defaults for what the table leaves
//! out (cached input, cache writes, the provider batch discount).

use serde::Deserialize;

/// Price of a model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub prompt_per_mtok: f64,
    pub completion_per_mtok: f64,
    /// Input tokens read from the provider's prompt cache; `prompt_per_mtok` when left out, so
    /// that a missing entry never makes a call look cheaper than it was.
    #[serde(default)]
    pub cached_prompt_per_mtok: Option<f64>,
    /// Input tokens written to the provider's prompt cache (only Anthropic reports them); 1.25 x
    /// `prompt_per_mtok` when left out, Anthropic's premium for the 5-minute cache.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
    /// The share of the price taken off for calls sent through a provider's batch API (0.5 when
    /// left out: half price).
    #[serde(default)]
    pub batch_discount: Option<f64>,
}

/// What a cache write costs per prompt token when the price table does not say: Anthropic's
/// premium for the 5-minute cache, the only writes any provider reports.
pub const DEFAULT_CACHE_WRITE_FACTOR: f64 = 1.25;

/// The share of the online price a provider batch takes off when the price table does not say.
pub const DEFAULT_BATCH_DISCOUNT: f64 = 0.5;

impl Price {
    /// A price of prompt and completion tokens, with the defaults for the rest.
    pub fn new(prompt_per_mtok: f64, completion_per_mtok: f64) -> Price {
        Price {
            prompt_per_mtok,
            completion_per_mtok,
            cached_prompt_per_mtok: None,
            cache_write_per_mtok: None,
            batch_discount: None,
        }
    }

    /// Per million input tokens read from the prompt cache.
    pub fn cached_prompt(&self) -> f64 {
        self.cached_prompt_per_mtok.unwrap_or(self.prompt_per_mtok)
    }

    /// Per million input tokens written to the prompt cache.
    pub fn cache_write(&self) -> f64 {
        self.cache_write_per_mtok
            .unwrap_or(self.prompt_per_mtok * DEFAULT_CACHE_WRITE_FACTOR)
    }

    /// The share of the price taken off through a provider batch.
    pub fn batch_discount(&self) -> f64 {
        self.batch_discount.unwrap_or(DEFAULT_BATCH_DISCOUNT)
    }
}
