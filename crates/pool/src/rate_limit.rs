//! The rate-limit layer: requests and tokens per window (RPM/TPM) for one provider, token-aware
//! (the estimate is reserved before the call and settled with the real usage after it), then a
//! concurrency slot, both within the provider's permit-wait budget.
//!
//! The limiter sits behind [`Limiter`], so a limiter shared by several replicas can take the
//! place of the in-process [`LocalLimiter`] without touching the stack. A wait past its budget is
//! refused from `call` with [`NoPermit`]; the route then moves on to its next step. A streamed
//! answer counts as in flight, and settles its tokens, when its stream ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use tower::{BoxError, ServiceExt};

use crate::call::Call;
use crate::reply::Reply;
use crate::slot_metrics::SlotMetrics;

pub use crate::failure::NoPermit;

/// What a granted call holds of a limiter, until it is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Tokens reserved (the estimate, capped at the window's limit).
    pub tokens: u64,
    /// Which grant this is, for a limiter that must find it again to settle it (a shared
    /// one); 0 for a grant of the in-process limiter.
    pub id: u64,
}

/// A provider's request and token limits.
pub trait Limiter: Send + Sync + 'static {
    /// Waits until one request of `model` with `tokens` estimated tokens may go, at most until
    /// `until`.
    fn reserve<'a>(
        &'a self,
        model: &'a str,
        tokens: u64,
        until: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Reservation, NoPermit>>;

    /// Settles a reservation once the call is over: `Some(used)` with the tokens it really used
    /// (its estimate when it failed: the provider may have counted it), `None` when it was
    /// never sent (the request and its tokens are given back). Every grant is settled once.
    fn settle(&self, model: &str, reservation: Reservation, used: Option<u64>);

    /// The configured requests and tokens per window, for `/v1/providers`.
    fn limits(&self) -> (Option<u64>, Option<u64>);
}

/// A sliding-window log: at most `limit` units granted in any `window`.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: u64,
    window: Duration,
    log: Mutex<WindowLog>,
}

#[derive(Debug, Default)]
struct WindowLog {
    entries: VecDeque<(Instant, u64)>,
    used: u64,
}

impl WindowLog {
    fn evict(&mut self, now: Instant, window: Duration) {
        while let Some(&(t, n)) = self.entries.front() {
            if now.duration_since(t) >= window {
                self.entries.pop_front();
                self.used -= n;
            } else {
                break;
            }
        }
    }
}

impl SlidingWindow {
    /// The window is kept a little longer than asked (5%, at most 1 s more), so that scheduling
    /// and network delays between our grant and the provider's arrival never put `limit + 1`
    /// requests into one of the provider's windows. The cost: a saturated provider sees about
    /// 95% of its limit.
    pub fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window + (window / 20).min(Duration::from_secs(1)),
            log: Mutex::new(WindowLog::default()),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `n` units now, or says how long to wait before asking again.
    pub fn try_take(&self, n: u64) -> Result<(), Duration> {
        // A request larger than the whole window still goes through, alone, when the window is empty.
        let n = n.min(self.limit);
        let now = Instant::now();
        let mut log = self.log.lock().unwrap();
        log.evict(now, self.window);
        if log.used + n <= self.limit {
            log.used += n;
            log.entries.push_back((now, n));
            return Ok(());
        }
        // Wait until enough old entries leave the window.
        let mut freed = 0;
        let need = log.used + n - self.limit;
        for &(t, k) in &log.entries {
            freed += k;
            if freed >= need {
                return Err(
                    (t + self.window).saturating_duration_since(now) + Duration::from_millis(1)
                );
            }
        }
        Err(self.window)
    }

    /// Corrects the units taken at the last grant by `delta` (real usage minus the estimate).
    pub fn adjust(&self, delta: i64) {
        if delta == 0 {
            return;
        }
        let mut log = self.log.lock().unwrap();
        if delta > 0 {
            let d = delta as u64;
            log.used += d;
            log.entries.push_back((Instant::now(), d));
        } else {
            // Give back from the newest entries.
            let mut give = delta.unsigned_abs();
            while give > 0 {
                let Some(last) = log.entries.back_mut() else {
                    break;
                };
                let k = last.1.min(give);
                last.1 -= k;
                give -= k;
                let empty = last.1 == 0;
                log.used -= k;
                if empty {
                    log.entries.pop_back();
                }
            }
        }
    }

    /// Units used in the current window.
    pub fn used(&self) -> u64 {
        let mut log = self.log.lock().unwrap();
        log.evict(Instant::now(), self.window);
        log.used
    }
}

/// The in-process limiter: sliding-window logs of requests and tokens, for the provider and for
/// each model that has limits of its own.
pub struct LocalLimiter {
    requests: Option<SlidingWindow>,
    tokens: Option<SlidingWindow>,
    models: std::collections::HashMap<String, LocalLimiter>,
    window: Duration,
}

impl LocalLimiter {
    pub fn new(rpm: Option<u64>, tpm: Option<u64>, window: Duration) -> Self {
        LocalLimiter {
            requests: rpm.map(|r| SlidingWindow::new(r, window)),
            tokens: tpm.map(|t| SlidingWindow::new(t, window)),
            models: Default::default(),
            window,
        }
    }

    /// Adds the limits of one model (on top of the provider's), in the same window.
    pub fn with_model(mut self, model: &str, rpm: Option<u64>, tpm: Option<u64>) -> Self {
        self.models
            .insert(model.to_string(), LocalLimiter::new(rpm, tpm, self.window));
        self
    }

    /// Takes one request and `tokens` now, or says how long to wait before asking again.
    fn try_reserve(&self, model: &str, tokens: u64) -> Result<Reservation, Duration> {
        let granted = self.try_reserve_own(tokens)?;
        if let Some(m) = self.models.get(model)
            && let Err(wait) = m.try_reserve_own(tokens)
        {
            self.give_back(granted.tokens);
            return Err(wait);
        }
        Ok(granted)
    }

    fn try_reserve_own(&self, tokens: u64) -> Result<Reservation, Duration> {
        if let Some(r) = &self.requests {
            r.try_take(1)?;
        }
        if let Some(t) = &self.tokens
            && let Err(wait) = t.try_take(tokens)
        {
            // Hand the request grant back; both are asked for again.
            if let Some(r) = &self.requests {
                r.adjust(-1);
            }
            return Err(wait);
        }
        Ok(Reservation {
            tokens: tokens.min(self.tokens.as_ref().map_or(u64::MAX, |t| t.limit())),
            id: 0,
        })
    }

    /// Gives back a request and `tokens` (a call never sent).
    fn give_back(&self, tokens: u64) {
        if let Some(r) = &self.requests {
            r.adjust(-1);
        }
        if let Some(t) = &self.tokens {
            t.adjust(-(tokens.min(t.limit()) as i64));
        }
    }

    fn correct(&self, estimate: u64, used: u64) {
        if let Some(t) = &self.tokens {
            t.adjust(used as i64 - estimate.min(t.limit()) as i64);
        }
    }

    /// Requests and tokens used in the provider's current window.
    pub fn used(&self) -> (Option<u64>, Option<u64>) {
        (
            self.requests.as_ref().map(SlidingWindow::used),
            self.tokens.as_ref().map(SlidingWindow::used),
        )
    }
}

impl Limiter for LocalLimiter {
    fn reserve<'a>(
        &'a self,
        model: &'a str,
        tokens: u64,
        until: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Reservation, NoPermit>> {
        async move {
            loop {
                match self.try_reserve(model, tokens) {
                    Ok(r) => return Ok(r),
                    Err(wait) => {
                        let at = tokio::time::Instant::now() + wait;
                        if at > until {
                            return Err(NoPermit);
                        }
                        tokio::time::sleep_until(at).await;
                    }
                }
            }
        }
        .boxed()
    }

    fn settle(&self, model: &str, reservation: Reservation, used: Option<u64>) {
        let model = self.models.get(model);
        match used {
            Some(used) => {
                self.correct(reservation.tokens, used);
                if let Some(m) = model {
                    m.correct(reservation.tokens, used);
                }
            }
            None => {
                self.give_back(reservation.tokens);
                if let Some(m) = model {
                    m.give_back(reservation.tokens);
                }
            }
        }
    }

    fn limits(&self) -> (Option<u64>, Option<u64>) {
        (
            self.requests.as_ref().map(SlidingWindow::limit),
            self.tokens.as_ref().map(SlidingWindow::limit),
        )
    }
}

/// Puts a provider's limiter (and, under it, its concurrency limit) in front of the adapter.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<dyn Limiter>,
    permit_wait: Duration,
    metrics: Arc<SlotMetrics>,
}

impl RateLimitLayer {
    pub fn new(
        limiter: Arc<dyn Limiter>,
        permit_wait: Duration,
        metrics: Arc<SlotMetrics>,
    ) -> Self {
        RateLimitLayer {
            limiter,
            permit_wait,
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            permit_wait: self.permit_wait,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Arc<dyn Limiter>,
    permit_wait: Duration,
    metrics: Arc<SlotMetrics>,
}

impl<S> tower::Service<Call> for RateLimitService<S>
where
    S: tower::Service<Call> + Clone + Send + 'static,
    S::Response: Reply,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    /// Always ready: the wait for a grant and for the inner service's readiness (a concurrency
    /// slot) happens in `call`, bounded by the permit-wait budget, so a refusal is an answer and
    /// never a failed `poll_ready`.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let inner = self.inner.clone();
        let limiter = self.limiter.clone();
        let metrics = self.metrics.clone();
        let permit_wait = self.permit_wait;
        async move {
            let started = tokio::time::Instant::now();
            let until = call.deadline.min(started + permit_wait);
            let model = call.chat.model.clone();
            // The rate grant first: a call waiting on its window holds no concurrency slot.
            let reservation = limiter.reserve(&model, call.estimate, until).await?;
            // Settled exactly once: below, or (a call dropped mid-way, by a timeout or a
            // cancel) as sent at its estimate.
            let grant = Grant {
                limiter,
                model,
                reservation,
                settled: false,
            };
            let mut inner = inner;
            let ready = match tokio::time::timeout_at(until, inner.ready()).await {
                Ok(Ok(svc)) => svc,
                Ok(Err(e)) => {
                    grant.settle(None);
                    return Err(e.into());
                }
                Err(_) => {
                    grant.settle(None);
                    return Err(BoxError::from(NoPermit));
                }
            };
            metrics.wait.record(started.elapsed().as_secs_f64());
            let _ = call.admitted.set(tokio::time::Instant::now());
            let in_flight = InFlight::new(&metrics);
            // A failed call keeps its reservation: the provider may have counted it. So does a
            // stream that broke off or reported no usage (the grant is dropped unsettled).
            let reply = match ready.call(call).await {
                Ok(reply) => reply,
                Err(e) => {
                    drop(in_flight);
                    drop(grant);
                    return Err(e.into());
                }
            };
            Ok(reply.hold(in_flight).when_done(move |used| match used {
                Some(u) => grant.settle(Some(u.total())),
                None => drop(grant),
            }))
        }
        .boxed()
    }
}

/// A reservation not settled yet; dropped unsettled, it is settled as sent at its estimate.
struct Grant {
    limiter: Arc<dyn Limiter>,
    model: String,
    reservation: Reservation,
    settled: bool,
}

impl Grant {
    fn settle(mut self, used: Option<u64>) {
        self.settled = true;
        self.limiter.settle(&self.model, self.reservation, used);
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.limiter
            .settle(&self.model, self.reservation, Some(self.reservation.tokens));
    }
}

/// Counts a call in `llm_judge_inflight` while it is at the provider.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn new(m: &SlotMetrics) -> Self {
        m.inflight.increment(1.0);
        InFlight(m.inflight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_limit_in_a_window() {
        let w = SlidingWindow::new(3, Duration::from_millis(100));
        assert!(w.try_take(1).is_ok());
        assert!(w.try_take(1).is_ok());
        assert!(w.try_take(1).is_ok());
        let wait = w.try_take(1).unwrap_err();
        assert!(
            wait <= Duration::from_millis(106) && wait > Duration::from_millis(50),
            "{wait:?}"
        );
        std::thread::sleep(wait);
        assert!(w.try_take(1).is_ok());
    }

    #[test]
    fn adjust_corrects_token_estimates() {
        let w = SlidingWindow::new(1000, Duration::from_secs(60));
        w.try_take(600).unwrap();
        w.adjust(-500);
        assert_eq!(w.used(), 100);
        w.adjust(50);
        assert_eq!(w.used(), 150);
        assert!(w.try_take(850).is_ok());
        assert!(w.try_take(1).is_err());
    }

    #[tokio::test]
    async fn reserve_gives_up_past_its_budget_and_an_unsent_call_gives_its_grant_back() {
        let l = LocalLimiter::new(Some(1), Some(100), Duration::from_secs(60));
        let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
        let r = l.reserve("m", 10, soon()).await.unwrap();
        assert_eq!(l.reserve("m", 10, soon()).await, Err(NoPermit));
        l.settle("m", r, None);
        let r = l.reserve("m", 10, soon()).await.unwrap();
        l.settle("m", r, Some(30));
        assert_eq!(l.tokens.as_ref().unwrap().used(), 30);
        assert_eq!(l.limits(), (Some(1), Some(100)));
    }

    #[tokio::test]
    async fn a_model_limit_applies_on_top_of_the_providers_and_only_to_its_model() {
        let l = LocalLimiter::new(Some(3), None, Duration::from_secs(60)).with_model(
            "small",
            Some(1),
            None,
        );
        let soon = || tokio::time::Instant::now() + Duration::from_millis(20);
        let r = l.reserve("small", 1, soon()).await.unwrap();
        assert_eq!(l.reserve("small", 1, soon()).await, Err(NoPermit));
        // The refused model call gave its provider grant back: two more for other models.
        l.reserve("big", 1, soon()).await.unwrap();
        l.reserve("big", 1, soon()).await.unwrap();
        assert_eq!(l.reserve("big", 1, soon()).await, Err(NoPermit));
        l.settle("small", r, None);
        assert_eq!(l.used().0, Some(2));
        l.reserve("small", 1, soon()).await.unwrap();
    }

    #[tokio::test]
    async fn tokens_wait_for_the_window_and_a_big_estimate_is_capped() {
        let l = LocalLimiter::new(None, Some(100), Duration::from_millis(100));
        let r = l
            .reserve("m", 500, tokio::time::Instant::now())
            .await
            .unwrap();
        assert_eq!(
            r.tokens, 100,
            "an estimate above the window goes alone, capped"
        );
        let started = std::time::Instant::now();
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        l.reserve("m", 10, until).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
