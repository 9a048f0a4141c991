//! Batches: many items judged with bounded concurrency, results in input order, one summary.
//!
//! A failing item becomes an `error` entry; it never fails the batch.

pub mod summary;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::judge::{BinaryItem, CompareItem, FieldError, Judge, JudgeError, JudgeKind, ScoreItem};
use crate::metrics as m;
pub use summary::{Progress, Summary};

/// One item of a batch, parsed (or not) from the request.
#[derive(Debug, Clone)]
pub enum BatchItem {
    Binary(BinaryItem),
    Score(ScoreItem),
    Compare(CompareItem),
    /// The item could not be read or failed validation; it becomes an error entry.
    Invalid(FieldError),
}

impl BatchItem {
    /// Parses and validates one JSON item of the given kind. Field names in errors are prefixed
    /// with `items[i].`.
    pub fn parse(kind: JudgeKind, index: usize, value: Value) -> BatchItem {
        fn read<T: serde::de::DeserializeOwned>(index: usize, v: Value) -> Result<T, FieldError> {
            crate::judge::items::from_json_value(v).map_err(|e| {
                let field = if e.field == "body" {
                    format!("items[{index}]")
                } else {
                    format!("items[{index}].{}", e.field)
                };
                FieldError::new(field, e.message)
            })
        }
        let prefix =
            |e: FieldError| FieldError::new(format!("items[{index}].{}", e.field), e.message);
        let parsed = match kind {
            JudgeKind::Binary => read::<BinaryItem>(index, value)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Binary(i))),
            JudgeKind::Score => read::<ScoreItem>(index, value)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Score(i))),
            JudgeKind::Compare => read::<CompareItem>(index, value)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Compare(i))),
        };
        parsed.unwrap_or_else(BatchItem::Invalid)
    }
}

/// The result of one item, ready to serialise: `{"index","status",...}`.
pub fn error_entry(
    index: usize,
    code: &str,
    message: &str,
    field: Option<&str>,
    attempts: Option<Value>,
) -> Value {
    let mut err = Map::new();
    err.insert("code".into(), json!(code));
    err.insert("message".into(), json!(message));
    if let Some(f) = field {
        err.insert("field".into(), json!(f));
    }
    let mut entry = Map::new();
    entry.insert("index".into(), json!(index));
    entry.insert("status".into(), json!("error"));
    entry.insert("error".into(), Value::Object(err));
    if let Some(a) = attempts {
        entry.insert("attempts".into(), a);
    }
    Value::Object(entry)
}

fn ok_entry(index: usize, judgment: Value) -> Value {
    let mut entry = Map::new();
    entry.insert("index".into(), json!(index));
    entry.insert("status".into(), json!("ok"));
    if let Value::Object(fields) = judgment {
        entry.extend(fields);
    }
    Value::Object(entry)
}

impl BatchItem {
    /// The judge the item itself names, if any.
    pub fn judge(&self) -> Option<&str> {
        match self {
            BatchItem::Binary(i) => i.judge.as_deref(),
            BatchItem::Score(i) => i.judge.as_deref(),
            BatchItem::Compare(i) => i.judge.as_deref(),
            BatchItem::Invalid(_) => None,
        }
    }
}

/// Judges one item into its result entry; an item naming its own judge uses it.
pub async fn judge_one(judge: &Judge, route: &str, index: usize, item: BatchItem) -> Value {
    let own_route;
    let route = match item.judge() {
        Some(name) => match judge.resolve_route(Some(name)) {
            Ok(r) => {
                own_route = r;
                own_route.as_str()
            }
            Err(_) => {
                let field = format!("items[{index}].judge");
                return error_entry(
                    index,
                    "unknown_judge",
                    &format!("no judge named {name:?}"),
                    Some(&field),
                    None,
                );
            }
        },
        None => route,
    };
    let outcome: Result<Value, JudgeError> = match item {
        BatchItem::Invalid(e) => {
            return error_entry(index, "invalid_item", &e.message, Some(&e.field), None);
        }
        BatchItem::Binary(i) => judge
            .binary(route, &i)
            .await
            .map(|j| serde_json::to_value(j).unwrap_or_default()),
        BatchItem::Score(i) => judge
            .score(route, &i)
            .await
            .map(|j| serde_json::to_value(j).unwrap_or_default()),
        BatchItem::Compare(i) => judge
            .compare(route, &i)
            .await
            .map(|j| serde_json::to_value(j).unwrap_or_default()),
    };
    match outcome {
        Ok(v) => ok_entry(index, v),
        Err(JudgeError::UnknownRoute(r)) => error_entry(
            index,
            "unknown_judge",
            &format!("no judge named {r:?}"),
            Some("judge"),
            None,
        ),
        Err(JudgeError::Failed {
            code,
            message,
            attempts,
        }) => error_entry(
            index,
            code,
            &message,
            None,
            Some(serde_json::to_value(attempts).unwrap_or_default()),
        ),
    }
}

/// One item judged on a task of its own, aborted if the batch is dropped (the client went away
/// or the server stopped waiting), so no provider call outlives the request that asked for it.
struct ItemTask {
    index: usize,
    handle: tokio::task::JoinHandle<Value>,
}

impl Future for ItemTask {
    type Output = Value;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Value> {
        let index = self.index;
        Pin::new(&mut self.handle).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| {
                error_entry(
                    index,
                    "internal_error",
                    &format!("the item could not be judged: {e}"),
                    None,
                    None,
                )
            })
        })
    }
}

impl Drop for ItemTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Runs a whole batch: results in input order and the summary.
///
/// At most `max_concurrent` items are in progress at once. Each is spawned as its own task, so
/// items are judged (prompts, parsing, provider I/O) on every runtime worker rather than all on
/// the one task serving the request.
pub async fn run(
    judge: Arc<Judge>,
    route: String,
    kind: JudgeKind,
    items: Vec<BatchItem>,
    max_concurrent: usize,
) -> (Vec<Value>, Summary) {
    let started = Instant::now();
    let total = items.len();
    let route: Arc<str> = route.into();
    let results: Vec<Value> = futures::stream::iter(items.into_iter().enumerate())
        .map(|(index, item)| {
            let judge = judge.clone();
            let route = route.clone();
            let handle = tokio::spawn(async move {
                let entry = judge_one(&judge, &route, index, item).await;
                let status = if entry["status"] == "ok" {
                    "ok"
                } else {
                    "error"
                };
                metrics::counter!(m::BATCH_ITEMS, "status" => status).increment(1);
                entry
            });
            ItemTask { index, handle }
        })
        .buffered(max_concurrent.max(1))
        .collect()
        .await;
    let mut summary = Summary::new(kind, total);
    for r in &results {
        summary.add(r);
    }
    summary.finish(started.elapsed());
    (results, summary)
}

/// Runs a batch as a stream of NDJSON lines: each item's entry as it completes, a progress line
/// at most every `interval`, and the summary last. Dropping the stream (the client went away)
/// cancels the work still in flight.
pub fn stream(
    judge: Arc<Judge>,
    route: String,
    kind: JudgeKind,
    items: Vec<BatchItem>,
    max_concurrent: usize,
    interval: std::time::Duration,
) -> impl futures::Stream<Item = bytes::Bytes> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(256);
    let total = items.len();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut summary = Summary::new(kind, total);
        let mut work = futures::stream::iter(items.into_iter().enumerate())
            .map(|(index, item)| {
                let judge = judge.clone();
                let route = route.clone();
                async move { judge_one(&judge, &route, index, item).await }
            })
            .buffer_unordered(max_concurrent.max(1));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut changed = false;
        loop {
            tokio::select! {
                next = work.next() => match next {
                    Some(entry) => {
                        summary.add(&entry);
                        let status = if entry["status"] == "ok" { "ok" } else { "error" };
                        metrics::counter!(m::BATCH_ITEMS, "status" => status).increment(1);
                        changed = true;
                        if tx.send(line(&entry)).await.is_err() {
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
