//! Cost accounting: a completion's price in US dollars from the configured price table, and the
//! token and cost metrics of every delivered completion.

use super::ProviderSlot;
use crate::chat::Completion;
use crate::config::ProviderKind;
use crate::metrics as m;

/// The cost of a completion at the configured price of `provider:model` or `model`; the rules
/// judge is free; `None` when no price is configured.
pub fn of(slot: &ProviderSlot, model: &str, c: &Completion) -> Option<f64> {
    if slot.kind == ProviderKind::Rules {
        return Some(0.0);
    }
    let price = slot.metrics.price(model)?;
    Some(
        (c.usage.prompt_tokens as f64 * price.prompt_per_mtok
            + c.usage.completion_tokens as f64 * price.completion_per_mtok)
            / 1_000_000.0,
    )
}

/// Counts a delivered completion's tokens and cost.
pub fn record(slot: &ProviderSlot, model: &str, c: &Completion, cost: Option<f64>) {
    let handles = slot.metrics.model(model);
    handles.prompt_tokens.increment(c.usage.prompt_tokens);
    handles
        .completion_tokens
        .increment(c.usage.completion_tokens);
    if let Some(cost) = cost {
        m::add_cost(&slot.name, &handles.label, cost);
    }
}
