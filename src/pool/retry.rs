//! Retry policy: which failures are retried, how long to wait (exponential backoff with full
//! jitter, or the provider's own `retry-after`), and a shared budget that stops retry storms.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::providers::ProviderError;

/// Backoff settings for one provider.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A `retry-after` longer than this ends the step (the route moves on) instead of waiting.
    pub max_retry_after: Duration,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    /// Not retryable at all.
    GiveUp,
    /// Retryable, but attempts, budget or time ran out.
    Exhausted(&'static str),
}

impl RetryPolicy {
    /// Full-jitter exponential backoff for the attempt that just failed (`attempt` counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.cap);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Decides on a retry after `attempt` failed with `err`; `until` is the step deadline.
    pub fn decide(
        &self,
        err: &ProviderError,
        attempt: u32,
        until: Instant,
        budget: &RetryBudget,
    ) -> RetryDecision {
        if !err.is_retryable() {
            return RetryDecision::GiveUp;
        }
        if attempt >= self.max_attempts {
            return RetryDecision::Exhausted("attempts");
        }
        let wait = match err.retry_after() {
            Some(d) if d > self.max_retry_after => {
                return RetryDecision::Exhausted("retry_after_too_long");
            }
            Some(d) => d,
            None => self.backoff(attempt),
        };
        if Instant::now() + wait >= until {
            return RetryDecision::Exhausted("deadline");
        }
        if !budget.withdraw() {
            return RetryDecision::Exhausted("budget");
        }
        RetryDecision::RetryAfter(wait)
    }
}

/// A token bucket shared by all requests: every first attempt deposits `ratio` of a retry, and a
/// floor of `min_per_s` retries a second is always there. A retry withdraws one.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_s: f64,
    max_balance: f64,
    state: Mutex<(f64, Instant)>,
}

impl RetryBudget {
    pub fn new(ratio: f64, min_per_s: u32) -> Self {
        let min_per_s = f64::from(min_per_s);
        let max_balance = (min_per_s * 10.0).max(10.0) + 1000.0 * ratio;
        Self {
            ratio,
            min_per_s,
            max_balance,
            state: Mutex::new((min_per_s.max(1.0), Instant::now())),
        }
    }

    fn refill(&self, s: &mut (f64, Instant)) {
        let now = Instant::now();
        let dt = now.duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + dt * self.min_per_s).min(self.max_balance);
        s.1 = now;
    }

    /// Called for every first attempt.
    pub fn deposit(&self) {
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s);
        s.0 = (s.0 + self.ratio).min(self.max_balance);
    }

    /// Takes one retry from the budget; false when it is empty.
    pub fn withdraw(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s);
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
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

    #[test]
    fn backoff_is_jittered_below_an_exponential_cap() {
        let p = policy();
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(2) <= Duration::from_millis(200));
            assert!(p.backoff(9) <= Duration::from_millis(400));
        }
    }

    #[test]
    fn only_retryable_failures_are_retried() {
        let p = policy();
        let b = RetryBudget::new(0.2, 100);
        let until = Instant::now() + Duration::from_secs(60);
        for code in [408, 409, 429, 500, 502, 503, 529] {
            assert!(
                matches!(
                    p.decide(&status(code), 1, until, &b),
                    RetryDecision::RetryAfter(_)
                ),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 413, 422] {
            assert_eq!(
                p.decide(&status(code), 1, until, &b),
                RetryDecision::GiveUp,
                "{code}"
            );
        }
        assert_eq!(
            p.decide(&status(500), 3, until, &b),
            RetryDecision::Exhausted("attempts")
        );
        let no = ProviderError::Status {
            status: 503,
            message: String::new(),
            retry_after: None,
            should_retry: Some(false),
        };
        assert_eq!(p.decide(&no, 1, until, &b), RetryDecision::GiveUp);
        let yes = ProviderError::Status {
            status: 400,
            message: String::new(),
            retry_after: None,
            should_retry: Some(true),
        };
        assert!(matches!(
            p.decide(&yes, 1, until, &b),
            RetryDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = policy();
        let b = RetryBudget::new(0.2, 100);
        let until = Instant::now() + Duration::from_secs(600);
        let e = ProviderError::Status {
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs(2)),
            should_retry: None,
        };
        assert_eq!(
            p.decide(&e, 1, until, &b),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
        let e = ProviderError::Status {
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs(61)),
            should_retry: None,
        };
        assert_eq!(
            p.decide(&e, 1, until, &b),
            RetryDecision::Exhausted("retry_after_too_long")
        );
        let soon = Instant::now() + Duration::from_secs(1);
        let e = ProviderError::Status {
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs(2)),
            should_retry: None,
        };
        assert_eq!(
            p.decide(&e, 1, soon, &b),
            RetryDecision::Exhausted("deadline")
        );
    }

    #[test]
    fn the_budget_runs_dry_without_first_attempts() {
        let b = RetryBudget::new(0.1, 0);
        let mut granted = 0;
        for _ in 0..100 {
            if b.withdraw() {
                granted += 1;
            }
        }
        assert!(granted <= 1, "{granted}");
        for _ in 0..100 {
            b.deposit();
        }
        let mut more = 0;
        for _ in 0..100 {
            if b.withdraw() {
                more += 1;
            }
        }
        assert!((9..=11).contains(&more), "{more}");
    }
}
