//! The concurrency-limit layer: at most `max_in_flight` calls at a provider at once, the slots
//! shared by the provider's two stacks (whole answers and streams).
//!
//! tower's `GlobalConcurrencyLimit` gives its slot back when the response future resolves; a
//! streamed answer keeps the provider busy until its last piece, so here the slot (a semaphore
//! permit, waited for in `poll_ready` through tokio-util's `PollSemaphore`) travels with the
//! answer ([`Reply::hold`]) and is given back when the answer is whole.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;
use tower::BoxError;

use crate::reply::Reply;

#[derive(Clone)]
pub struct ConcurrencyLayer {
    semaphore: Arc<Semaphore>,
}

impl ConcurrencyLayer {
    pub fn new(semaphore: Arc<Semaphore>) -> Self {
        ConcurrencyLayer { semaphore }
    }
}

impl<S> tower::Layer<S> for ConcurrencyLayer {
    type Service = Concurrency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Concurrency {
            inner,
            semaphore: PollSemaphore::new(self.semaphore.clone()),
            permit: None,
        }
    }
}

pub struct Concurrency<S> {
    inner: S,
    semaphore: PollSemaphore,
    /// The slot acquired by `poll_ready`, spent by the next `call`.
    permit: Option<OwnedSemaphorePermit>,
}

impl<S: Clone> Clone for Concurrency<S> {
    fn clone(&self) -> Self {
        // A clone starts without a slot of its own.
        Concurrency {
            inner: self.inner.clone(),
            semaphore: self.semaphore.clone(),
            permit: None,
        }
    }
}

impl<S, Req> tower::Service<Req> for Concurrency<S>
where
    S: tower::Service<Req>,
    S::Response: Reply,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.permit.is_none() {
            match self.semaphore.poll_acquire(cx) {
                Poll::Ready(Some(p)) => self.permit = Some(p),
                Poll::Ready(None) => {
                    return Poll::Ready(Err("the provider's slots are closed".into()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let permit = self
            .permit
            .take()
            .expect("poll_ready acquires a slot before call");
        let fut = self.inner.call(req);
        async move {
            // On an error the slot is given back here, with the future.
            let reply = fut.await.map_err(Into::into)?;
            Ok(reply.hold(permit))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use llm_judge_chat::{ChatStream, Chunk, Completion};

    #[tokio::test]
    async fn a_stream_keeps_its_slot_until_it_ends_and_a_completion_does_not() {
        let sem = Arc::new(Semaphore::new(1));
        let layer = ConcurrencyLayer::new(sem.clone());
        let streams = tower::Layer::layer(
            &layer,
            service_fn(|_: ()| async {
                Ok::<_, BoxError>(ChatStream::new(futures::stream::iter([Ok(Chunk {
                    text: "a".into(),
                    ..Chunk::default()
                })])))
            }),
        );
        let mut s = streams.clone().oneshot(()).await.unwrap();
        assert_eq!(sem.available_permits(), 0, "the stream holds the slot");
        assert_eq!(s.next().await.unwrap().unwrap().text, "a");
        assert!(s.next().await.is_none());
        assert_eq!(sem.available_permits(), 1, "given back at the end");
        // An unfinished stream dropped by its reader gives the slot back too.
        let s = streams.oneshot(()).await.unwrap();
        assert_eq!(sem.available_permits(), 0);
        drop(s);
        assert_eq!(sem.available_permits(), 1);

        let whole = tower::Layer::layer(
            &layer,
            service_fn(|_: ()| async { Ok::<_, BoxError>(Completion::default()) }),
        );
        whole.oneshot(()).await.unwrap();
        assert_eq!(sem.available_permits(), 1);
    }
}
