//! Batches: many items judged with bounded concurrency, results in input order, one summary.
//!
//! A failing item becomes an `error` entry; it never fails the batch. With a [`Budget`], an item
//! is sent only when its cost estimate still fits; the others become `budget_exhausted` entries.

pub mod summary;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

pub use crate::budget::{Budget, BudgetReport, Limits};
use crate::budget::{Estimate, Reservation};
use llm_judge_judge::{
    BinaryItem, CompareItem, CompareJudgment, FieldError, Judge, JudgeError, JudgeKind, Judgment,
    ScoreItem, ScoreJudgment,
};
use llm_judge_pool::Via;
pub use summary::{
    Delivery, JudgeVote, PanelTally, Position, Progress, ProviderBatchProgress, Summary, Tally,
};

/// One item's result: its JSON entry, serialised once when the item is judged, and what the
/// summary counts of it. Results are never rebuilt as `serde_json::Value` trees on the hot path.
#[derive(Debug)]
pub struct Entry {
    pub index: usize,
    /// `{"index","status",...}`, as it goes into responses, streams and the job store.
    pub json: Box<RawValue>,
    pub tally: Tally,
}

impl Entry {
    /// An entry from a JSON value (error entries, and results read back from storage).
    pub fn from_value(index: usize, v: &Value) -> Entry {
        Entry {
            index,
            json: serde_json::value::to_raw_value(v).expect("a JSON value serialises"),
            tally: Tally::of_value(v),
        }
    }

    /// An `ok` entry: `index`, `status`, then the judgment's own fields.
    fn ok<J: Serialize>(index: usize, judgment: &J, tally: Tally) -> Entry {
        #[derive(Serialize)]
        struct Ok<'a, J> {
            index: usize,
            status: &'static str,
            #[serde(flatten)]
            judgment: &'a J,
        }
        let ok = Ok {
            index,
            status: "ok",
            judgment,
        };
        match serde_json::value::to_raw_value(&ok) {
            Ok(json) => Entry { index, json, tally },
            Err(e) => Entry::from_value(
                index,
                &error_entry(index, "internal_error", &e.to_string(), None, None),
            ),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.tally.ok
    }

    /// The entry as a JSON value (for callers that add fields to it).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.json.get()).unwrap_or(Value::Null)
    }

    /// The entry as one NDJSON line.
    pub fn line(&self) -> bytes::Bytes {
        let raw = self.json.get();
        let mut buf = Vec::with_capacity(raw.len() + 1);
        buf.extend_from_slice(raw.as_bytes());
        buf.push(b'\n');
        bytes::Bytes::from(buf)
    }
}

/// The tally of a judgment (every kind shares these fields; the kinds' own are set after).
fn tally(j: &Judgment) -> Tally {
    let panel = j.panel.as_ref().map(|p| {
        Box::new(PanelTally {
            name: p.name.clone(),
            decision: None,
            judges: p
                .judges
                .iter()
                .map(|v| {
                    let verdict = v.verdict.map(|v| v.as_str());
                    JudgeVote {
                        judge: v.judge.clone(),
                        status: v.status.to_string(),
                        verdict: verdict.map(str::to_string),
                        category: summary::category(verdict, v.winner, v.score),
                        score: v.score,
                        consistent: v.consistent,
                        positions: v.positions.iter().map(|p| Position::parse(*p)).collect(),
                    }
                })
                .collect(),
        })
    });
    Tally {
        ok: true,
        verdict: Some(j.verdict.as_str()),
        usage: j.usage,
        cost_usd: j.cost_usd,
        cached: j.cached,
        panel,
        provider_batch: j.provider_batch.is_some(),
        ..Tally::default()
    }
}

/// The tally of a score judgment.
fn score_tally(j: &ScoreJudgment) -> Tally {
    let mut t = tally(&j.judgment);
    t.score = j.score;
    t.chars = Some(j.prediction_chars);
    decide(&mut t, None);
    t
}

/// The tally of a pairwise judgment.
fn compare_tally(j: &CompareJudgment) -> Tally {
    let mut t = tally(&j.judgment);
    t.winner = j.winner;
    t.consistent = j.consistent;
    t.positions = j.positions.iter().map(|p| Position::parse(*p)).collect();
    decide(&mut t, j.winner);
    t
}

/// Sets a panel item's own decision (as a category) once its kind's fields are known.
fn decide(t: &mut Tally, winner: Option<&str>) {
    let category = summary::category(t.verdict, winner, t.score);
    if let Some(p) = t.panel.as_mut() {
        p.decision = category;
    }
}

/// The tally of a binary judgment.
fn binary_tally(j: &Judgment) -> Tally {
    let mut t = tally(j);
    decide(&mut t, None);
    t
}

/// One item of a batch, parsed (or not) from the request.
#[derive(Debug, Clone)]
pub enum BatchItem {
    Binary(BinaryItem),
    Score(ScoreItem),
    Compare(CompareItem),
    /// The item could not be read or failed validation; it becomes an error entry.
    Invalid(FieldError),
    /// The item's JSON, not read yet: it is read inside the item's own task, so a large batch
    /// starts judging after one scan of its body, not after every item has been parsed.
    Unread(JudgeKind, Box<RawValue>),
}

impl BatchItem {
    /// Parses and validates one JSON item of the given kind. Field names in errors are prefixed
    /// with `items[i].`.
    pub fn parse(kind: JudgeKind, index: usize, value: Value) -> BatchItem {
        Self::from_source(kind, index, Source::Value(value))
    }

    /// Reads an [`BatchItem::Unread`] item, with the errors [`BatchItem::parse`] gives; any
    /// other item is returned as it is.
    pub fn read(self, index: usize) -> BatchItem {
        match self {
            BatchItem::Unread(kind, json) => Self::from_source(kind, index, Source::Text(&json)),
            item => item,
        }
    }

    fn from_source(kind: JudgeKind, index: usize, source: Source<'_>) -> BatchItem {
        fn read<T: serde::de::DeserializeOwned>(index: usize, v: Source) -> Result<T, FieldError> {
            match v {
                Source::Value(v) => llm_judge_judge::items::from_json_value(v),
                Source::Text(json) => llm_judge_judge::items::from_json_item(json.get()),
            }
            .map_err(|e| {
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
            JudgeKind::Binary => read::<BinaryItem>(index, source)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Binary(i))),
            JudgeKind::Score => read::<ScoreItem>(index, source)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Score(i))),
            JudgeKind::Compare => read::<CompareItem>(index, source)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Compare(i))),
        };
        parsed.unwrap_or_else(BatchItem::Invalid)
    }
}

/// Where an item is read from.
enum Source<'a> {
    Value(Value),
    Text(&'a RawValue),
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

impl BatchItem {
    /// The judge the item itself names, if any.
    pub fn judge(&self) -> Option<&str> {
        match self {
            BatchItem::Binary(i) => i.judge.as_deref(),
            BatchItem::Score(i) => i.judge.as_deref(),
            BatchItem::Compare(i) => i.judge.as_deref(),
            BatchItem::Invalid(_) | BatchItem::Unread(..) => None,
        }
    }
}

/// Judges one item into its result entry; an item naming its own judge uses it.
/// Judges one item of a batch into its entry; its calls travel as `via` says.
pub async fn judge_one(
    judge: &Judge,
    route: &str,
    index: usize,
    item: BatchItem,
    via: &Via,
) -> Entry {
    let item = item.read(index);
    let error = |code: &str, message: &str, field: Option<&str>, attempts: Option<Value>| {
        Entry::from_value(index, &error_entry(index, code, message, field, attempts))
    };
    let own_route;
    let route = match item.judge() {
        Some(name) => match judge.resolve_route(Some(name)) {
            Ok(r) => {
                own_route = r;
                own_route.as_str()
            }
            Err(_) => {
                let field = format!("items[{index}].judge");
                return error(
                    "unknown_judge",
                    &format!("no judge named {name:?}"),
                    Some(&field),
                    None,
                );
            }
        },
        None => route,
    };
    let outcome: Result<Entry, JudgeError> = match item {
        BatchItem::Invalid(e) => {
            return error("invalid_item", &e.message, Some(&e.field), None);
        }
        // `read` above has read it.
        BatchItem::Unread(..) => {
            return error("internal_error", "the item was not read", None, None);
        }
        BatchItem::Binary(i) => judge
            .binary(route, &i, via)
            .await
            .map(|j| Entry::ok(index, &j, binary_tally(&j))),
        BatchItem::Score(i) => judge
            .score(route, &i, via)
            .await
            .map(|j| Entry::ok(index, &j, score_tally(&j))),
        BatchItem::Compare(i) => judge
            .compare(route, &i, via)
            .await
            .map(|j| Entry::ok(index, &j, compare_tally(&j))),
    };
    match outcome {
        Ok(entry) => entry,
        Err(JudgeError::UnknownRoute(r)) => error(
            "unknown_judge",
            &format!("no judge named {r:?}"),
            Some("judge"),
            None,
        ),
        Err(JudgeError::Failed {
            code,
            message,
            attempts,
        }) => error(
            code,
            &message,
            None,
            Some(serde_json::to_value(attempts).unwrap_or_default()),
        ),
    }
}

/// What judging an item may cost at most, or `None` when it will be no call at all (an invalid
/// item, an unknown judge: an error entry).
pub fn estimate(judge: &Judge, route: &str, item: &BatchItem) -> Option<Estimate> {
    let own;
    let route = match item.judge() {
        Some(name) => {
            own = judge.resolve_route(Some(name)).ok()?;
            own.as_str()
        }
        None => route,
    };
    Some(match item {
        BatchItem::Binary(i) => judge.estimate_binary(route, i),
        BatchItem::Score(i) => judge.estimate_score(route, i),
        BatchItem::Compare(i) => judge.estimate_compare(route, i),
        BatchItem::Invalid(_) | BatchItem::Unread(..) => return None,
    })
}

/// What a budget made of an item.
pub enum Admitted {
    /// Send it (read, with its reservation, or `None` when it makes no call).
    Go(BatchItem, Option<Reservation>),
    /// Its `budget_exhausted` entry.
    Refused(Entry),
}

/// Admits an item under `budget`. The item is read first, if it was not.
pub fn admit(
    judge: &Judge,
    route: &str,
    index: usize,
    item: BatchItem,
    budget: &Arc<Budget>,
) -> Admitted {
    let item = item.read(index);
    let Some(estimate) = estimate(judge, route, &item) else {
        return Admitted::Go(item, None);
    };
    match budget.reserve(estimate) {
        Ok(r) => Admitted::Go(item, Some(r)),
        Err(e) => Admitted::Refused(Entry::from_value(
            index,
            &error_entry(index, crate::budget::EXHAUSTED, &e.message, None, None),
        )),
    }
}

/// Settles an item's reservation with what its entry says it cost (an error entry made no
/// billed call).
pub fn settle(reservation: Option<Reservation>, entry: &Entry) {
    if let Some(r) = reservation {
        if entry.tally.ok {
            r.settle(entry.tally.cost_usd, entry.tally.usage.total());
        } else {
            r.settle(Some(0.0), 0);
        }
    }
}

/// One item judged on a task of its own, aborted if the batch is dropped (the client went away
/// or the server stopped waiting), so no provider call outlives the request that asked for it.
/// An item its budget did not let through is its entry at once.
struct ItemTask {
    index: usize,
    handle: Option<tokio::task::JoinHandle<Entry>>,
    ready: Option<Entry>,
}

impl ItemTask {
    fn spawn(
        judge: &Arc<Judge>,
        route: &Arc<str>,
        index: usize,
        item: BatchItem,
        budget: Option<&Arc<Budget>>,
    ) -> ItemTask {
        // Items are admitted here, in input order, so the budget stops the batch at one place.
        let (item, reservation) = match budget {
            None => (item, None),
            Some(b) => match admit(judge, route, index, item, b) {
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
        let judge = judge.clone();
        let route = route.clone();
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
fn judged(
    judge: Arc<Judge>,
    route: Arc<str>,
    items: Vec<BatchItem>,
    max_concurrent: usize,
    budget: Option<Arc<Budget>>,
) -> futures::stream::BoxStream<'static, Entry> {
    futures::stream::iter(items.into_iter().enumerate())
        .map(move |(index, item)| ItemTask::spawn(&judge, &route, index, item, budget.as_ref()))
        .buffer_unordered(max_concurrent.max(1))
        .boxed()
}

/// How much of a batch's JSON answer is gathered before it is handed to the connection: enough
/// that the writes stay few (a few hundred results each), little enough that almost nothing is
/// left to write when the last item finishes.
const JSON_PIECE_BYTES: usize = 64 * 1024;

/// Runs a whole batch as its JSON answer, `{"results":[...],"summary":{...}}`, results in input
/// order. The answer is written as the batch goes: a result goes out once every result before it
/// is in, so that when the last item finishes only the results that waited on it are left to
/// send, and a sent result is not kept.
///
/// At most `max_concurrent` items are being judged at once. An item that finishes early frees
/// its place at once, even while an earlier one still waits on its provider. Items are judged
/// (prompts, parsing, provider I/O) each on a task of its own rather than all on the one task
/// serving the request. The work starts when the stream is first polled and goes on only as
/// the answer is taken: a client that stops reading stops it, a bounded number of items past
/// what its connection took. Dropping the stream (the client went away) cancels what is still
/// in flight.
pub fn json(
    judge: Arc<Judge>,
    route: String,
    kind: JudgeKind,
    items: Vec<BatchItem>,
    max_concurrent: usize,
    budget: Option<Arc<Budget>>,
    stop: CancellationToken,
) -> impl futures::Stream<Item = bytes::Bytes> + Send + 'static {
    let started = Instant::now();
    let mut answer = InOrder::new(kind, items.len());
    answer.budget = budget.clone();
    let mut work = Some(judged(judge, route.into(), items, max_concurrent, budget));
    let mut stopped = Box::pin(stop.cancelled_owned());
    futures::stream::poll_fn(move |cx| {
        let Some(entries) = work.as_mut() else {
            return Poll::Ready(None);
        };
        if stopped.as_mut().poll(cx).is_ready() {
            // The server is stopping: the items not judged yet are errors that say so, and
            // the answer stays one whole document.
            work = None;
            return Poll::Ready(Some(answer.finish_with(
                started.elapsed(),
                "shutting_down",
                "the server shut down before this item was judged; send it again",
            )));
        }
        loop {
            match entries.poll_next_unpin(cx) {
                Poll::Ready(Some(entry)) => {
                    answer.add(entry);
                    if answer.pending_bytes() >= JSON_PIECE_BYTES {
                        return Poll::Ready(Some(answer.take()));
                    }
                }
                Poll::Ready(None) => {
                    work = None;
                    return Poll::Ready(Some(answer.finish(started.elapsed())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
}

/// The JSON answer of a batch, written in input order from results that arrive in any order.
struct InOrder {
    /// Results that arrived before an earlier one, until it is written.
    waiting: Vec<Option<Box<RawValue>>>,
    /// The index of the next result to write.
    next: usize,
    /// Written and not yet taken.
    buf: Vec<u8>,
    summary: Summary,
    /// Reported in the summary.
    budget: Option<Arc<Budget>>,
}

impl InOrder {
    fn new(kind: JudgeKind, total: usize) -> Self {
        let mut waiting = Vec::with_capacity(total);
        waiting.resize_with(total, || None);
        let mut buf = Vec::with_capacity(JSON_PIECE_BYTES + 4096);
        buf.extend_from_slice(b"{\"results\":[");
        InOrder {
            waiting,
            next: 0,
            buf,
            summary: Summary::new(kind, total),
            budget: None,
        }
    }

    /// Counts an item's result, and writes it with every waiting result it was holding back.
    fn add(&mut self, entry: Entry) {
        let Some(slot) = self.waiting.get_mut(entry.index) else {
            return;
        };
        if entry.index < self.next || slot.is_some() {
            // Each item is judged once; a second result for one would be a bug, not an answer.
            return;
        }
        self.summary.count(&entry.tally);
        if entry.index > self.next {
            *slot = Some(entry.json);
            return;
        }
        self.write(&entry.json);
        while let Some(json) = self.waiting.get_mut(self.next).and_then(Option::take) {
            self.write(&json);
        }
    }

    fn write(&mut self, json: &RawValue) {
        if self.next > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(json.get().as_bytes());
        self.next += 1;
    }

    fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// What has been written since the last take.
    fn take(&mut self) -> bytes::Bytes {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(JSON_PIECE_BYTES + 4096));
        bytes::Bytes::from(full)
    }

    /// The rest of the answer: every remaining result (an item that was never judged, which
    /// only a bug could cause, is an `internal_error` entry and counted as such) and the summary.
    fn finish(&mut self, elapsed: std::time::Duration) -> bytes::Bytes {
        self.finish_with(elapsed, "internal_error", "the item was not judged")
    }

    /// [`InOrder::finish`], with the items not judged reported as `code`.
    fn finish_with(
        &mut self,
        elapsed: std::time::Duration,
        code: &str,
        message: &str,
    ) -> bytes::Bytes {
        while self.next < self.waiting.len() {
            let i = self.next;
            match self.waiting[i].take() {
                Some(json) => self.write(&json),
                None => {
                    let v = error_entry(i, code, message, None, None);
                    let entry = Entry::from_value(i, &v);
                    self.summary.count(&entry.tally);
                    self.write(&entry.json);
                }
            }
        }
        self.summary.finish(elapsed);
        self.summary.budget = self.budget.as_ref().map(|b| b.report());
        self.buf.extend_from_slice(b"],\"summary\":");
        serde_json::to_writer(&mut self.buf, &self.summary).expect("a summary serialises");
        self.buf.push(b'}');
        std::mem::take(&mut self.buf).into()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize, verdict: &str) -> Entry {
        Entry::from_value(
            index,
            &json!({"index": index, "status": "ok", "verdict": verdict, "pad": "x".repeat(index % 7)}),
        )
    }

    /// The answer written from results in any order, taken in pieces along the way, is the
    /// document the results and summary serialise to in input order.
    #[test]
    fn results_arriving_in_any_order_are_written_in_input_order() {
        let total = 3000;
        // Blocks of 100 finishing back to front, and item 1 only after the first 1,000 others.
        let mut order: Vec<usize> = (0..total)
            .collect::<Vec<_>>()
            .chunks(100)
            .flat_map(|block| block.iter().rev().copied().collect::<Vec<_>>())
            .filter(|&i| i != 1)
            .collect();
        order.insert(1000, 1);
        let mut answer = InOrder::new(JudgeKind::Binary, total);
        let mut sent = Vec::new();
        let mut pieces = 0;
        for &i in &order {
            if i == 1 {
                // Until item 1 is in, nothing after item 0 has been written.
                let written = [sent.as_slice(), answer.buf.as_slice()].concat();
                let text = String::from_utf8(written).unwrap();
                assert!(text.contains(r#""index":0"#), "{text}");
                assert!(!text.contains(r#""index":2"#), "{text}");
            }
            answer.add(entry(i, if i % 3 == 0 { "correct" } else { "incorrect" }));
            if answer.pending_bytes() >= 4096 {
                sent.extend_from_slice(&answer.take());
                pieces += 1;
            }
        }
        sent.extend_from_slice(&answer.finish(std::time::Duration::from_millis(1500)));
        assert!(pieces >= 10, "the answer went out in pieces: {pieces}");
        let doc: Value = serde_json::from_slice(&sent).expect("the pieces make one JSON document");
        let results = doc["results"].as_array().unwrap();
        assert_eq!(results.len(), total);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r, &entry(i, r["verdict"].as_str().unwrap()).to_value());
        }
        assert_eq!(doc["summary"]["total"], total);
        assert_eq!(doc["summary"]["correct"], 1000);
        assert_eq!(doc["summary"]["incorrect"], 2000);
        assert_eq!(doc["summary"]["duration_ms"], 1500.0);
        // Exactly what serialising the whole answer at the end gives.
        let mut summary = Summary::new(JudgeKind::Binary, total);
        let entries: Vec<Entry> = results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let e = Entry::from_value(i, r);
                summary.count(&e.tally);
                e
            })
            .collect();
        summary.finish(std::time::Duration::from_millis(1500));
        #[derive(Serialize)]
        struct Whole<'a> {
            results: Vec<&'a RawValue>,
            summary: &'a Summary,
        }
        let whole = serde_json::to_vec(&Whole {
            results: entries.iter().map(|e| &*e.json).collect(),
            summary: &summary,
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }

    /// An item that never reports is an `internal_error` entry in its place, counted as an
    /// error; a second result for an item is not written twice.
    #[test]
    fn a_missing_result_is_an_error_entry_and_a_repeated_one_is_ignored() {
        let mut answer = InOrder::new(JudgeKind::Binary, 4);
        answer.add(entry(0, "correct"));
        answer.add(entry(3, "correct"));
        answer.add(entry(0, "incorrect"));
        answer.add(entry(3, "incorrect"));
        answer.add(entry(2, "correct"));
        answer.add(entry(9, "correct"));
        let doc: Value = serde_json::from_slice(&answer.finish(std::time::Duration::ZERO)).unwrap();
        let results = doc["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0]["verdict"], "correct");
        assert_eq!(results[1]["status"], "error");
        assert_eq!(results[1]["index"], 1);
        assert_eq!(results[1]["error"]["code"], "internal_error");
        assert_eq!(results[3]["verdict"], "correct");
        assert_eq!(doc["summary"]["correct"], 3);
        assert_eq!(doc["summary"]["errors"], 1);
        assert_eq!(doc["summary"]["total"], 4);
    }
}
