//! Builds each provider's tower stack, once, at start-up, and defines what travels through it.
//!
//! Outermost first:
//!
//! ```text
//! retry -> attempt record -> circuit breaker -> attempt timeout -> rate limit (RPM/TPM)
//!       -> concurrency limit -> the provider's adapter (a tower Service) -> reqwest
//! ```
//!
//! Each provider has two such stacks, built alike over the same breaker, limiter, concurrency
//! slots, retry budget and metrics: one whose answer is a whole [`Completion`], one whose answer
//! is a [`ChatStream`] (the answer's first piece has arrived, the rest follows). Everything in
//! the stack applies to a stream up to its first piece, so a provider failing before it answers
//! is retried and then left for the route's next step; a stream keeps its concurrency slot and
//! settles its token reservation when it ends ([`Reply`]).
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
use super::concurrency::ConcurrencyLayer;
use super::rate_limit::{Limiter, NoPermit, RateLimitLayer};
use super::retry::{RetryConfig, StepPolicy};
use super::timeout::{AttemptTimedOut, TimeoutLayer};
use llm_judge_chat::{ChatRequest, ChatStream, Completion, ProviderError, Usage};

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

/// A provider's streaming stack.
pub type StreamStack = BoxCloneSyncService<Call, ChatStream, BoxError>;

/// An adapter's service as the bottom of a stack.
pub type AdapterOf<R> = BoxCloneSyncService<Arc<ChatRequest>, R, ProviderError>;

/// What a stack can answer: a whole completion, or a stream whose end comes later. The layers
/// that must act when the provider is done with a call (settle the token reservation, give the
/// concurrency slot back) do so through this.
pub trait Reply: Send + 'static {
    /// Runs `f` with the usage the provider reported once the answer is whole: at once for a
    /// completion, when the stream ends for a stream (`None` when it broke off or sent none).
    fn when_done(self, f: impl FnOnce(Option<Usage>) + Send + 'static) -> Self;
    /// Keeps `guard` until the answer is whole.
    fn hold(self, guard: impl Send + 'static) -> Self;
}

impl Reply for Completion {
    fn when_done(self, f: impl FnOnce(Option<Usage>) + Send + 'static) -> Self {
        f(Some(self.usage));
        self
    }

    fn hold(self, guard: impl Send + 'static) -> Self {
        drop(guard);
        self
    }
}

impl Reply for ChatStream {
    fn when_done(self, f: impl FnOnce(Option<Usage>) + Send + 'static) -> Self {
        self.on_end(move |end| {
            f(end
                .usage
                .filter(|_| end.outcome == llm_judge_chat::StreamOutcome::Complete))
        })
    }

    fn hold(self, guard: impl Send + 'static) -> Self {
        ChatStream::hold(self, guard)
    }
}

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

/// What one provider's stacks are built from (shared by both).
#[derive(Clone)]
pub struct StackParts {
    pub name: Arc<str>,
    /// The rules judge answers without HTTP: its attempts carry no status.
    pub local: bool,
    pub retry: RetryConfig,
    pub budget: Arc<tower::retry::budget::TpsBudget>,
    pub breaker: Arc<Breaker>,
    pub timeout: Duration,
    pub limiter: Arc<dyn Limiter>,
    pub permit_wait: Duration,
    pub semaphore: Arc<Semaphore>,
    pub metrics: Arc<SlotMetrics>,
}

/// Builds a provider's stack over `adapter`. Each layer says why it is where it is.
pub fn build<R: Reply>(
    p: StackParts,
    adapter: AdapterOf<R>,
) -> BoxCloneSyncService<Call, R, BoxError> {
    let stack = ServiceBuilder::new()
        // Outermost: a failed attempt is retried here, after a backoff spent outside every
        // limit, drawing from the shared retry budget.
        .retry(StepPolicy::new(p.name.clone(), p.retry, p.budget))
        // Records each attempt, however it ended below (answer, error, timeout, open circuit,
        // no permit), in the step's trail and the provider metrics.
        .layer(AttemptLayer::new(
            p.name.clone(),
            p.local,
            p.metrics.clone(),
        ))
        // An open circuit refuses at once; a probe is let through after the cool-down.
        .layer(BreakerLayer::new(p.breaker, p.metrics.clone()))
        // One attempt never outlasts its timeout nor the step's deadline.
        .layer(TimeoutLayer::new(p.timeout))
        // RPM/TPM: waits for a grant (and then a concurrency slot) within the permit budget,
        // settles the token estimate with the real usage.
        .layer(RateLimitLayer::new(p.limiter, p.permit_wait, p.metrics))
        // At most `max_in_flight` calls at the provider at once; a stream keeps its slot
        // until its last piece.
        .layer(ConcurrencyLayer::new(p.semaphore))
        // The adapter sees only the provider-neutral request.
        .map_request(|c: Call| c.chat)
        .map_err(BoxError::from)
        .service(adapter);
    BoxCloneSyncService::new(stack)
}
