//! The provider pool: routes (ordered fallback chains of provider steps) over a shared set of
//! provider clients, each behind its own limits, retries and circuit breaker.
//!
//! Per step, outermost first: step deadline -> retry (with a shared budget) -> circuit breaker ->
//! per-attempt timeout -> rate limit + concurrency cap -> the provider adapter. Retry sits outside
//! the limits, so a request backing off holds no concurrency slot; an open breaker or a rate-limit
//! wait past its budget moves the route to its next step instead of retrying.

pub mod breaker;
pub mod limit;
pub mod retry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Price, ProviderKind, ProviderSettings, Settings};
use crate::metrics as m;
use crate::providers::http::{ClientOptions, HttpClient};
use crate::providers::{
    ChatRequest, Completion, Provider, ProviderError, anthropic, azure, cohere, gemini, openai,
    rules,
};
use breaker::{Admission, Breaker, BreakerConfig, CircuitState};
use limit::Limits;
use retry::{RetryBudget, RetryDecision, RetryPolicy};

/// One provider with everything that guards it.
pub struct ProviderSlot {
    pub name: String,
    pub kind: ProviderKind,
    provider: Arc<dyn Provider>,
    pub limits: Limits,
    pub breaker: Breaker,
    policy: RetryPolicy,
    timeout: Duration,
    deadline: Duration,
    permit_wait: Duration,
    /// The provider's key, scrubbed from any text a provider sends back (some echo it).
    secret: Option<String>,
    metrics: SlotMetrics,
}

/// A provider's metric handles, made once at start-up. Updating a handle is an atomic
/// operation; the `metrics` macros instead build, hash and look up the labelled key on every
/// call, which was measurable CPU per judged item.
struct SlotMetrics {
    inflight: metrics::Gauge,
    circuit: metrics::Gauge,
    wait: metrics::Histogram,
    /// Per model of this provider that some route step names.
    models: HashMap<String, ModelMetrics>,
}

struct ModelMetrics {
    /// The configured price of this provider and model, looked up once.
    price: Option<Price>,
    duration: metrics::Histogram,
    ok: metrics::Counter,
    prompt_tokens: metrics::Counter,
    completion_tokens: metrics::Counter,
}

impl SlotMetrics {
    /// The handles of a model some route step names for this provider. Every such model has
    /// them: they are made from the same routes the pool's steps come from.
    fn model(&self, model: &str) -> &ModelMetrics {
        self.models
            .get(model)
            .expect("every route step's model has metric handles")
    }

    fn new(
        provider: &str,
        models: impl Iterator<Item = String>,
        prices: &BTreeMap<String, Price>,
    ) -> SlotMetrics {
        let p = provider.to_string();
        SlotMetrics {
            inflight: metrics::gauge!(m::INFLIGHT, "provider" => p.clone()),
            circuit: metrics::gauge!(m::CIRCUIT_STATE, "provider" => p.clone()),
            wait: metrics::histogram!(m::RATE_LIMIT_WAIT, "provider" => p.clone()),
            models: models
                .map(|model| {
                    let h = ModelMetrics {
                        price: price_of(prices, provider, &model),
                        duration: metrics::histogram!(m::PROVIDER_DURATION, "provider" => p.clone(), "model" => model.clone()),
                        ok: metrics::counter!(m::PROVIDER_REQUESTS, "provider" => p.clone(), "model" => model.clone(), "outcome" => "ok"),
                        prompt_tokens: metrics::counter!(m::TOKENS, "provider" => p.clone(), "model" => model.clone(), "type" => "prompt"),
                        completion_tokens: metrics::counter!(m::TOKENS, "provider" => p.clone(), "model" => model.clone(), "type" => "completion"),
                    };
                    (model, h)
                })
                .collect(),
        }
    }
}

impl ProviderSlot {
    /// Removes the provider's key from text that will reach a client, a log or a metric.
    fn scrub(&self, text: String) -> String {
        match &self.secret {
            Some(k) if k.len() >= 4 && text.contains(k.as_str()) => {
                text.replace(k.as_str(), "[redacted]")
            }
            _ => text,
        }
    }
}

/// One step of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub provider: String,
    pub model: String,
}

/// What one attempt did, as reported to clients.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// `ok`, `error`, `skipped`.
    pub outcome: &'static str,
    /// The provider's HTTP status, when it answered with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong (never contains credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: f64,
}

/// A completion and how it was obtained.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub completion: Completion,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    pub fallback: bool,
    pub cost_usd: Option<f64>,
    /// Time spent waiting on providers (attempts and backoff), for the overhead metric.
    pub provider_time: Duration,
}

/// Every step of the route failed.
#[derive(Debug, Clone)]
pub struct RouteFailed {
    pub attempts: Vec<Attempt>,
    pub provider_time: Duration,
    /// The last error, for the message.
    pub last_error: String,
    /// True when the last step ended on an error no other provider would avoid (e.g. 400).
    pub client_error: bool,
}

/// How a step ended without an answer.
enum StepEnd {
    /// Try the next step; the reason is a bounded label.
    Next(&'static str, String),
    /// Stop the route: the request itself is at fault.
    Stop(String),
}

/// Provider state for `GET /v1/providers`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    pub name: String,
    pub kind: &'static str,
    pub enabled: bool,
    pub circuit: &'static str,
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// Failure ratio of recent calls, when there were any.
    pub recent_error_rate: Option<f64>,
}

/// The shared pool, built once at start-up.
pub struct Pool {
    slots: BTreeMap<String, Arc<ProviderSlot>>,
    routes: BTreeMap<String, Vec<Step>>,
    default_route: String,
    budget: RetryBudget,
}

/// Builds the adapter for one provider.
fn build_provider(p: &ProviderSettings) -> anyhow::Result<Arc<dyn Provider>> {
    let client = HttpClient::new(
        &p.base_url,
        &ClientOptions {
            timeout: p.timeout,
            // As many idle connections as calls may be in flight: with fewer, every burst of
            // completions above the cap closes connections the next wave must open again.
            max_idle: p.max_in_flight,
            http2_prior_knowledge: p.http2_prior_knowledge,
            ..ClientOptions::default()
        },
    )?;
    let key = p.api_key.as_ref().map(|k| k.expose().to_string());
    Ok(match p.kind {
        ProviderKind::Rules => Arc::new(rules::RulesProvider),
        ProviderKind::Openai => Arc::new(
            openai::OpenAiProvider::new("openai", client, &p.base_url, key)
                .with_headers(p.headers.clone()),
        ),
        ProviderKind::Together => Arc::new(
            openai::OpenAiProvider::new("together", client, &p.base_url, key)
                .with_headers(p.headers.clone()),
        ),
        ProviderKind::Azure => Arc::new(azure::AzureProvider::new(
            client,
            &p.base_url,
            &p.api_version,
            key,
        )),
        ProviderKind::Anthropic => {
            Arc::new(anthropic::AnthropicProvider::new(client, &p.base_url, key))
        }
        ProviderKind::Cohere => Arc::new(cohere::CohereProvider::new(client, &p.base_url, key)),
        ProviderKind::Gemini => Arc::new(gemini::GeminiProvider::new(client, &p.base_url, key)),
    })
}

impl Pool {
    /// Builds every provider's client and stack from the settings.
    pub fn from_settings(s: &Settings) -> anyhow::Result<Pool> {
        let mut slots = BTreeMap::new();
        for (name, p) in &s.providers {
            let provider = build_provider(p).map_err(|e| {
                anyhow::anyhow!("provider {name}: cannot build its HTTP client: {e}")
            })?;
            slots.insert(
                name.clone(),
                Arc::new(ProviderSlot {
                    name: name.clone(),
                    kind: p.kind,
                    provider,
                    limits: Limits::new(
                        p.max_in_flight,
                        p.requests_per_minute,
                        p.tokens_per_minute,
                        p.rate_window,
                    ),
                    breaker: Breaker::new(BreakerConfig {
                        consecutive_failures: p.breaker_failures,
                        cooldown: p.breaker_cooldown,
                        failure_ratio: 0.5,
                        window: Duration::from_secs(10),
                        min_calls: 20,
                    }),
                    policy: RetryPolicy {
                        max_attempts: p.max_attempts,
                        base: Duration::from_millis(s.retry.base_delay_ms),
                        cap: Duration::from_millis(s.retry.max_delay_ms),
                        max_retry_after: Duration::from_secs(s.retry.max_retry_after_s),
                    },
                    timeout: p.timeout,
                    deadline: p.deadline,
                    permit_wait: p.permit_wait,
                    secret: p.api_key.as_ref().map(|k| k.expose().to_string()),
                    metrics: SlotMetrics::new(
                        name,
                        s.routes
                            .values()
                            .flatten()
                            .filter(|st| &st.provider == name)
                            .map(|st| st.model.clone()),
                        &s.prices,
                    ),
                }),
            );
        }
        let routes = s
            .routes
            .iter()
            .map(|(name, steps)| {
                (
                    name.clone(),
                    steps
                        .iter()
                        .map(|st| Step {
                            provider: st.provider.clone(),
                            model: st.model.clone(),
                        })
                        .collect(),
                )
            })
            .collect();
        for slot in slots.values() {
            slot.metrics.circuit.set(0.0);
            slot.metrics.inflight.set(0.0);
        }
        Ok(Pool {
            slots,
            routes,
            default_route: s.judge.default_route.clone(),
            budget: RetryBudget::new(s.retry.budget_ratio, s.retry.budget_min_per_s),
        })
    }

    pub fn default_route(&self) -> &str {
        &self.default_route
    }

    pub fn route(&self, name: &str) -> Option<&[Step]> {
        self.routes.get(name).map(Vec::as_slice)
    }

    /// Whether some step of the route is a deterministic `rules` provider (which grades the
    /// raw fields of [`ChatRequest::grading`] rather than the prompt).
    pub fn route_uses_rules(&self, route: &str) -> bool {
        self.route(route).is_some_and(|steps| {
            steps.iter().any(|st| {
                self.slots
                    .get(&st.provider)
                    .is_some_and(|s| s.kind == ProviderKind::Rules)
            })
        })
    }

    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The state of every provider.
    pub fn status(&self) -> Vec<ProviderStatus> {
        self.slots
            .values()
            .map(|s| ProviderStatus {
                name: s.name.clone(),
                kind: s.kind.as_str(),
                enabled: s.provider.has_credentials(),
                circuit: s.breaker.state().as_str(),
                in_flight: s.limits.in_flight(),
                max_in_flight: s.limits.max_in_flight,
                requests_per_minute: s.limits.requests.as_ref().map(|w| w.limit()),
                tokens_per_minute: s.limits.tokens.as_ref().map(|w| w.limit()),
                recent_error_rate: s.breaker.recent_error_rate(),
            })
            .collect()
    }

    /// Sends `req` along the route: each step with its own model, until one answers.
    pub async fn complete(
        &self,
        route: &str,
        mut req: ChatRequest,
    ) -> Result<Delivered, RouteFailed> {
        let steps = self.routes.get(route).map(Vec::as_slice).unwrap_or(&[]);
        let mut attempts = Vec::new();
        let mut provider_time = Duration::ZERO;
        let mut last_error = format!("route {route:?} has no steps");
        let mut prev: Option<(&Step, &'static str)> = None;
        for (i, step) in steps.iter().enumerate() {
            if let Some((from, reason)) = prev.take() {
                metrics::counter!(m::FALLBACKS, "route" => route.to_string(), "from" => from.provider.clone(),
                    "to" => step.provider.clone(), "reason" => reason)
                .increment(1);
            }
            let Some(slot) = self.slots.get(&step.provider) else {
                attempts.push(skipped(step, "provider is not configured"));
                last_error = format!("provider {} is not configured", step.provider);
                prev = Some((step, "not_configured"));
                continue;
            };
            req.model.clone_from(&step.model);
            let started = Instant::now();
            let end = self.run_step(slot, step, &req, &mut attempts).await;
            provider_time += started.elapsed();
            match end {
                Ok(completion) => {
                    let cost = cost(slot, step, &completion);
                    record_usage(slot, step, &completion, cost);
                    return Ok(Delivered {
                        completion,
                        provider: step.provider.clone(),
                        model: step.model.clone(),
                        attempts,
                        fallback: i > 0,
                        cost_usd: cost,
                        provider_time,
                    });
                }
                Err(StepEnd::Next(reason, msg)) => {
                    last_error = msg;
                    prev = Some((step, reason));
                }
                Err(StepEnd::Stop(msg)) => {
                    return Err(RouteFailed {
                        attempts,
                        provider_time,
                        last_error: msg,
                        client_error: true,
                    });
                }
            }
        }
        Err(RouteFailed {
            attempts,
            provider_time,
            last_error,
            client_error: false,
        })
    }

    /// One step: retries around (breaker, permit, attempt).
    async fn run_step(
        &self,
        slot: &ProviderSlot,
        step: &Step,
        req: &ChatRequest,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Completion, StepEnd> {
        if !slot.provider.has_credentials() {
            attempts.push(skipped(step, "no API key configured"));
            return Err(StepEnd::Next(
                "no_credentials",
                format!("{} has no API key", step.provider),
            ));
        }
        let until = Instant::now() + slot.deadline;
        let estimate = req.estimated_prompt_tokens() + u64::from(req.max_tokens.unwrap_or(512));
        self.budget.deposit();
        let mut attempt_no = 0u32;
        loop {
            attempt_no += 1;
            let admission = slot.breaker.admit();
            if admission == Admission::Rejected {
                attempts.push(skipped(step, "circuit open"));
                return Err(StepEnd::Next(
                    "circuit_open",
                    format!("{}: circuit open", step.provider),
                ));
            }
            set_circuit_gauge(slot);
            let waited = Instant::now();
            let permit_until = until.min(Instant::now() + slot.permit_wait);
            let permit = match slot.limits.acquire(estimate, permit_until).await {
                Ok(p) => p,
                Err(_) => {
                    slot.breaker.release_probe(admission);
                    attempts.push(Attempt {
                        outcome: "skipped",
                        error: Some("no rate-limit permit within the wait budget".into()),
                        latency_ms: ms(waited.elapsed()),
                        ..skipped(step, "")
                    });
                    return Err(StepEnd::Next(
                        "rate_limit_wait",
                        format!("{}: no rate-limit permit in time", step.provider),
                    ));
                }
            };
            slot.metrics.wait.record(waited.elapsed().as_secs_f64());
            slot.metrics.inflight.increment(1.0);
            let started = Instant::now();
            let timeout = slot.timeout.min(until.saturating_duration_since(started));
            let span = tracing::debug_span!("provider_attempt", provider = %slot.name, model = %step.model, attempt = attempt_no);
            let call = tracing::Instrument::instrument(slot.provider.chat(req), span);
            let result = match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Timeout),
            };
            let elapsed = started.elapsed();
            slot.metrics.inflight.decrement(1.0);
            if let Ok(c) = &result {
                slot.limits.settle(&permit, c.usage.total());
            }
            drop(permit);
            let provider_fault = matches!(&result, Err(e) if is_provider_fault(e));
            slot.breaker.record(admission, provider_fault);
            set_circuit_gauge(slot);
            let handles = slot.metrics.model(&step.model);
            handles.duration.record(elapsed.as_secs_f64());
            match &result {
                Ok(_) => handles.ok.increment(1),
                // Failures are rare: their outcome label picks the series.
                Err(e) => metrics::counter!(m::PROVIDER_REQUESTS, "provider" => slot.name.clone(),
                    "model" => step.model.clone(), "outcome" => e.kind())
                .increment(1),
            }
            match result {
                Ok(c) => {
                    attempts.push(Attempt {
                        provider: step.provider.clone(),
                        model: step.model.clone(),
                        outcome: "ok",
                        status: Some(200).filter(|_| slot.kind != ProviderKind::Rules),
                        error: None,
                        latency_ms: ms(elapsed),
                    });
                    return Ok(c);
                }
                Err(e) => {
                    let message = slot.scrub(e.to_string());
                    tracing::debug!(provider = %slot.name, model = %step.model, attempt = attempt_no, error = %message, "provider attempt failed");
                    attempts.push(Attempt {
                        provider: step.provider.clone(),
                        model: step.model.clone(),
                        outcome: "error",
                        status: e.status(),
                        error: Some(message.clone()),
                        latency_ms: ms(elapsed),
                    });
                    match slot.policy.decide(&e, attempt_no, until, &self.budget) {
                        RetryDecision::RetryAfter(wait) => {
                            metrics::counter!(m::RETRIES, "provider" => slot.name.clone(), "reason" => e.kind())
                                .increment(1);
                            tokio::time::sleep(wait).await;
                        }
                        RetryDecision::Exhausted(why) => {
                            let reason = if why == "deadline" {
                                "deadline"
                            } else {
                                "retries_exhausted"
                            };
                            return Err(StepEnd::Next(
                                reason,
                                format!("{}: {message}", step.provider),
                            ));
                        }
                        RetryDecision::GiveUp => {
                            return Err(if another_provider_could_avoid(&e) {
                                StepEnd::Next(
                                    fallback_reason(&e),
                                    format!("{}: {message}", step.provider),
                                )
                            } else {
                                StepEnd::Stop(format!("{}: {message}", step.provider))
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Failures that say the provider is unwell (they count towards opening its circuit).
fn is_provider_fault(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => *status >= 500 || *status == 408,
        ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::Decode(_) => true,
        _ => false,
    }
}

/// Non-retryable errors that another provider might not have: auth, missing models, content
/// filters, unsupported input. A malformed request (400, 413, 422) would fail everywhere.
fn another_provider_could_avoid(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => matches!(status, 401 | 402 | 403 | 404 | 498),
        ProviderError::ContentFilter(_)
        | ProviderError::NoCredentials
        | ProviderError::Unsupported(_) => true,
        // Retryable kinds told not to retry (x-should-retry: false) still fall back.
        ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::Decode(_) => true,
    }
}

fn fallback_reason(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::Status {
            status: 401 | 403 | 498,
            ..
        } => "auth",
        ProviderError::Status { status: 404, .. } => "not_found",
        ProviderError::ContentFilter(_) => "content_filter",
        ProviderError::Unsupported(_) => "unsupported",
        _ => "error",
    }
}

fn skipped(step: &Step, why: &str) -> Attempt {
    Attempt {
        provider: step.provider.clone(),
        model: step.model.clone(),
        outcome: "skipped",
        status: None,
        error: Some(why.to_string()).filter(|s| !s.is_empty()),
        latency_ms: 0.0,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The configured price of `provider:model`, else of `model`.
fn price_of(prices: &BTreeMap<String, Price>, provider: &str, model: &str) -> Option<Price> {
    prices
        .get(&format!("{provider}:{model}"))
        .or_else(|| prices.get(model))
        .copied()
}

fn set_circuit_gauge(slot: &ProviderSlot) {
    let state: CircuitState = slot.breaker.state();
    slot.metrics.circuit.set(state.gauge());
}

/// The cost of a completion at the configured price of `provider:model` or `model`; the rules
/// judge is free.
fn cost(slot: &ProviderSlot, step: &Step, c: &Completion) -> Option<f64> {
    if slot.kind == ProviderKind::Rules {
        return Some(0.0);
    }
    let price = slot.metrics.model(&step.model).price?;
    Some(
        (c.usage.prompt_tokens as f64 * price.prompt_per_mtok
            + c.usage.completion_tokens as f64 * price.completion_per_mtok)
            / 1_000_000.0,
    )
}

fn record_usage(slot: &ProviderSlot, step: &Step, c: &Completion, cost: Option<f64>) {
    let handles = slot.metrics.model(&step.model);
    handles.prompt_tokens.increment(c.usage.prompt_tokens);
    handles
        .completion_tokens
        .increment(c.usage.completion_tokens);
    if let Some(cost) = cost {
        m::add_cost(&step.provider, &step.model, cost);
    }
}
