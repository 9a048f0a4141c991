//! The retry layer's policy: which failures are retried, how long to wait (the provider's own
//! `retry-after-ms` / `retry-after`, capped, else exponential backoff with full jitter), and a
//! retry budget shared by every provider (tower's `TpsBudget`), so a failing provider cannot
//! cause a retry storm.
//!
//! The layer itself is tower's `Retry`; it sits outside every limit, so a request backing off
//! holds no concurrency slot. Every retry is a counted attempt: it is listed in the step's
//! attempts and counted in `llm_judge_retries_total`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tower::BoxError;
use tower::retry::budget::{Budget, TpsBudget};

use crate::call::Call;
use crate::failure::{Failure, classify};
use llm_judge_metrics as m;

/// Backoff settings for one provider.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// Attempts per route step, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A `retry-after` longer than this ends the step (the route moves on) instead of waiting.
    pub max_retry_after: Duration,
}

impl RetryConfig {
    /// Full-jitter exponential backoff after the `attempt`-th failure (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        );
        exp.min(self.cap).mul_f64(rand::random::<f64>())
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    /// Not retryable at all: the pool decides between the next step and the end of the route.
    GiveUp,
    /// Retryable, but attempts, budget or time ran out.
    Exhausted(&'static str),
}

impl RetryConfig {
    /// Decides on a retry after `attempt` (from 1) failed with `failure`, before `deadline`.
    pub fn decide(
        &self,
        failure: &Failure<'_>,
        attempt: u32,
        deadline: Instant,
        budget: &dyn Budget,
    ) -> Decision {
        if !failure.is_retryable() {
            return Decision::GiveUp;
        }
        if attempt >= self.max_attempts {
            return Decision::Exhausted("attempts");
        }
        let hinted = match failure {
            Failure::Provider(p) => p.retry_after(),
            _ => None,
        };
        let wait = match hinted {
            Some(d) if d > self.max_retry_after => {
                return Decision::Exhausted("retry_after_too_long");
            }
            Some(d) => d,
            None => self.backoff(attempt),
        };
        if Instant::now() + wait >= deadline {
            return Decision::Exhausted("deadline");
        }
        if !budget.withdraw() {
            return Decision::Exhausted("budget");
        }
        Decision::RetryAfter(wait)
    }
}

/// The per-request policy tower's `Retry` runs: a copy is made for every request, so `retries`
/// counts that request's retries only.
#[derive(Clone)]
pub struct StepPolicy {
    provider: Arc<str>,
    config: RetryConfig,
    budget: Arc<TpsBudget>,
    retries: u32,
}

impl StepPolicy {
    pub fn new(provider: Arc<str>, config: RetryConfig, budget: Arc<TpsBudget>) -> Self {
        StepPolicy {
            provider,
            config,
            budget,
            retries: 0,
        }
    }
}

impl<R> tower::retry::Policy<Call, R, BoxError> for StepPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, req: &mut Call, result: &mut Result<R, BoxError>) -> Option<Self::Future> {
        let err = result.as_ref().err()?;
        let failure = classify(err);
        match self
            .config
            .decide(&failure, self.retries + 1, req.deadline, &*self.budget)
        {
            Decision::RetryAfter(wait) => {
                self.retries += 1;
                metrics::counter!(m::RETRIES, "provider" => self.provider.to_string(), "reason" => failure.kind())
                    .increment(1);
                Some(tokio::time::sleep(wait))
            }
            Decision::Exhausted(why) => {
                req.trail.stop(why);
                None
            }
            Decision::GiveUp => None,
        }
    }

    fn clone_request(&mut self, req: &Call) -> Option<Call> {
        // Called once before the first attempt (on the shared policy, whose count stays 0) and
        // again before each retry (on the request's own copy): only the first deposits.
        if self.retries == 0 {
            self.budget.deposit();
        }
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_judge_chat::ProviderError;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(60),
        }
    }

    fn status(code: u16) -> ProviderError {
        ProviderError::Status {
            status: code,
            message: String::new(),
            retry_after: None,
            should_retry: None,
        }
    }

    fn budget() -> TpsBudget {
        TpsBudget::new(Duration::from_secs(10), 100, 0.2)
    }

    #[test]
    fn backoff_is_jittered_below_an_exponential_cap() {
        let p = config();
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(2) <= Duration::from_millis(200));
            assert!(p.backoff(9) <= Duration::from_millis(400));
        }
    }

    #[test]
    fn only_retryable_failures_are_retried() {
        let p = config();
        let b = budget();
        let until = Instant::now() + Duration::from_secs(60);
        for code in [408, 409, 429, 500, 502, 503, 529] {
            let e = status(code);
            assert!(
                matches!(
                    p.decide(&Failure::Provider(&e), 1, until, &b),
                    Decision::RetryAfter(_)
                ),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 413, 422] {
            let e = status(code);
            assert_eq!(
                p.decide(&Failure::Provider(&e), 1, until, &b),
                Decision::GiveUp,
                "{code}"
            );
        }
        assert!(matches!(
            p.decide(&Failure::TimedOut, 1, until, &b),
            Decision::RetryAfter(_)
        ));
        for f in [Failure::CircuitOpen, Failure::NoPermit] {
            assert_eq!(p.decide(&f, 1, until, &b), Decision::GiveUp);
        }
        let e = status(500);
        assert_eq!(
            p.decide(&Failure::Provider(&e), 3, until, &b),
            Decision::Exhausted("attempts")
        );
        let no = ProviderError::Status {
            status: 503,
            message: String::new(),
            retry_after: None,
            should_retry: Some(false),
        };
        assert_eq!(
            p.decide(&Failure::Provider(&no), 1, until, &b),
            Decision::GiveUp
        );
        let yes = ProviderError::Status {
            status: 400,
            message: String::new(),
            retry_after: None,
            should_retry: Some(true),
        };
        assert!(matches!(
            p.decide(&Failure::Provider(&yes), 1, until, &b),
            Decision::RetryAfter(_)
        ));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = config();
        let b = budget();
        let until = Instant::now() + Duration::from_secs(600);
        let after = |secs| ProviderError::Status {
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs(secs)),
            should_retry: None,
        };
        assert_eq!(
            p.decide(&Failure::Provider(&after(2)), 1, until, &b),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            p.decide(&Failure::Provider(&after(61)), 1, until, &b),
            Decision::Exhausted("retry_after_too_long")
        );
        let soon = Instant::now() + Duration::from_secs(1);
        assert_eq!(
            p.decide(&Failure::Provider(&after(2)), 1, soon, &b),
            Decision::Exhausted("deadline")
        );
    }

    #[test]
    fn the_budget_runs_dry_without_first_attempts() {
        let p = config();
        // No floor: only deposits earn retries.
        let b = TpsBudget::new(Duration::from_secs(10), 0, 0.1);
        let until = Instant::now() + Duration::from_secs(60);
        let e = status(503);
        let granted = (0..100)
            .filter(|_| {
                matches!(
                    p.decide(&Failure::Provider(&e), 1, until, &b),
                    Decision::RetryAfter(_)
                )
            })
            .count();
        assert!(granted <= 1, "{granted}");
        for _ in 0..100 {
            b.deposit();
        }
        let more = (0..100)
            .filter(|_| {
                matches!(
                    p.decide(&Failure::Provider(&e), 1, until, &b),
                    Decision::RetryAfter(_)
                )
            })
            .count();
        assert!((9..=11).contains(&more), "{more}");
    }
}
