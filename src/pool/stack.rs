//! Builds each provider's tower stack, once, at start-up, and defines what travels through it.
//!
//! Outermost first:
//!
//! ```text
//! retry -> attempt record -> circuit breaker -> attempt timeout -> rate limit (RPM/TPM)
//!       -> concurrency limit -> the provider's adapter (a tower Service) -> reqwest
//! ```
//!
//! Retry sits outside every limit, so a request backing off holds no slot and no rate grant.
//! An open circuit and a permit wait past its budget are refused from `call` (never from
//! `poll_ready`) with errors of their own, which the retry policy does not retry: the route moves
//! on to its next step instead.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

use super::Attempt;
use super::attempt::{AttemptLayer, SlotMetrics};
use super::breaker::{Breaker, BreakerLayer, CircuitOpen};
use super::rate_limit::{Limiter, NoPermit, RateLimitLayer};
use super::retry::{RetryConfig, StepPolicy};
use super::timeout::{AttemptTimedOut, TimeoutLayer};
use crate::chat::{ChatRequest, Completion, ProviderError};
use crate::providers::Adapter;

/// One route step's request inside a provider's stack: the chat request (its model set for the
/// step) and what the layers share about it. Cloning is cheap: every field is shared.
#[derive(Clone)]
pub struct Call {
    pub chat: Arc<ChatRequest>,
    /// When the step must be over, retries included.
    pub deadline: Instant,
    /// Tokens reserved from a tokens-per-minute limit before the call (settled after it).
    pub estimate: u64,
    /// Every attempt of the step, and why its retries ended.
    pub trail: Arc<Trail>,
    /// When the current attempt was admitted by the limits; set anew for each attempt.
    pub admitted: Arc<OnceLock<Instant>>,
}

impl Call {
    pub fn new(chat: Arc<ChatRequest>, deadline: Instant) -> Call {
        Call {
            estimate: chat.estimated_tokens(),
            chat,
            deadline,
            trail: Arc::default(),
            admitted: Arc::default(),
        }
    }
}

/// What the layers record of one route step.
#[derive(Default)]
pub struct Trail {
    attempts: Mutex<Vec<Attempt>>,
    /// Why the retry policy stopped retrying a retryable failure (`attempts`, `budget`,
    /// `deadline`, `retry_after_too_long`).
    stopped: Mutex<Option<&'static str>>,
}

impl Trail {
    pub fn push(&self, a: Attempt) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(a);
    }

    pub fn stop(&self, why: &'static str) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    pub fn stopped(&self) -> Option<&'static str> {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take(&self) -> Vec<Attempt> {
        std::mem::take(&mut *self.attempts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A provider's stack as one cloneable service.
pub type Stack = BoxCloneSyncService<Call, Completion, BoxError>;

/// How a stack's call failed, read from the boxed error of whichever layer ended it.
#[derive(Debug)]
pub enum Failure<'a> {
    Provider(&'a ProviderError),
    TimedOut,
    CircuitOpen,
    NoPermit,
    /// An error of no known layer (a bug): reported, never retried.
    Other(&'a BoxError),
}

pub fn classify(e: &BoxError) -> Failure<'_> {
    if let Some(p) = e.downcast_ref::<ProviderError>() {
        Failure::Provider(p)
    } else if e.is::<AttemptTimedOut>() {
        Failure::TimedOut
    } else if e.is::<CircuitOpen>() {
        Failure::CircuitOpen
    } else if e.is::<NoPermit>() {
        Failure::NoPermit
    } else {
        Failure::Other(e)
    }
}

impl Failure<'_> {
    /// Whether another attempt at the same provider could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Failure::Provider(p) => p.is_retryable(),
            Failure::TimedOut => true,
            Failure::CircuitOpen | Failure::NoPermit | Failure::Other(_) => false,
        }
    }

    /// Whether the failure says the provider is unwell (it counts towards opening its circuit).
    pub fn is_provider_fault(&self) -> bool {
        match self {
            Failure::Provider(p) => p.is_provider_fault(),
            Failure::TimedOut => true,
            Failure::CircuitOpen | Failure::NoPermit | Failure::Other(_) => false,
        }
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Provider(p) => p.kind(),
            Failure::TimedOut => "timeout",
            Failure::CircuitOpen => "circuit_open",
            Failure::NoPermit => "rate_limit_wait",
            Failure::Other(_) => "internal",
        }
    }
}

/// What one provider's stack is built from.
pub struct StackParts {
    pub name: Arc<str>,
    pub adapter: Adapter,
    pub retry: RetryConfig,
    pub budget: Arc<tower::retry::budget::TpsBudget>,
    pub breaker: Arc<Breaker>,
    pub timeout: Duration,
    pub limiter: Arc<dyn Limiter>,
    pub permit_wait: Duration,
    pub semaphore: Arc<Semaphore>,
    pub metrics: Arc<SlotMetrics>,
}

/// Builds a provider's stack. Each layer says why it is where it is.
pub fn build(p: StackParts) -> Stack {
    let stack = ServiceBuilder::new()
        // Outermost: a failed attempt is retried here, after a backoff spent outside every
        // limit, drawing from the shared retry budget.
        .retry(StepPolicy::new(p.name.clone(), p.retry, p.budget))
        // Records each attempt, however it ended below (answer, error, timeout, open circuit,
        // no permit), in the step's trail and the provider metrics.
        .layer(AttemptLayer::new(
            p.name.clone(),
            p.adapter.kind == "rules",
            p.metrics.clone(),
        ))
        // An open circuit refuses at once; a probe is let through after the cool-down.
        .layer(BreakerLayer::new(p.breaker, p.metrics.clone()))
        // One attempt never outlasts its timeout nor the step's deadline.
        .layer(TimeoutLayer::new(p.timeout))
        // RPM/TPM: waits for a grant (and then a concurrency slot) within the permit budget,
        // settles the token estimate with the real usage.
        .layer(RateLimitLayer::new(p.limiter, p.permit_wait, p.metrics))
        // At most `max_in_flight` calls at the provider at once.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
            p.semaphore,
        ))
        // The adapter sees only the provider-neutral request.
        .map_request(|c: Call| c.chat)
        .map_err(BoxError::from)
        .service(p.adapter.service);
    BoxCloneSyncService::new(stack)
}
