//! The attempt-record layer: every attempt of a route step, however it ended below (an answer,
//! a provider error, a timeout, an open circuit, no permit), is written to the step's trail
//! (what the client sees in `attempts`) and to the provider metrics, once.
//!
//! It sits just inside the retry layer, so each retry is recorded as the attempt it is. A
//! streamed answer's attempt is over when its first piece has arrived: its latency is the time
//! to that piece.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::BoxError;

use super::Attempt;
use super::stack::{Call, Failure, classify};
use crate::cost::Price;
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

#[derive(Clone)]
pub struct AttemptLayer {
    provider: Arc<str>,
    /// The rules judge answers without HTTP: its attempts carry no status.
    local: bool,
    metrics: Arc<SlotMetrics>,
}

impl AttemptLayer {
    pub fn new(provider: Arc<str>, local: bool, metrics: Arc<SlotMetrics>) -> Self {
        AttemptLayer {
            provider,
            local,
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for AttemptLayer {
    type Service = AttemptService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AttemptService<S> {
    inner: S,
    layer: AttemptLayer,
}

impl<S> tower::Service<Call> for AttemptService<S>
where
    S: tower::Service<Call>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Call) -> Self::Future {
        req.admitted = Arc::new(OnceLock::new());
        let admitted = req.admitted.clone();
        let trail = req.trail.clone();
        let model = req.chat.model.clone();
        let layer = self.layer.clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        async move {
            let result = fut.await.map_err(Into::into);
            // Latency is the provider's: from the moment the limits let the call go.
            let from = admitted.get().copied().unwrap_or(started);
            let elapsed = from.elapsed();
            let handles = layer.metrics.model(&model);
            let attempt = |outcome, status, error: Option<String>, latency| Attempt {
                provider: layer.provider.to_string(),
                model: model.clone(),
                outcome,
                status,
                error,
                latency_ms: super::ms(latency),
            };
            match &result {
                Ok(_) => {
                    handles.duration.record(elapsed.as_secs_f64());
                    handles.ok.increment(1);
                    let status = (!layer.local).then_some(200);
                    trail.push(attempt("ok", status, None, elapsed));
                }
                Err(e) => match classify(e) {
                    Failure::CircuitOpen => trail.push(attempt(
                        "skipped",
                        None,
                        Some("circuit open".into()),
                        std::time::Duration::ZERO,
                    )),
                    Failure::NoPermit => {
                        trail.push(attempt("skipped", None, Some(e.to_string()), started.elapsed()))
                    }
                    f => {
                        let status = match f {
                            Failure::Provider(p) => p.status(),
                            _ => None,
                        };
                        handles.duration.record(elapsed.as_secs_f64());
                        metrics::counter!(m::PROVIDER_REQUESTS, "provider" => layer.provider.to_string(),
                            "model" => handles.label.clone(), "outcome" => f.kind())
                        .increment(1);
                        let message = e.to_string();
                        tracing::debug!(provider = %layer.provider, model = %model, error = %message, "provider attempt failed");
                        trail.push(attempt("error", status, Some(message), elapsed));
                    }
                },
            }
            result
        }
        .boxed()
    }
}
