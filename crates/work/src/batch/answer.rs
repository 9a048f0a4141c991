//! A batch's JSON answer, `{"results":[...],"summary":{...}}`: written in input order from
//! results that arrive in any order, and handed to the connection in pieces as it goes.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures::StreamExt;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::entry::{Entry, error_entry};
use super::item::BatchItem;
use super::summary::Summary;
use super::task::judged;
use crate::budget::Budget;
use llm_judge_judge::{Judge, JudgeKind};

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

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::{Value, json};

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
