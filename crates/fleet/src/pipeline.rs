//! Calls to Redis gathered into batches: while one batch is on its way, the requests that
//! arrive wait for the next one, which carries them all in one round trip (one script call or
//! one pipeline). With little traffic a batch is a single request sent at once; under load the
//! cost of a round trip is shared by every request in it.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::RedisError;

/// Sends one batch; answers one result per request, in order.
pub type Handler<Q, A> =
    Arc<dyn Fn(Vec<Q>) -> BoxFuture<'static, Result<Vec<A>, RedisError>> + Send + Sync>;

/// The most requests one batch carries.
const MAX_BATCH: usize = 256;

type Slot<Q, A> = (Q, Option<oneshot::Sender<Result<A, BatchFailed>>>);

/// A batch's call failed (or never answered this request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFailed;

pub struct Batcher<Q, A> {
    tx: mpsc::UnboundedSender<Slot<Q, A>>,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts the batch sender on the current runtime.
    pub fn new(handler: Handler<Q, A>) -> Batcher<Q, A> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Slot<Q, A>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut slots = vec![first];
                while slots.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(s) => slots.push(s),
                        Err(_) => break,
                    }
                }
                let (requests, answers): (Vec<Q>, Vec<_>) = slots.into_iter().unzip();
                match handler(requests).await {
                    Ok(results) => {
                        let mut results = results.into_iter();
                        for a in answers {
                            let r = results.next().ok_or(BatchFailed);
                            if let Some(a) = a {
                                let _ = a.send(r);
                            }
                        }
                    }
                    Err(_) => {
                        for a in answers.into_iter().flatten() {
                            let _ = a.send(Err(BatchFailed));
                        }
                    }
                }
            }
        });
        Batcher { tx }
    }

    /// Sends `request` with the next batch and waits for its answer.
    pub async fn call(&self, request: Q) -> Result<A, BatchFailed> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((request, Some(tx))).map_err(|_| BatchFailed)?;
        rx.await.unwrap_or(Err(BatchFailed))
    }

    /// Sends `request` with the next batch, not waiting for it.
    pub fn send(&self, request: Q) {
        let _ = self.tx.send((request, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn requests_that_arrive_together_share_a_batch_and_get_their_own_answers() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let s = sizes.clone();
        let b: Batcher<u32, u32> = Batcher::new(Arc::new(move |qs: Vec<u32>| {
            s.lock().unwrap().push(qs.len());
            Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(qs.iter().map(|q| q * 10).collect())
            })
        }));
        let answers = futures::future::join_all((0..50).map(|i| b.call(i))).await;
        assert_eq!(
            answers,
            (0..50).map(|i| Ok(i * 10)).collect::<Vec<_>>(),
            "each request its own answer"
        );
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.len() < 50, "batched: {sizes:?}");
        let failing: Batcher<u32, u32> =
            Batcher::new(Arc::new(|_| Box::pin(async { Err(RedisError::Down) })));
        assert_eq!(failing.call(1).await, Err(BatchFailed));
    }
}
