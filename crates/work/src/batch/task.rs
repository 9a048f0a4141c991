//! Items judged each on a task of its own, with bounded concurrency: no provider call outlives
//! the batch that asked for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;

use super::entry::{Entry, error_entry};
use super::item::BatchItem;
use super::judging::{Admitted, admit_when_room, judge_one, settle};
use crate::budget::Budget;
use llm_judge_judge::Judge;
use llm_judge_pool::Via;

/// One item judged on a task of its own, aborted if the batch is dropped (the client went away
/// or the server stopped waiting), so no provider call outlives the request that asked for it.
/// An item its budget did not let through is its entry at once.
struct ItemTask {
    index: usize,
    handle: Option<tokio::task::JoinHandle<Entry>>,
    ready: Option<Entry>,
}

impl ItemTask {
    async fn spawn(
        judge: Arc<Judge>,
        route: Arc<str>,
        index: usize,
        item: BatchItem,
        budget: Option<Arc<Budget>>,
    ) -> ItemTask {
        // Items are admitted here, in input order, so the budget stops the batch at one place;
        // an item that fits once items in flight settle waits for them.
        let (item, reservation) = match &budget {
            None => (item, None),
            Some(b) => match admit_when_room(&judge, &route, index, item, b).await {
                Admitted::Go(item, r) => (item, r),
                Admitted::Refused(entry) => {
                    judge.count_batch_item(false);
                    return ItemTask {
                        index,
                        handle: None,
                        ready: Some(entry),
                    };
                }
            },
        };
        // Boxed: the item's future is a few KiB, and the task would otherwise copy all of it
        // again when it stores its output and when the batch takes that output.
        let handle = tokio::spawn(Box::pin(async move {
            let entry = judge_one(&judge, &route, index, item, &Via::Online).await;
            settle(reservation, &entry);
            judge.count_batch_item(entry.is_ok());
            entry
        }));
        ItemTask {
            index,
            handle: Some(handle),
            ready: None,
        }
    }
}

impl Future for ItemTask {
    type Output = Entry;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Entry> {
        let index = self.index;
        if let Some(entry) = self.ready.take() {
            return Poll::Ready(entry);
        }
        let Some(handle) = self.handle.as_mut() else {
            let v = error_entry(
                index,
                "internal_error",
                "the item was polled twice",
                None,
                None,
            );
            return Poll::Ready(Entry::from_value(index, &v));
        };
        Pin::new(handle).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| {
                let v = error_entry(
                    index,
                    "internal_error",
                    &format!("the item could not be judged: {e}"),
                    None,
                    None,
                );
                Entry::from_value(index, &v)
            })
        })
    }
}

impl Drop for ItemTask {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

/// Every item's entry, in the order they finish, with at most `max_concurrent` being judged at
/// once, each on a task of its own (so a batch uses every worker thread of the runtime). A new
/// item starts only when the stream is polled: a consumer that stops taking entries stops the
/// work after the items already in flight.
pub(super) fn judged(
    judge: Arc<Judge>,
    route: Arc<str>,
    items: Vec<BatchItem>,
    max_concurrent: usize,
    budget: Option<Arc<Budget>>,
) -> futures::stream::BoxStream<'static, Entry> {
    futures::stream::iter(items.into_iter().enumerate())
        .then(move |(index, item)| {
            ItemTask::spawn(judge.clone(), route.clone(), index, item, budget.clone())
        })
        .buffer_unordered(max_concurrent.max(1))
        .boxed()
}
