//! The provider pool: routes (ordered fallback chains of provider steps) over a shared set of
//! providers, each behind its own tower stack of retries, circuit breaker, attempt timeout, rate
//! and concurrency limits (see [`stack`]), built once at start-up.
//!
//! Fallback sits above the stacks: a step that is skipped (no key), refused (open circuit, no
//! permit in time), exhausts its retries or deadline, or fails in a way another provider could
//! avoid moves the route to its next step, with that step's own model. A request the provider
//! rejects as malformed ends the route: every provider would refuse it.

pub mod attempt;
pub mod breaker;
pub mod concurrency;
pub mod cost;
pub mod delivery;
pub mod rate_limit;
pub mod retry;
pub mod settings;
pub mod stack;
pub mod timeout;

pub use delivery::{Deliver, Via};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;
use tower::retry::budget::TpsBudget;

use attempt::SlotMetrics;
use breaker::{Breaker, BreakerConfig};
use llm_judge_chat::{ChatRequest, ChatStream, Completion, Grader, ProviderError, Usage};
use llm_judge_metrics as m;
use llm_judge_providers::{ProviderKind, ProviderSettings};
use rate_limit::{Limiter, LocalLimiter};
use retry::RetryConfig;
use settings::PoolSettings;
use stack::{Call, Failure, Reply, Stack, StackParts, StreamStack, classify};

/// One provider with everything that guards it.
pub struct ProviderSlot {
    pub name: String,
    pub kind: ProviderKind,
    has_credentials: bool,
    default_model: Option<String>,
    stack: Stack,
    stream_stack: StreamStack,
    breaker: Arc<Breaker>,
    limiter: Arc<dyn Limiter>,
    semaphore: Arc<Semaphore>,
    max_in_flight: usize,
    deadline: Duration,
    metrics: Arc<SlotMetrics>,
    /// The provider's batch API, where it has one.
    batch: Option<llm_judge_providers::provider_batch::BatchClient>,
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
    /// The provider batch that answered, when the call went through one (its id).
    pub provider_batch: Option<String>,
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

/// The route label metrics use for ad-hoc routes (their text is the client's).
const AD_HOC: &str = "adhoc";

/// The shared pool, built once at start-up.
pub struct Pool {
    slots: BTreeMap<String, Arc<ProviderSlot>>,
    routes: BTreeMap<String, Vec<Step>>,
    default_route: String,
}

impl Pool {
    /// Builds every provider's client and stack from the settings; `grader` answers for the
    /// `rules` provider.
    pub fn from_settings(s: &PoolSettings<'_>, grader: Arc<dyn Grader>) -> anyhow::Result<Pool> {
        Self::with_limiters(s, grader, &|p| Arc::new(local_limiter(p)))
    }

    /// [`Pool::from_settings`], with each provider's limiter made by `limiter` (a limiter
    /// shared by several replicas, say).
    pub fn with_limiters(
        s: &PoolSettings<'_>,
        grader: Arc<dyn Grader>,
        limiter: &dyn Fn(&ProviderSettings) -> Arc<dyn Limiter>,
    ) -> anyhow::Result<Pool> {
        let budget = Arc::new(TpsBudget::new(
            Duration::from_secs(10),
            s.retry.budget_min_per_s,
            s.retry.budget_ratio as f32,
        ));
        let prices = Arc::new(s.prices.clone());
        let mut slots = BTreeMap::new();
        for (name, p) in s.providers {
            let adapter = llm_judge_providers::build(p, grader.clone())
                .map_err(|e| anyhow::anyhow!("provider {name}: {e}"))?;
            let metrics = Arc::new(SlotMetrics::new(
                name,
                s.routes
                    .values()
                    .flatten()
                    .filter(|st| &st.provider == name)
                    .map(|st| st.model.clone()),
                prices.clone(),
            ));
            let breaker = Arc::new(Breaker::new(BreakerConfig {
                consecutive_failures: p.breaker_failures,
                cooldown: p.breaker_cooldown,
                failure_ratio: 0.5,
                window: Duration::from_secs(10),
                min_calls: 20,
            }));
            let limiter = limiter(p);
            let semaphore = Arc::new(Semaphore::new(p.max_in_flight));
            let has_credentials = adapter.has_credentials;
            let batch = adapter.batch.clone();
            let parts = StackParts {
                name: name.as_str().into(),
                local: adapter.kind == "rules",
                retry: RetryConfig {
                    max_attempts: p.max_attempts,
                    base: Duration::from_millis(s.retry.base_delay_ms),
                    cap: Duration::from_millis(s.retry.max_delay_ms),
                    max_retry_after: Duration::from_secs(s.retry.max_retry_after_s),
                },
                budget: budget.clone(),
                breaker: breaker.clone(),
                timeout: p.timeout,
                limiter: limiter.clone(),
                permit_wait: p.permit_wait,
                semaphore: semaphore.clone(),
                metrics: metrics.clone(),
            };
            let stack = stack::build(parts.clone(), adapter.service);
            let stream_stack = stack::build(parts, adapter.stream);
            slots.insert(
                name.clone(),
                Arc::new(ProviderSlot {
                    name: name.clone(),
                    kind: p.kind,
                    has_credentials,
                    default_model: p.default_model.clone(),
                    stack,
                    stream_stack,
                    breaker,
                    limiter,
                    semaphore,
                    max_in_flight: p.max_in_flight,
                    deadline: p.deadline,
                    metrics,
                    batch,
                }),
            );
        }
        let routes = s
            .routes
            .iter()
            .map(|(name, steps)| {
                let steps = steps
                    .iter()
                    .map(|st| Step {
                        provider: st.provider.clone(),
                        model: st.model.clone(),
                    })
                    .collect();
                (name.clone(), steps)
            })
            .collect();
        Ok(Pool {
            slots,
            routes,
            default_route: s.default_route.to_string(),
        })
    }

    pub fn default_route(&self) -> &str {
        &self.default_route
    }

    /// The steps of a route: a configured route by name, else an ad-hoc route of configured
    /// providers, `provider:model[,provider:model...]`, where a bare `provider` means its
    /// default model. `Err` says why the name is neither.
    pub fn steps(&self, route: &str) -> Result<Cow<'_, [Step]>, String> {
        if let Some(steps) = self.routes.get(route) {
            return Ok(Cow::Borrowed(steps));
        }
        let mut steps = Vec::new();
        for part in route.split(',') {
            let part = part.trim();
            let (provider, model) = match part.split_once(':') {
                Some((p, m)) => (p.trim(), Some(m.trim())),
                None => (part, None),
            };
            let Some(slot) = self.slots.get(provider) else {
                return Err(
                    if steps.is_empty() && model.is_none() && !route.contains(',') {
                        format!("no route named {route:?}")
                    } else {
                        format!("{provider:?} is not a configured provider")
                    },
                );
            };
            let model = match model {
                Some("") => return Err(format!("the step {part:?} names no model")),
                Some(m) => m.to_string(),
                None if slot.kind == ProviderKind::Rules => "rules".to_string(),
                None => slot.default_model.clone().ok_or_else(|| {
                    format!(
                        "provider {provider:?} has no default_model; name one as {provider}:MODEL"
                    )
                })?,
            };
            steps.push(Step {
                provider: provider.to_string(),
                model,
            });
        }
        Ok(Cow::Owned(steps))
    }

    /// Whether `route` names a configured route or a valid ad-hoc one.
    pub fn has_route(&self, route: &str) -> bool {
        self.steps(route).is_ok()
    }

    /// Whether some step of the route is a deterministic `rules` provider (which grades the
    /// raw fields of [`ChatRequest::grading`] rather than the prompt).
    pub fn route_uses_rules(&self, route: &str) -> bool {
        self.steps(route).is_ok_and(|steps| {
            steps.iter().any(|st| {
                self.slots
                    .get(&st.provider)
                    .is_some_and(|s| s.kind == ProviderKind::Rules)
            })
        })
    }

    /// Whether every step of the route is the `rules` provider.
    pub fn route_is_rules(&self, route: &str) -> bool {
        self.steps(route).is_ok_and(|steps| {
            steps.iter().all(|st| {
                self.slots
                    .get(&st.provider)
                    .is_some_and(|s| s.kind == ProviderKind::Rules)
            })
        })
    }

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

    /// The batch API of `provider`, when it has one and a key to call it with.
    pub fn batch_client(
        &self,
        provider: &str,
    ) -> Option<&llm_judge_providers::provider_batch::BatchClient> {
        self.slots
            .get(provider)
            .filter(|s| s.has_credentials)
            .and_then(|s| s.batch.as_ref())
    }

    /// What `usage` of `provider:model` cost through `channel` (the rules judge is free);
    /// `None` when the model has no price.
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: &llm_judge_chat::Usage,
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

    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The label `route` gets in metrics: its name, or `adhoc` for an ad-hoc route.
    pub fn route_label<'a>(&self, route: &'a str) -> &'a str {
        if self.routes.contains_key(route) {
            route
        } else {
            AD_HOC
        }
    }

    /// The state of every provider.
    pub fn status(&self) -> Vec<ProviderStatus> {
        self.slots
            .values()
            .map(|s| {
                let (rpm, tpm) = s.limiter.limits();
                ProviderStatus {
                    name: s.name.clone(),
                    kind: s.kind.as_str(),
                    enabled: s.has_credentials,
                    circuit: s.breaker.state().as_str(),
                    in_flight: s.max_in_flight - s.semaphore.available_permits(),
                    max_in_flight: s.max_in_flight,
                    requests_per_minute: rpm,
                    tokens_per_minute: tpm,
                    recent_error_rate: s.breaker.recent_error_rate(),
                }
            })
            .collect()
    }

    /// Sends `req` along the route: each step with its own model, until one answers.
    pub async fn complete(&self, route: &str, req: ChatRequest) -> Result<Delivered, RouteFailed> {
        let a = self.deliver(route, req, |s| &s.stack).await?;
        let cost = cost::of(&a.slot, &a.model, &a.reply, cost::Channel::Online);
        cost::record(&a.slot, &a.model, &a.reply, cost);
        Ok(Delivered {
            completion: a.reply,
            provider: a.provider,
            model: a.model,
            attempts: a.attempts,
            fallback: a.fallback,
            cost_usd: cost,
            provider_time: a.provider_time,
            provider_batch: None,
        })
    }

    /// Sends `req` along the route the way `via` says: online, as [`Pool::complete`] does, or
    /// handed to the deliverer `via` names (a job's provider batches).
    pub async fn send(
        &self,
        route: &str,
        req: ChatRequest,
        via: &Via,
    ) -> Result<Delivered, RouteFailed> {
        match via {
            Via::Online => self.complete(route, req).await,
            Via::Deliverer(d) => d.deliver(self, route, req).await,
        }
    }

    /// The first step of `route`: where a provider batch of its calls goes.
    pub fn first_step(&self, route: &str) -> Option<Step> {
        self.steps(route).ok()?.first().cloned()
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

    /// Sends `req` along the route for a streamed answer. Fallback and retries apply until a
    /// step's first piece has arrived; after that the stream is the answering provider's, and a
    /// failure ends it with an error. Its tokens and cost are counted when it ends.
    pub async fn stream(
        &self,
        route: &str,
        req: ChatRequest,
    ) -> Result<StreamDelivered, RouteFailed> {
        let a = self.deliver(route, req, |s| &s.stream_stack).await?;
        let pricing = Pricing {
            slot: a.slot.clone(),
            model: a.model.clone(),
        };
        let counted = pricing.clone();
        let provider: Arc<str> = a.provider.as_str().into();
        let stream = a.reply.on_end(move |end| {
            metrics::counter!(m::STREAMS, "provider" => provider.to_string(), "outcome" => end.outcome.as_str())
                .increment(1);
            if let Some(usage) = end.usage {
                let c = Completion {
                    usage,
                    ..Completion::default()
                };
                let cost = cost::of(&counted.slot, &counted.model, &c, cost::Channel::Online);
                cost::record(&counted.slot, &counted.model, &c, cost);
            }
        });
        Ok(StreamDelivered {
            stream,
            provider: a.provider,
            model: a.model,
            attempts: a.attempts,
            fallback: a.fallback,
            provider_time: a.provider_time,
            pricing,
        })
    }

    /// The fallback loop both kinds of answer share: each step through its provider's stack
    /// (`stack` picks which of the two), until one answers.
    async fn deliver<R: Reply>(
        &self,
        route: &str,
        req: ChatRequest,
        stack: impl Fn(&ProviderSlot) -> &tower::util::BoxCloneSyncService<Call, R, tower::BoxError>,
    ) -> Result<Answered<R>, RouteFailed> {
        let steps = match self.steps(route) {
            Ok(s) => s,
            Err(why) => {
                return Err(RouteFailed {
                    attempts: Vec::new(),
                    provider_time: Duration::ZERO,
                    last_error: why,
                    client_error: true,
                });
            }
        };
        let label = self.route_label(route);
        let mut chat = Arc::new(req);
        let mut attempts = Vec::new();
        let mut provider_time = Duration::ZERO;
        let mut last_error = format!("route {route:?} has no steps");
        let mut prev: Option<(&Step, &'static str)> = None;
        for (i, step) in steps.iter().enumerate() {
            if let Some((from, reason)) = prev.take() {
                metrics::counter!(m::FALLBACKS, "route" => label.to_string(), "from" => from.provider.clone(),
                    "to" => step.provider.clone(), "reason" => reason)
                .increment(1);
            }
            let Some(slot) = self.slots.get(&step.provider) else {
                attempts.push(skipped(step, "provider is not configured"));
                last_error = format!("provider {} is not configured", step.provider);
                prev = Some((step, "not_configured"));
                continue;
            };
            if !slot.has_credentials {
                attempts.push(skipped(step, "no API key configured"));
                last_error = format!("{} has no API key", step.provider);
                prev = Some((step, "no_credentials"));
                continue;
            }
            // The only copy of the request is made here, and only when a step needs another
            // model while a clone is still shared (never, once the stack is done with it).
            if chat.model != step.model {
                Arc::make_mut(&mut chat).model.clone_from(&step.model);
            }
            let started = Instant::now();
            let call = Call::new(chat.clone(), started + slot.deadline);
            let trail = call.trail.clone();
            let result = stack(slot).clone().oneshot(call).await;
            provider_time += started.elapsed();
            attempts.extend(trail.take());
            match result {
                Ok(reply) => {
                    return Ok(Answered {
                        reply,
                        slot: slot.clone(),
                        provider: step.provider.clone(),
                        model: step.model.clone(),
                        attempts,
                        fallback: i > 0,
                        provider_time,
                    });
                }
                Err(e) => match step_end(step, &classify(&e), trail.stopped()) {
                    StepEnd::Next(reason, msg) => {
                        last_error = msg;
                        prev = Some((step, reason));
                    }
                    StepEnd::Stop(msg) => {
                        return Err(RouteFailed {
                            attempts,
                            provider_time,
                            last_error: msg,
                            client_error: true,
                        });
                    }
                },
            }
        }
        Err(RouteFailed {
            attempts,
            provider_time,
            last_error,
            client_error: false,
        })
    }
}

/// The in-process limiter of a provider: its limits and those of its models.
pub fn local_limiter(p: &ProviderSettings) -> LocalLimiter {
    p.model_limits.iter().fold(
        LocalLimiter::new(
            p.requests_per_minute.map(u64::from),
            p.tokens_per_minute,
            p.rate_window,
        ),
        |l, (model, m)| {
            l.with_model(
                model,
                m.requests_per_minute.map(u64::from),
                m.tokens_per_minute,
            )
        },
    )
}

/// What a step that answered gave back, before the kind of answer is accounted for.
struct Answered<R> {
    reply: R,
    slot: Arc<ProviderSlot>,
    provider: String,
    model: String,
    attempts: Vec<Attempt>,
    fallback: bool,
    provider_time: Duration,
}

/// A streamed answer and how it was obtained (its cost is known when it ends: [`Pricing`]).
pub struct StreamDelivered {
    pub stream: ChatStream,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    pub fallback: bool,
    /// Time spent waiting on providers up to the first piece.
    pub provider_time: Duration,
    pub pricing: Pricing,
}

/// The price of the step that answered, for usage known later.
#[derive(Clone)]
pub struct Pricing {
    slot: Arc<ProviderSlot>,
    model: String,
}

impl Pricing {
    /// What `usage` costs at the configured price; `None` when no price is configured.
    pub fn cost(&self, usage: Usage) -> Option<f64> {
        cost::of(
            &self.slot,
            &self.model,
            &Completion {
                usage,
                ..Completion::default()
            },
            cost::Channel::Online,
        )
    }
}

/// How a step that failed with `failure` ends; `stopped` is why its retries ended, if they did.
fn step_end(step: &Step, failure: &Failure<'_>, stopped: Option<&'static str>) -> StepEnd {
    let msg = |what: &dyn std::fmt::Display| format!("{}: {what}", step.provider);
    match failure {
        Failure::CircuitOpen => StepEnd::Next("circuit_open", msg(&"circuit open")),
        Failure::NoPermit => StepEnd::Next("rate_limit_wait", msg(&"no rate-limit permit in time")),
        Failure::Other(e) => StepEnd::Next("error", msg(e)),
        Failure::TimedOut => StepEnd::Next(
            if stopped == Some("deadline") {
                "deadline"
            } else {
                "retries_exhausted"
            },
            msg(&"timed out"),
        ),
        Failure::Provider(e) if e.is_retryable() => StepEnd::Next(
            if stopped == Some("deadline") {
                "deadline"
            } else {
                "retries_exhausted"
            },
            msg(e),
        ),
        Failure::Provider(e) if another_provider_could_avoid(e) => {
            StepEnd::Next(fallback_reason(e), msg(e))
        }
        Failure::Provider(e) => StepEnd::Stop(msg(e)),
    }
}

/// Non-retryable errors that another provider might not have: auth, missing models, content
/// filters, unsupported input, untrusted certificates. A malformed request (400, 413, 422)
/// would fail everywhere.
fn another_provider_could_avoid(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => matches!(status, 401 | 402 | 403 | 404 | 498),
        ProviderError::ContentFilter(_)
        | ProviderError::NoCredentials
        | ProviderError::Unsupported(_)
        | ProviderError::Tls(_) => true,
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
        ProviderError::Tls(_) => "tls",
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

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
