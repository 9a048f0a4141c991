//! What calls along a route may cost: the steps no price covers, the most one call may cost
//! before it is made, and what a usage of a provider's model cost.

use crate::cost;
use crate::pool::{Pool, Step};
use llm_judge_chat::Usage;
use llm_judge_providers::ProviderKind;

impl Pool {
    /// The steps of the route that may be called and have no price: a budget in dollars cannot
    /// cover them. Rules steps are free; steps without credentials are skipped, never called.
    pub fn unpriced_steps(&self, route: &str) -> Vec<Step> {
        let Ok(steps) = self.steps(route) else {
            return Vec::new();
        };
        steps
            .iter()
            .filter(|st| {
                self.slots.get(&st.provider).is_some_and(|s| {
                    s.kind != ProviderKind::Rules
                        && s.has_credentials
                        && s.metrics.price(&st.model).is_none()
                })
            })
            .cloned()
            .collect()
    }

    /// The most one call along the route may cost before it is made: `prompt_tokens` (an
    /// estimate) and the whole `max_tokens` at the dearest step that may answer (fallback may
    /// reach any of them). `None` when one of those steps has no price.
    pub fn estimate(&self, route: &str, prompt_tokens: u64, max_tokens: u32) -> cost::Estimate {
        let tokens = prompt_tokens + u64::from(max_tokens);
        let mut dearest = Some(0.0_f64);
        for st in self
            .steps(route)
            .map(|s| s.into_owned())
            .unwrap_or_default()
        {
            let Some(slot) = self.slots.get(&st.provider) else {
                continue;
            };
            if slot.kind == ProviderKind::Rules || !slot.has_credentials {
                continue;
            }
            let step_cost = slot.metrics.price(&st.model).map(|p| {
                cost::estimate_usd(
                    &p,
                    prompt_tokens,
                    u64::from(max_tokens),
                    cost::Channel::Online,
                )
            });
            dearest = match (dearest, step_cost) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        cost::Estimate {
            cost_usd: dearest,
            tokens,
        }
    }

    /// What `usage` of `provider:model` cost through `channel` (the rules judge is free);
    /// `None` when the model has no price.
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: &Usage,
        channel: cost::Channel,
    ) -> Option<f64> {
        let slot = self.slots.get(provider)?;
        if slot.kind == ProviderKind::Rules {
            return Some(0.0);
        }
        slot.metrics
            .price(model)
            .map(|p| cost::usd(&p, usage, channel))
    }
}
