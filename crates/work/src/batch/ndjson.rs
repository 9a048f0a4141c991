//! A batch as a stream of NDJSON lines: each item's entry as it completes, progress lines, and
//! the summary last.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::item::BatchItem;
use super::summary::Summary;
use super::task::judged;
use crate::budget::Budget;
use llm_judge_judge::{Judge, JudgeKind};

/// Lines a streamed batch may have ready before the connection takes them: a client that stops
/// reading stops the batch this many lines (and `max_concurrent` items) past what its
/// connection took.
const STREAM_LINES_AHEAD: usize = 16;

/// Runs a batch as a stream of NDJSON lines: each item's entry as it completes, a progress line
/// at most every `interval`, and the summary last; or, when `stop` is cancelled (the server's
/// shutdown grace period is over), an error line saying how many items were left. Dropping the
/// stream (the client went away) cancels the work still in flight.
#[allow(clippy::too_many_arguments)]
pub fn stream(
    judge: Arc<Judge>,
    route: String,
    kind: JudgeKind,
    items: Vec<BatchItem>,
    max_concurrent: usize,
    budget: Option<Arc<Budget>>,
    interval: std::time::Duration,
    stop: CancellationToken,
) -> impl futures::Stream<Item = bytes::Bytes> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(STREAM_LINES_AHEAD);
    let total = items.len();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut summary = Summary::new(kind, total);
        let route: Arc<str> = route.into();
        let mut work = judged(judge, route, items, max_concurrent, budget.clone());
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut changed = false;
        let mut done = 0usize;
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let left = total - done;
                    let message = format!(
                        "the server is shutting down: {left} of {total} items were not judged; the lines above are the ones that were, send the others again"
                    );
                    let error = json!({"error": {"code": "shutting_down", "message": message}, "left": left});
                    let _ = tx.send(line(&error)).await;
                    return;
                }
                next = work.next() => match next {
                    Some(entry) => {
                        summary.count(&entry.tally);
                        done += 1;
                        changed = true;
                        if tx.send(entry.line()).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = ticker.tick(), if changed => {
                    changed = false;
                    let p = summary.progress(started.elapsed(), 0);
                    if tx.send(line(&json!({"progress": p}))).await.is_err() {
                        return;
                    }
                }
            }
        }
        summary.finish(started.elapsed());
        summary.budget = budget.as_ref().map(|b| b.report());
        let _ = tx.send(line(&json!({"summary": summary}))).await;
    });
    let guard = AbortOnDrop(task.abort_handle());
    tokio_stream_from(rx).map(move |b| {
        let _ = &guard;
        b
    })
}

/// Aborts the producing task when the response stream is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn line(v: &Value) -> bytes::Bytes {
    let mut buf = serde_json::to_vec(v).unwrap_or_default();
    buf.push(b'\n');
    bytes::Bytes::from(buf)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> impl futures::Stream<Item = bytes::Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
