//! Builds each provider's tower stack, once, at start-up: the order of its layers.
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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

use crate::attempt::AttemptLayer;
use crate::breaker::{Breaker, BreakerLayer};
use crate::call::Call;
use crate::concurrency::ConcurrencyLayer;
use crate::rate_limit::{Limiter, RateLimitLayer};
use crate::reply::Reply;
use crate::retry::{RetryConfig, StepPolicy};
use crate::slot_metrics::SlotMetrics;
use crate::timeout::TimeoutLayer;
use llm_judge_chat::{ChatRequest, ChatStream, Completion, ProviderError};

/// A provider's stack as one cloneable service.
pub type Stack = BoxCloneSyncService<Call, Completion, BoxError>;

/// A provider's streaming stack.
pub type StreamStack = BoxCloneSyncService<Call, ChatStream, BoxError>;

/// An adapter's service as the bottom of a stack.
pub type AdapterOf<R> = BoxCloneSyncService<Arc<ChatRequest>, R, ProviderError>;

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
        // Outermost, so a backoff is spent outside every limit; retries draw on the shared budget.
        .retry(StepPolicy::new(p.name.clone(), p.retry, p.budget))
        // Records each attempt once, however it ended below, in the trail and the metrics.
        .layer(AttemptLayer::new(
            p.name.clone(),
            p.local,
            p.metrics.clone(),
        ))
        // An open circuit refuses at once; a probe is let through after the cool-down.
        .layer(BreakerLayer::new(p.breaker, p.metrics.clone()))
        // One attempt never outlasts its timeout nor the step's deadline.
        .layer(TimeoutLayer::new(p.timeout))
        // RPM/TPM within the permit budget; the token estimate is settled with the real usage.
        .layer(RateLimitLayer::new(p.limiter, p.permit_wait, p.metrics))
        // At most `max_in_flight` calls at the provider; a stream keeps its slot to its end.
        .layer(ConcurrencyLayer::new(p.semaphore))
        // The adapter sees only the provider-neutral request.
        .map_request(|c: Call| c.chat)
        .map_err(BoxError::from)
        .service(adapter);
    BoxCloneSyncService::new(stack)
}
