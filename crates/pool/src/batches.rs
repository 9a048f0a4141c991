//! What the pool offers a job's provider batches: a provider's batch API, the discount it
//! gives, and a batch's answer delivered and accounted for like an online one.

use std::time::Duration;

use crate::cost;
use crate::outcome::{Attempt, Delivered};
use crate::pool::Pool;
use llm_judge_chat::Completion;
use llm_judge_providers::ProviderKind;
use llm_judge_providers::provider_batch::BatchClient;

impl Pool {
    /// The batch API of `provider`, when it has one and a key to call it with.
    pub fn batch_client(&self, provider: &str) -> Option<&BatchClient> {
        self.slots
            .get(provider)
            .filter(|s| s.has_credentials)
            .and_then(|s| s.batch.as_ref())
    }
    /// A completion a provider batch of `provider` gave for `model`: priced at the batch
    /// price, counted in the token and cost metrics like an online answer.
    pub fn batch_delivered(
        &self,
        provider: &str,
        model: &str,
        completion: Completion,
        batch_id: &str,
        waited: Duration,
    ) -> Delivered {
        let cost = self.slots.get(provider).and_then(|slot| {
            let c = cost::of(slot, model, &completion, cost::Channel::ProviderBatch);
            cost::record(slot, model, &completion, c);
            c
        });
        Delivered {
            completion,
            provider: provider.to_string(),
            model: model.to_string(),
            attempts: vec![Attempt {
                provider: provider.to_string(),
                model: model.to_string(),
                outcome: "ok",
                status: None,
                error: None,
                latency_ms: (waited.as_secs_f64() * 1000.0).round(),
            }],
            fallback: false,
            cost_usd: cost,
            provider_time: waited,
            provider_batch: Some(batch_id.to_string()),
        }
    }

    /// The share a provider batch takes off the price of `provider:model` (`None`: no price).
    pub fn batch_discount(&self, provider: &str, model: &str) -> Option<f64> {
        let slot = self.slots.get(provider)?;
        if slot.kind == ProviderKind::Rules {
            return Some(0.0);
        }
        slot.metrics.price(model).map(|p| p.batch_discount())
    }
}
