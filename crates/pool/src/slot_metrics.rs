//! A provider's metric handles, made once (per model, on first use), and the prices its calls
//! are counted at.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::price::Price;
use llm_judge_metrics as m;

/// How many models not named by any configured route (ad-hoc routes) get series of their own;
/// later ones share the `other` label, so clients cannot grow the metrics without bound.
const MAX_AD_HOC_MODELS: usize = 64;

/// A provider's metric handles, made once (per model, on first use). Updating a handle is an
/// atomic operation; the `metrics` macros instead build, hash and look up the labelled key.
pub struct SlotMetrics {
    provider: Arc<str>,
    pub inflight: metrics::Gauge,
    pub circuit: metrics::Gauge,
    pub wait: metrics::Histogram,
    models: RwLock<HashMap<String, Arc<ModelMetrics>>>,
    configured: usize,
    prices: Arc<BTreeMap<String, Price>>,
}

/// The handles of one `provider:model`.
pub struct ModelMetrics {
    pub label: String,
    pub duration: metrics::Histogram,
    pub ok: metrics::Counter,
    pub prompt_tokens: metrics::Counter,
    pub completion_tokens: metrics::Counter,
    /// Input tokens read from the provider's prompt cache (part of `prompt_tokens`).
    pub cached_prompt_tokens: metrics::Counter,
    /// Input tokens written to the provider's prompt cache (part of `prompt_tokens`).
    pub cache_write_tokens: metrics::Counter,
}

impl SlotMetrics {
    /// Handles for `provider`, with those of every model some route step names made now, so
    /// their series exist from start-up.
    pub fn new(
        provider: &str,
        models: impl Iterator<Item = String>,
        prices: Arc<BTreeMap<String, Price>>,
    ) -> SlotMetrics {
        let p = provider.to_string();
        let mut map = HashMap::new();
        for model in models {
            let h = ModelMetrics::new(&p, &model);
            map.insert(model, Arc::new(h));
        }
        let s = SlotMetrics {
            provider: provider.into(),
            inflight: metrics::gauge!(m::INFLIGHT, "provider" => p.clone()),
            circuit: metrics::gauge!(m::CIRCUIT_STATE, "provider" => p.clone()),
            wait: metrics::histogram!(m::RATE_LIMIT_WAIT, "provider" => p),
            configured: map.len(),
            models: RwLock::new(map),
            prices,
        };
        s.inflight.set(0.0);
        s.circuit.set(0.0);
        s
    }

    /// The handles of `model`, made on first use.
    pub fn model(&self, model: &str) -> Arc<ModelMetrics> {
        if let Some(h) = self
            .models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(model)
        {
            return h.clone();
        }
        let mut map = self.models.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(model) {
            return h.clone();
        }
        let label = if map.len() < self.configured + MAX_AD_HOC_MODELS {
            model
        } else {
            "other"
        };
        let h = map
            .get(label)
            .cloned()
            .unwrap_or_else(|| Arc::new(ModelMetrics::new(&self.provider, label)));
        map.insert(model.to_string(), h.clone());
        h
    }

    /// The configured price of `provider:model`, else of `model`.
    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices
            .get(&format!("{}:{model}", self.provider))
            .or_else(|| self.prices.get(model))
            .copied()
    }
}

impl ModelMetrics {
    fn new(provider: &str, model: &str) -> ModelMetrics {
        let (p, md) = (provider.to_string(), model.to_string());
        ModelMetrics {
            label: md.clone(),
            duration: metrics::histogram!(m::PROVIDER_DURATION, "provider" => p.clone(), "model" => md.clone()),
            ok: metrics::counter!(m::PROVIDER_REQUESTS, "provider" => p.clone(), "model" => md.clone(), "outcome" => "ok"),
            prompt_tokens: metrics::counter!(m::TOKENS, "provider" => p.clone(), "model" => md.clone(), "type" => "prompt"),
            completion_tokens: metrics::counter!(m::TOKENS, "provider" => p.clone(), "model" => md.clone(), "type" => "completion"),
            cached_prompt_tokens: metrics::counter!(m::TOKENS, "provider" => p.clone(), "model" => md.clone(), "type" => "cached_prompt"),
            cache_write_tokens: metrics::counter!(m::TOKENS, "provider" => p, "model" => md, "type" => "cache_write"),
        }
    }
}
