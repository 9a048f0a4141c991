//! Cost accounting: a completion's price in US dollars from the configured price table (cached
//! and cache-write input at their own prices, provider batches at their discount), the estimate
//! of a call's cost before it is made, and the token and cost metrics of every delivered
//! completion.

use crate::slot::ProviderSlot;
use llm_judge_chat::{Completion, Usage};
use llm_judge_metrics as m;
use llm_judge_providers::ProviderKind;

pub use crate::price::{DEFAULT_BATCH_DISCOUNT, DEFAULT_CACHE_WRITE_FACTOR, Price};

/// What a call (or an item's calls) may cost at most, before it is made; `cost_usd` is `None`
/// when some model it may reach has no price.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    pub cost_usd: Option<f64>,
    pub tokens: u64,
}

/// How a call was delivered, for its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// An ordinary (online) call.
    Online,
    /// A request of a provider batch, billed at the batch discount.
    ProviderBatch,
}

/// What `usage` costs at `price`: uncached input, cached input, cache writes and output tokens
/// each at their own price, then the batch discount for a provider batch.
pub fn usd(price: &Price, usage: &Usage, channel: Channel) -> f64 {
    // Cached and written tokens are part of `prompt_tokens`; a provider reporting more of them
    // than prompt tokens is believed for those and charged nothing for the rest.
    let special = usage.cached_prompt_tokens + usage.cache_write_tokens;
    let uncached = usage.prompt_tokens.saturating_sub(special);
    let online = (uncached as f64 * price.prompt_per_mtok
        + usage.cached_prompt_tokens as f64 * price.cached_prompt()
        + usage.cache_write_tokens as f64 * price.cache_write()
        + usage.completion_tokens as f64 * price.completion_per_mtok)
        / 1_000_000.0;
    match channel {
        Channel::Online => online,
        Channel::ProviderBatch => online * (1.0 - price.batch_discount()),
    }
}

/// The most a call may cost before it is made: `prompt_tokens` (an estimate) at the uncached
/// input price and all of `max_tokens` at the output price.
pub fn estimate_usd(price: &Price, prompt_tokens: u64, max_tokens: u64, channel: Channel) -> f64 {
    usd(price, &Usage::new(prompt_tokens, max_tokens), channel)
}

/// The cost of a completion at the configured price of `provider:model` or `model`; the rules
/// judge is free; `None` when no price is configured.
pub fn of(slot: &ProviderSlot, model: &str, c: &Completion, channel: Channel) -> Option<f64> {
    if slot.kind == ProviderKind::Rules {
        return Some(0.0);
    }
    let price = slot.metrics.price(model)?;
    Some(usd(&price, &c.usage, channel))
}

/// Counts a delivered completion's tokens (cached input and cache writes among them) and cost.
pub fn record(slot: &ProviderSlot, model: &str, c: &Completion, cost: Option<f64>) {
    let handles = slot.metrics.model(model);
    let u = &c.usage;
    handles.prompt_tokens.increment(u.prompt_tokens);
    handles.completion_tokens.increment(u.completion_tokens);
    if u.cached_prompt_tokens > 0 {
        handles
            .cached_prompt_tokens
            .increment(u.cached_prompt_tokens);
    }
    if u.cache_write_tokens > 0 {
        handles.cache_write_tokens.increment(u.cache_write_tokens);
    }
    if let Some(cost) = cost {
        m::add_cost(&slot.name, &handles.label, cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sonnet() -> Price {
        Price {
            cached_prompt_per_mtok: Some(0.3),
            cache_write_per_mtok: Some(3.75),
            ..Price::new(3.0, 15.0)
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn each_kind_of_token_is_charged_at_its_own_price() {
        // 2,000 input tokens: 1,500 read from the cache, 0 written; 100 output.
        let read = Usage {
            cached_prompt_tokens: 1500,
            ..Usage::new(2000, 100)
        };
        let want = (500.0 * 3.0 + 1500.0 * 0.3 + 100.0 * 15.0) / 1e6;
        assert!(close(usd(&sonnet(), &read, Channel::Online), want));
        // The first call writes the prefix instead.
        let write = Usage {
            cache_write_tokens: 1500,
            ..Usage::new(2000, 100)
        };
        let want = (500.0 * 3.0 + 1500.0 * 3.75 + 100.0 * 15.0) / 1e6;
        assert!(close(usd(&sonnet(), &write, Channel::Online), want));
        // Through a provider batch, half of that (the default discount), or the configured share.
        assert!(close(
            usd(&sonnet(), &write, Channel::ProviderBatch),
            want * 0.5
        ));
        let p = Price {
            batch_discount: Some(0.25),
            ..sonnet()
        };
        assert!(close(usd(&p, &write, Channel::ProviderBatch), want * 0.75));
    }

    #[test]
    fn without_cache_prices_cached_input_costs_the_full_price_and_writes_the_premium() {
        let plain = Price::new(2.5, 10.0);
        let u = Usage {
            cached_prompt_tokens: 1000,
            ..Usage::new(1200, 10)
        };
        let full = usd(&plain, &Usage::new(1200, 10), Channel::Online);
        assert!(close(usd(&plain, &u, Channel::Online), full));
        let w = Usage {
            cache_write_tokens: 1000,
            ..Usage::new(1200, 10)
        };
        let want = (200.0 * 2.5 + 1000.0 * 2.5 * 1.25 + 10.0 * 10.0) / 1e6;
        assert!(close(usd(&plain, &w, Channel::Online), want));
    }

    #[test]
    fn counts_beyond_the_prompt_are_not_charged_twice() {
        let odd = Usage {
            cached_prompt_tokens: 900,
            cache_write_tokens: 900,
            ..Usage::new(1000, 0)
        };
        let want = (900.0 * 0.3 + 900.0 * 3.75) / 1e6;
        assert!(close(usd(&sonnet(), &odd, Channel::Online), want));
    }

    #[test]
    fn an_estimate_prices_the_whole_completion_budget_as_uncached_input() {
        let e = estimate_usd(&sonnet(), 1000, 512, Channel::Online);
        assert!(close(e, (1000.0 * 3.0 + 512.0 * 15.0) / 1e6));
        let b = estimate_usd(&sonnet(), 1000, 512, Channel::ProviderBatch);
        assert!(close(b, e / 2.0));
    }
}
