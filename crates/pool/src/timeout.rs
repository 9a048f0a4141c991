//! The per-attempt timeout layer: one attempt may take at most the provider's `timeout_s`, and
//! never runs past its route step's deadline. tower's own `Timeout` has one fixed duration; this
//! one also reads the step's deadline from the request.

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use tower::BoxError;

use crate::call::Call;

pub use crate::failure::AttemptTimedOut;

#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
}

impl<S> tower::Service<Call> for TimeoutService<S>
where
    S: tower::Service<Call>,
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

    fn call(&mut self, req: Call) -> Self::Future {
        let until = (Instant::now() + self.timeout).min(req.deadline);
        let fut = self.inner.call(req);
        async move {
            match tokio::time::timeout_at(until, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(BoxError::from(AttemptTimedOut)),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tower::{ServiceExt, service_fn};

    use super::*;
    use llm_judge_chat::ChatRequest;

    fn call(deadline_in: Duration) -> Call {
        Call::new(
            Arc::new(ChatRequest::default()),
            Instant::now() + deadline_in,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_ends_at_its_timeout_or_the_step_deadline_whichever_is_first() {
        let slow = service_fn(|_: Call| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, BoxError>("late")
        });
        let svc = tower::Layer::layer(&TimeoutLayer::new(Duration::from_secs(5)), slow);
        let started = tokio::time::Instant::now();
        let err = svc
            .clone()
            .oneshot(call(Duration::from_secs(60)))
            .await
            .unwrap_err();
        assert!(err.is::<AttemptTimedOut>());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = svc
            .clone()
            .oneshot(call(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert!(err.is::<AttemptTimedOut>());
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        let quick = service_fn(|_: Call| async { Ok::<_, BoxError>("now") });
        let svc = tower::Layer::layer(&TimeoutLayer::new(Duration::from_secs(5)), quick);
        assert_eq!(
            svc.oneshot(call(Duration::from_secs(60))).await.unwrap(),
            "now"
        );
    }
}
