//! How a call through a provider's stack fails: the refusals and timeouts of the pool's own
//! layers, each an error type of its own, and the classification of whichever boxed error ended
//! a call.

use tower::BoxError;

use llm_judge_chat::ProviderError;

/// The attempt ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptTimedOut;

impl std::fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for AttemptTimedOut {}

/// The call was refused: the provider's circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen;

impl std::fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("circuit open")
    }
}

impl std::error::Error for CircuitOpen {}

/// No rate-limit grant or concurrency slot within the wait budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoPermit;

impl std::fmt::Display for NoPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no rate-limit permit within the wait budget")
    }
}

impl std::error::Error for NoPermit {}

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

    /// Whether the failure says the provider cannot be reached or served now, for a while, and
    /// not that this request is at fault or the configuration is wrong: the connection refused
    /// or broken, a timeout, 429, a 5xx, the circuit open, no rate-limit permit in time. What a
    /// job waits out instead of failing its items.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Provider(p) => p.is_transient(),
            Failure::TimedOut | Failure::CircuitOpen | Failure::NoPermit => true,
            Failure::Other(_) => false,
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
