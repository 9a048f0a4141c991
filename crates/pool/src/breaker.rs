//! The circuit-breaker layer: per provider, the circuit opens after N consecutive failures or a
//! high failure ratio over a window, lets one probe through after a cool-down, and closes on a
//! success. An open circuit refuses a call at once with [`CircuitOpen`], from `call`.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use tower::BoxError;

use crate::failure::{Failure, classify};
use crate::slot_metrics::SlotMetrics;

pub use crate::failure::CircuitOpen;

/// The breaker's state as shown in metrics (0 closed, 1 half-open, 2 open) and `/v1/providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
    pub fn gauge(&self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        }
    }
}

/// What the breaker allows for the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The one probe allowed in the half-open state.
    Probe,
    Rejected,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    window_start: Instant,
    window_calls: u32,
    window_failures: u32,
    /// The last full window's counts, for the "recent error rate".
    last_calls: u32,
    last_failures: u32,
}

/// Breaker thresholds.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub cooldown: Duration,
    /// Failure ratio over `window` that opens it, once `min_calls` calls were seen.
    pub failure_ratio: f64,
    pub window: Duration,
    pub min_calls: u32,
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
                window_start: Instant::now(),
                window_calls: 0,
                window_failures: 0,
                last_calls: 0,
                last_failures: 0,
            }),
        }
    }

    pub fn state(&self) -> CircuitState {
        let inner = self.inner.lock().unwrap();
        match inner.state {
            CircuitState::Open
                if inner
                    .opened_at
                    .is_some_and(|t| t.elapsed() >= self.cfg.cooldown) =>
            {
                CircuitState::HalfOpen
            }
            s => s,
        }
    }

    /// Failure ratio of recent calls (the current window, or the last one when this one is new).
    pub fn recent_error_rate(&self) -> Option<f64> {
        let inner = self.inner.lock().unwrap();
        let (calls, failures) = if inner.window_calls >= 10 || inner.last_calls == 0 {
            (inner.window_calls, inner.window_failures)
        } else {
            (inner.last_calls, inner.last_failures)
        };
        (calls > 0).then(|| f64::from(failures) / f64::from(calls))
    }

    /// Asks to make a call.
    pub fn admit(&self) -> Admission {
        let mut inner = self.inner.lock().unwrap();
        match inner.state {
            CircuitState::Closed => Admission::Allowed,
            CircuitState::Open => {
                if inner
                    .opened_at
                    .is_some_and(|t| t.elapsed() >= self.cfg.cooldown)
                {
                    inner.state = CircuitState::HalfOpen;
                    inner.probe_in_flight = true;
                    Admission::Probe
                } else {
                    Admission::Rejected
                }
            }
            CircuitState::HalfOpen => {
                if inner.probe_in_flight {
                    Admission::Rejected
                } else {
                    inner.probe_in_flight = true;
                    Admission::Probe
                }
            }
        }
    }

    /// Records the outcome of an admitted call. `failure` is a provider fault (5xx, timeout,
    /// connection error); client errors and rate limits are not the provider being down.
    pub fn record(&self, admission: Admission, failure: bool) {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        if now.duration_since(inner.window_start) >= self.cfg.window {
            inner.last_calls = inner.window_calls;
            inner.last_failures = inner.window_failures;
            inner.window_start = now;
            inner.window_calls = 0;
            inner.window_failures = 0;
        }
        inner.window_calls += 1;
        if admission == Admission::Probe {
            inner.probe_in_flight = false;
        }
        if failure {
            inner.window_failures += 1;
            inner.consecutive_failures += 1;
            let ratio_tripped = inner.window_calls >= self.cfg.min_calls
                && f64::from(inner.window_failures) / f64::from(inner.window_calls)
                    >= self.cfg.failure_ratio;
            if admission == Admission::Probe
                || inner.consecutive_failures >= self.cfg.consecutive_failures
                || ratio_tripped
            {
                if inner.state != CircuitState::Open || admission == Admission::Probe {
                    inner.opened_at = Some(now);
                }
                inner.state = CircuitState::Open;
                inner.window_calls = 0;
                inner.window_failures = 0;
            }
        } else {
            inner.consecutive_failures = 0;
            if admission == Admission::Probe || inner.state == CircuitState::HalfOpen {
                inner.state = CircuitState::Closed;
                inner.opened_at = None;
            }
        }
    }

    /// Gives back a probe that never reached the provider (for example, no permit was had).
    pub fn release_probe(&self, admission: Admission) {
        if admission == Admission::Probe {
            let mut inner = self.inner.lock().unwrap();
            inner.probe_in_flight = false;
            if inner.state == CircuitState::HalfOpen {
                inner.state = CircuitState::Open;
            }
        }
    }
}
/// Puts a provider's [`Breaker`] in front of its stack.
#[derive(Clone)]
pub struct BreakerLayer {
    breaker: Arc<Breaker>,
    metrics: Arc<SlotMetrics>,
}

impl BreakerLayer {
    pub fn new(breaker: Arc<Breaker>, metrics: Arc<SlotMetrics>) -> Self {
        BreakerLayer { breaker, metrics }
    }
}

impl<S> tower::Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Arc<Breaker>,
    metrics: Arc<SlotMetrics>,
}

/// Gives a probe back if its call is dropped before an outcome was recorded (the client went
/// away), so the breaker never waits for a probe that will not come back.
struct Outcome {
    breaker: Arc<Breaker>,
    /// Taken once the outcome is recorded.
    pending: Option<Admission>,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some(admission) = self.pending.take() {
            self.breaker.release_probe(admission);
        }
    }
}

impl<S, Req> tower::Service<Req> for BreakerService<S>
where
    S: tower::Service<Req> + Send,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let admission = self.breaker.admit();
        let metrics = self.metrics.clone();
        metrics.circuit.set(self.breaker.state().gauge());
        if admission == Admission::Rejected {
            return futures::future::ready(Err(BoxError::from(CircuitOpen))).boxed();
        }
        let mut outcome = Outcome {
            breaker: self.breaker.clone(),
            pending: Some(admission),
        };
        let fut = self.inner.call(req);
        async move {
            let result = fut.await.map_err(Into::into);
            let admission = outcome.pending.take().unwrap_or(admission);
            let b = &outcome.breaker;
            match &result {
                Ok(_) => b.record(admission, false),
                Err(e) => {
                    let failure = classify(e);
                    match failure {
                        // Refused before reaching the provider: no outcome to record.
                        Failure::NoPermit | Failure::CircuitOpen => b.release_probe(admission),
                        f => b.record(admission, f.is_provider_fault()),
                    }
                }
            }
            metrics.circuit.set(b.state().gauge());
            result
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cooldown_ms: u64) -> Breaker {
        Breaker::new(BreakerConfig {
            consecutive_failures: 3,
            cooldown: Duration::from_millis(cooldown_ms),
            failure_ratio: 0.5,
            window: Duration::from_secs(10),
            min_calls: 20,
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_cooldown() {
        let b = breaker(30);
        for _ in 0..3 {
            assert_eq!(b.admit(), Admission::Allowed);
            b.record(Admission::Allowed, true);
        }
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.admit(), Admission::Rejected);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.admit(), Admission::Rejected, "one probe at a time");
        b.record(Admission::Probe, true);
        assert_eq!(b.admit(), Admission::Rejected, "a failed probe reopens it");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Admission::Probe);
        b.record(Admission::Probe, false);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.admit(), Admission::Allowed);
    }

    #[test]
    fn a_success_resets_the_count_and_the_ratio_can_open_it() {
        let b = breaker(1000);
        for _ in 0..10 {
            b.record(Admission::Allowed, true);
            b.record(Admission::Allowed, true);
            b.record(Admission::Allowed, false);
            if b.state() == CircuitState::Open {
                break;
            }
        }
        assert_eq!(
            b.state(),
            CircuitState::Open,
            "a 2/3 failure ratio over 20 calls opens it"
        );
    }
}
