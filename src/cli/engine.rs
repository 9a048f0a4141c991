//! The judging loop of `llm-judge run`: a reader thread streams records through a bounded
//! channel, at most `concurrency` items are in flight, and each result is written as soon as it
//! is finished (in completion order). On the first SIGINT/SIGTERM no new item is taken, items in
//! flight get a grace period, and everything finished is written; a second signal exits at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use super::input::{self, Format};
use super::output::{IndexSet, Sink};
use super::progress::Progress;
use super::record::Record;
use super::remote::{MAX_CHUNK, Pending, Remote};
use super::report::Tally;
use llm_judge_judge::{Judge, JudgeKind};
use llm_judge_work::batch::{self, BatchItem, Budget, BudgetReport};

/// Item error messages shown on standard error before the rest are only counted.
const SHOWN_ERRORS: usize = 20;

/// Who judges.
pub enum Backend {
    /// This process, with the judge built from the configuration.
    Local {
        judge: Arc<Judge>,
        /// No provider has a key: the rules judge judges.
        rules_only: bool,
        route: String,
        description: String,
    },
    /// A running service, through its batch endpoint.
    Remote(Arc<Remote>),
}

impl Backend {
    pub fn describe(&self) -> String {
        match self {
            Backend::Local { description, .. } => description.clone(),
            Backend::Remote(r) => format!("{} on the server", r.route),
        }
    }
}

/// What the loop ends with.
pub struct Outcome {
    pub tally: Tally,
    pub total: usize,
    pub total_exact: bool,
    /// 130 after SIGINT, 143 after SIGTERM.
    pub signal: Option<u8>,
    /// Why the run stopped early on an error.
    pub failure: Option<String>,
    /// The reader of the output went away (`llm-judge run ... | head`): the run stopped there,
    /// quietly.
    pub pipe_closed: bool,
    /// The run's budget, when it had one.
    pub budget: Option<BudgetReport>,
}

/// What a judging task gives: its entries, or why the run must stop (server mode).
type TaskResult = Result<Vec<Value>, String>;

enum Msg {
    Item(Pending),
    Unreadable {
        index: usize,
        line: usize,
        message: String,
    },
    End {
        items: usize,
        error: Option<String>,
    },
}

/// Where the reading of the input stands.
struct Reading {
    /// Records read so far.
    read: Arc<AtomicUsize>,
    /// The pre-count, once done: the records, and those to judge in this run.
    counted: Arc<OnceLock<(usize, usize)>>,
    /// More may come from the reader.
    open: bool,
    /// The number of records, once the input was read to its end.
    end: Option<usize>,
}

/// The judging loop of a run: who judges, what is in flight, and where the results go.
pub struct Engine {
    backend: Backend,
    kind: JudgeKind,
    concurrency: usize,
    grace: Duration,
    sink: Sink,
    tally: Tally,
    precount: Option<(PathBuf, Format)>,
    progress: Progress,
    tasks: JoinSet<TaskResult>,
    owners: HashMap<Id, Vec<(usize, usize)>>,
    in_flight: usize,
    chunk: Vec<Pending>,
    errors_shown: usize,
    failure: Option<String>,
    /// The output's reader went away: stop quietly.
    pipe_closed: bool,
    /// `--max-cost-usd` / `--max-tokens`. Locally, every item is admitted under it; with a
    /// server, one chunk is sent at a time with what is left of it as the chunk's own budget.
    budget: Option<Arc<Budget>>,
    patience: Arc<super::patience::Patience>,
}

impl Engine {
    pub fn new(
        backend: Backend,
        kind: JudgeKind,
        concurrency: usize,
        grace: Duration,
        sink: Sink,
        tally: Tally,
        precount: Option<(PathBuf, Format)>,
    ) -> Engine {
        Engine {
            backend,
            kind,
            concurrency: concurrency.max(1),
            grace,
            sink,
            tally,
            precount,
            progress: Progress::new(),
            tasks: JoinSet::new(),
            owners: HashMap::new(),
            in_flight: 0,
            chunk: Vec::new(),
            errors_shown: 0,
            failure: None,
            pipe_closed: false,
            budget: None,
            patience: Arc::default(),
        }
    }

    pub fn with_budget(mut self, budget: Option<Arc<Budget>>) -> Engine {
        self.budget = budget;
        self
    }

    /// With a budget and a server, chunks go one at a time (each is given what is left of the
    /// budget), so a chunk is as large as the concurrency.
    fn sequential_chunks(&self) -> bool {
        self.budget.is_some() && matches!(self.backend, Backend::Remote(_))
    }

    /// Items per batch request in server mode: half the concurrency, so two requests overlap
    /// and the slow tail of one does not idle the server.
    /// Whether chunks go to the server as provider-batch jobs.
    fn jobs(&self) -> bool {
        matches!(&self.backend, Backend::Remote(r) if r.is_job())
    }

    fn chunk_size(&self) -> usize {
        if self.jobs() {
            // A provider-batch job takes as many items as the run's concurrency (set so).
            return self.concurrency;
        }
        if self.sequential_chunks() {
            return self.concurrency.clamp(1, MAX_CHUNK);
        }
        self.concurrency.div_ceil(2).clamp(1, MAX_CHUNK)
    }

    pub async fn run(
        mut self,
        records: Box<dyn Iterator<Item = std::io::Result<Record>> + Send>,
        done: Arc<IndexSet>,
        mut signals: watch::Receiver<Option<u8>>,
    ) -> Outcome {
        let (mut rx, mut reading) = self.start_reading(records, &done);
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching = true;
        let mut signal = None;
        let mut deadline: Option<Instant> = None;
        loop {
            let stopping = signal.is_some() || self.failure.is_some() || self.pipe_closed;
            let can_take = !stopping
                && reading.open
                && self.in_flight < self.concurrency
                && !(self.sequential_chunks() && self.in_flight > 0);
            if self.tasks.is_empty() && (stopping || !reading.open) {
                break;
            }
            tokio::select! {
                changed = signals.changed(), if watching && signal.is_none() => match changed {
                    Ok(()) => {
                        signal = *signals.borrow();
                        deadline = Some(Instant::now() + self.grace);
                        self.progress.println(&format!(
                            "llm-judge run: stopping: no new items; {} in flight may finish \
                             (up to {:.0}s; press Ctrl-C again to quit at once)",
                            self.in_flight,
                            self.grace.as_secs_f64()
                        ));
                    }
                    Err(_) => watching = false,
                },
                msg = rx.recv(), if can_take => self.received(msg, &mut rx, &mut reading, &done).await,
                joined = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(joined);
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.abandon_in_flight().await;
                    break;
                },
                _ = ticker.tick() => self.tick(&reading),
            }
        }
        self.end(&reading, signal)
    }

    /// Starts the reader thread (and, for a plain file, the thread counting its records for the
    /// progress bar's total).
    fn start_reading(
        &mut self,
        records: Box<dyn Iterator<Item = std::io::Result<Record>> + Send>,
        done: &Arc<IndexSet>,
    ) -> (mpsc::Receiver<Msg>, Reading) {
        let read = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel((self.concurrency * 2).clamp(16, 4096));
        {
            let (done, read) = (done.clone(), read.clone());
            std::thread::spawn(move || read_input(records, &done, &read, &tx));
        }
        let counted = Arc::new(OnceLock::new());
        if let Some((path, format)) = self.precount.take() {
            let (done, counted) = (done.clone(), counted.clone());
            std::thread::spawn(move || {
                if let Some(n) = input::count_records(&path, format) {
                    let _ = counted.set((n, n - done.count_below(n)));
                }
            });
        }
        let reading = Reading {
            read,
            counted,
            open: true,
            end: None,
        };
        (rx, reading)
    }

    /// Takes what the reader sent: items as long as there is room for them, an unreadable
    /// record, or the end of the input.
    async fn received(
        &mut self,
        msg: Option<Msg>,
        rx: &mut mpsc::Receiver<Msg>,
        reading: &mut Reading,
        done: &IndexSet,
    ) {
        // The reader thread always ends with `End`; a closed channel means it died.
        let Some(first) = msg else {
            reading.open = false;
            self.fail("reading the input failed".to_string());
            return;
        };
        let mut next = Some(first);
        while let Some(m) = next {
            if let Msg::End { items, error } = m {
                reading.open = false;
                match error {
                    None => {
                        reading.end = Some(items);
                        let to_judge = items - done.count_below(items);
                        self.progress.set_total(to_judge as u64);
                    }
                    Some(e) => self.fail(format!("reading the input failed: {e}")),
                }
                break;
            }
            self.take(m).await;
            next = if self.in_flight + self.chunk.len() < self.concurrency {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        // A provider-batch job waits for a full chunk (or the input's end): each chunk is a
        // provider batch of its own.
        if !reading.open || !self.jobs() {
            self.send_chunk();
        }
    }

    /// The grace period is over: the items still in flight are abandoned.
    async fn abandon_in_flight(&mut self) {
        let abandoned = self.in_flight;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.in_flight = 0;
        self.progress.println(&format!(
            "llm-judge run: grace period over: {abandoned} items in flight abandoned \
             (running again with the same --output judges them)"
        ));
    }

    /// Every quarter second: the total once counted, the output flushed, the progress shown.
    fn tick(&mut self, reading: &Reading) {
        if let Some(&(_, to_judge)) = reading.counted.get() {
            self.progress.set_total(to_judge as u64);
        }
        if let Err(e) = self.sink.flush() {
            self.output_failed(&e);
        }
        self.progress.set_waiting(self.patience.waiting());
        self.progress.tick();
    }

    /// The output flushed and the progress closed: what the loop ends with.
    fn end(mut self, reading: &Reading, signal: Option<u8>) -> Outcome {
        if let Err(e) = self.sink.flush() {
            self.output_failed(&e);
        }
        self.progress.finish();
        let (total, total_exact) = match (reading.end, reading.counted.get()) {
            (Some(n), _) => (n, true),
            (None, Some(&(n, _))) => (n, true),
            (None, None) => (reading.read.load(Ordering::Relaxed), false),
        };
        Outcome {
            tally: self.tally,
            total,
            total_exact,
            signal,
            failure: self.failure,
            pipe_closed: self.pipe_closed,
            budget: self.budget.as_ref().map(|b| b.report()),
        }
    }

    /// Stops the run because the output cannot be written: quietly when its reader went away
    /// (a closed pipe), else saying why.
    fn output_failed(&mut self, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            self.pipe_closed = true;
        } else {
            self.fail(format!("cannot write the output: {e}"));
        }
    }

    fn fail(&mut self, message: String) {
        if self.failure.is_none() {
            self.progress
                .println(&format!("llm-judge run: stopping: {message}"));
            self.failure = Some(message);
        }
    }

    /// Starts judging an item (or queues it for the next chunk), or records an unreadable one.
    async fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Item(p) => match &self.backend {
                Backend::Local { judge, route, .. } => {
                    let (judge, route, kind) = (judge.clone(), route.clone(), self.kind);
                    let patience = self.patience.clone();
                    let owner = vec![(p.index, p.line)];
                    let (index, line) = (p.index, p.line);
                    // Under a budget the item is read and admitted here, in input order (one
                    // that fits once items in flight settle waits for them); without one it is
                    // read on its own task.
                    let admitted = match &self.budget {
                        None => Err(p.value),
                        Some(b) => {
                            let item = BatchItem::parse(kind, index, p.value);
                            match batch::admit_when_room(&judge, &route, index, item, b).await {
                                batch::Admitted::Go(item, r) => Ok((item, r)),
                                batch::Admitted::Refused(refused) => {
                                    let mut entry = refused.to_value();
                                    entry["line"] = json!(line);
                                    self.record(entry);
                                    return;
                                }
                            }
                        }
                    };
                    let handle = self.tasks.spawn(async move {
                        let (item, reservation) = admitted
                            .unwrap_or_else(|value| (BatchItem::parse(kind, index, value), None));
                        let entry = patience.judge(&judge, &route, index, item).await;
                        batch::settle(reservation, &entry);
                        let mut entry = entry.to_value();
                        entry["line"] = json!(line);
                        Ok(vec![entry])
                    });
                    self.owners.insert(handle.id(), owner);
                    self.in_flight += 1;
                }
                Backend::Remote(_) => {
                    self.chunk.push(p);
                    if self.chunk.len() >= self.chunk_size() {
                        self.send_chunk();
                    }
                }
            },
            Msg::Unreadable {
                index,
                line,
                message,
            } => {
                let message = format!("line {line}: {message}");
                let mut entry = batch::error_entry(index, "invalid_line", &message, None, None);
                entry["line"] = json!(line);
                self.record(entry);
            }
            Msg::End { .. } => {}
        }
    }

    /// Sends the queued items to the server as one batch.
    fn send_chunk(&mut self) {
        let Backend::Remote(remote) = &self.backend else {
            return;
        };
        if self.chunk.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.chunk);
        let owner: Vec<(usize, usize)> = items.iter().map(|p| (p.index, p.line)).collect();
        let (remote, n) = (remote.clone(), items.len());
        let limits = match &self.budget {
            None => None,
            Some(b) => match left_for_a_chunk(b) {
                Some(l) => Some(l),
                None => {
                    b.add_refused(items.len());
                    for p in items {
                        let mut entry = batch::error_entry(
                            p.index,
                            llm_judge_work::budget::EXHAUSTED,
                            "the run's budget is spent; the item was not sent",
                            None,
                            None,
                        );
                        entry["line"] = json!(p.line);
                        self.record(entry);
                    }
                    return;
                }
            },
        };
        let handle = self
            .tasks
            .spawn(async move { remote.judge(items, n, limits).await });
        self.owners.insert(handle.id(), owner);
        self.in_flight += n;
    }

    fn finished(&mut self, joined: Option<Result<(Id, TaskResult), tokio::task::JoinError>>) {
        let Some(joined) = joined else { return };
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let owner = self.owners.remove(&id).unwrap_or_default();
        self.in_flight = self.in_flight.saturating_sub(owner.len());
        match joined {
            Ok((_, Ok(entries))) => {
                if let (Some(b), Backend::Remote(_)) = (&self.budget, &self.backend) {
                    count_remote_spend(b, &entries);
                }
                entries.into_iter().for_each(|e| self.record(e))
            }
            Ok((_, Err(message))) => self.fail(message),
            Err(e) if e.is_panic() => {
                for (index, line) in owner {
                    let mut entry = batch::error_entry(
                        index,
                        "internal_error",
                        "judging this item failed unexpectedly (a bug: please report it)",
                        None,
                        None,
                    );
                    entry["line"] = json!(line);
                    self.record(entry);
                }
            }
            Err(_) => {}
        }
    }

    /// Writes one finished entry and counts it.
    fn record(&mut self, entry: Value) {
        if let Err(e) = self.sink.write(&entry) {
            self.output_failed(&e);
            return;
        }
        if entry["status"] != "ok" {
            self.errors_shown += 1;
            if self.errors_shown <= SHOWN_ERRORS {
                self.progress.println(&format!(
                    "item {} (line {}): {}: {}",
                    entry["index"],
                    entry["line"],
                    entry["error"]["code"].as_str().unwrap_or("error"),
                    entry["error"]["message"].as_str().unwrap_or_default()
                ));
            } else if self.errors_shown == SHOWN_ERRORS + 1 {
                self.progress
                    .println("further item errors are not shown here: see the output");
            }
        }
        self.tally.add(&entry, false);
        self.progress.inc(self.tally.accuracy());
    }
}

/// What is left of the run's budget for the next chunk sent to the server, or `None` when
/// nothing is (every further item is `budget_exhausted` without being sent).
fn left_for_a_chunk(b: &Budget) -> Option<batch::Limits> {
    let left = b.remaining();
    let spent =
        b.is_closed() || left.max_cost_usd.is_some_and(|c| c <= 0.0) || left.max_tokens == Some(0);
    (!spent).then_some(left)
}

/// Counts a chunk's results against the run's budget: what the judged items cost, and the items
/// the server did not send because the chunk's budget (what was left of the run's) ran out.
fn count_remote_spend(b: &Budget, entries: &[Value]) {
    let mut refused = 0;
    for e in entries {
        if e["status"] == "ok" {
            let usage = &e["usage"];
            let tokens = usage["prompt_tokens"].as_u64().unwrap_or(0)
                + usage["completion_tokens"].as_u64().unwrap_or(0);
            b.add_spent(e["cost_usd"].as_f64(), tokens);
        } else if e["error"]["code"] == llm_judge_work::budget::EXHAUSTED {
            refused += 1;
        }
    }
    b.add_refused(refused);
}

/// The reader thread: numbers the records (index = position among records), skips those already
/// done, and sends the rest; ends with the count (or the I/O error that ended the input).
fn read_input(
    records: Box<dyn Iterator<Item = std::io::Result<Record>> + Send>,
    done: &IndexSet,
    read: &AtomicUsize,
    tx: &mpsc::Sender<Msg>,
) {
    let mut index = 0;
    let mut error = None;
    for record in records {
        let (line, value) = match record {
            Ok(r) => r,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        let i = index;
        index += 1;
        read.store(index, Ordering::Relaxed);
        if done.contains(i) {
            continue;
        }
        let msg = match value {
            Ok(value) => Msg::Item(Pending {
                index: i,
                line,
                value,
            }),
            Err(message) => Msg::Unreadable {
                index: i,
                line,
                message,
            },
        };
        if tx.blocking_send(msg).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(Msg::End {
        items: index,
        error,
    });
}
