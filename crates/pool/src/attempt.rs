//! The attempt-record layer: every attempt of a route step, however it ended below (an answer,
//! a provider error, a timeout, an open circuit, no permit), is written to the step's trail
//! (what the client sees in `attempts`) and to the provider metrics, once.
//!
//! It sits just inside the retry layer, so each retry is recorded as the attempt it is. A
//! streamed answer's attempt is over when its first piece has arrived: its latency is the time
//! to that piece.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::BoxError;

use crate::call::Call;
use crate::failure::{Failure, classify};
use crate::outcome::Attempt;
use crate::slot_metrics::SlotMetrics;
use llm_judge_metrics as m;

#[derive(Clone)]
pub struct AttemptLayer {
    provider: Arc<str>,
    /// The rules judge answers without HTTP: its attempts carry no status.
    local: bool,
    metrics: Arc<SlotMetrics>,
}

impl AttemptLayer {
    pub fn new(provider: Arc<str>, local: bool, metrics: Arc<SlotMetrics>) -> Self {
        AttemptLayer {
            provider,
            local,
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for AttemptLayer {
    type Service = AttemptService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttemptService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AttemptService<S> {
    inner: S,
    layer: AttemptLayer,
}

impl<S> tower::Service<Call> for AttemptService<S>
where
    S: tower::Service<Call>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Call) -> Self::Future {
        req.admitted = Arc::new(OnceLock::new());
        let admitted = req.admitted.clone();
        let trail = req.trail.clone();
        let model = req.chat.model.clone();
        let layer = self.layer.clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        async move {
            let result = fut.await.map_err(Into::into);
            // Latency is the provider's: from the moment the limits let the call go.
            let from = admitted.get().copied().unwrap_or(started);
            let elapsed = from.elapsed();
            let handles = layer.metrics.model(&model);
            let attempt = |outcome, status, error: Option<String>, latency| Attempt {
                provider: layer.provider.to_string(),
                model: model.clone(),
                outcome,
                status,
                error,
                latency_ms: ms(latency),
            };
            match &result {
                Ok(_) => {
                    handles.duration.record(elapsed.as_secs_f64());
                    handles.ok.increment(1);
                    let status = (!layer.local).then_some(200);
                    trail.push(attempt("ok", status, None, elapsed));
                }
                Err(e) => match classify(e) {
                    Failure::CircuitOpen => trail.push(attempt(
                        "skipped",
                        None,
                        Some("circuit open".into()),
                        Duration::ZERO,
                    )),
                    Failure::NoPermit => {
                        trail.push(attempt("skipped", None, Some(e.to_string()), started.elapsed()))
                    }
                    f => {
                        let status = match f {
                            Failure::Provider(p) => p.status(),
                            _ => None,
                        };
                        handles.duration.record(elapsed.as_secs_f64());
                        metrics::counter!(m::PROVIDER_REQUESTS, "provider" => layer.provider.to_string(),
                            "model" => handles.label.clone(), "outcome" => f.kind())
                        .increment(1);
                        let message = e.to_string();
                        tracing::debug!(provider = %layer.provider, model = %model, error = %message, "provider attempt failed");
                        trail.push(attempt("error", status, Some(message), elapsed));
                    }
                },
            }
            result
        }
        .boxed()
    }
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
