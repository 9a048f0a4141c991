//! Provider batches for jobs: a job with `provider_batch` sends the items whose route's first
//! step has a batch API (OpenAI, Azure OpenAI, Anthropic) as provider batches, at the batch
//! price, and the others online as usual.
//!
//! Each such item is judged exactly as online ([`crate::batch::judge_one`]: the same prompt,
//! verdict cache, parser and result JSON); only its call is delivered differently: the item's
//! [`ItemDelivery`] queues the request, the job's [`Batches`] submits what its items queued
//! once every item taken has queued its request (or finished without one: a verdict-cache hit,
//! the rules pre-check), polls each batch with backoff, and hands every item its outcome,
//! matched by `custom_id`. An item its batch did not answer (errored, expired, cancelled,
//! missing, or still running when the job's deadline passes: the batch is cancelled at the
//! provider then) is sent along its route online, retries and fallback included, so the job
//! always completes.
//!
//! Every batch is stored in the job's record as soon as it is created: a restarted service
//! polls the same batches again (and reads their results) instead of making new ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use super::record::{ATTEMPT, JobRecord, now_ms};
pub use super::record::{BatchRecord, Lease, SubmitMark};
use super::store::{INVALID_LINE, JobStore, StoreError, change, retrying};
use crate::batch::ProviderBatchProgress;
use llm_judge_chat::{ChatRequest, ProviderError};
use llm_judge_judge::{Judge, JudgeKind};
use llm_judge_pool::{Attempt, Deliver, Delivered, Pool, RouteFailed};
use llm_judge_providers::provider_batch::{
    Api, CustomId, Handle, ItemFailure, Outcome, Queued, Status,
};

/// Takes (or renews) the lease on `id`'s provider batches for `owner`, for `length`, unless
/// another replica holds it; the record as stored after, and whether `owner` holds it.
pub async fn lease(
    store: &dyn JobStore,
    id: &str,
    owner: &str,
    length: Duration,
) -> Result<Option<(JobRecord, bool)>, StoreError> {
    let me = owner.to_string();
    let take = change(move |r| {
        let now = now_ms();
        let free = r
            .driver
            .as_ref()
            .is_none_or(|l| l.owner == me || l.until_ms <= now);
        if !free || r.status.is_finished() {
            return false;
        }
        r.driver = Some(Lease {
            owner: me.clone(),
            until_ms: now + length.as_millis() as u64,
        });
        true
    });
    let stored = retrying(id, || store.update(id, take.clone())).await?;
    Ok(stored.map(|r| {
        let mine = r.driver.as_ref().is_some_and(|l| l.owner == owner);
        (r, mine)
    }))
}

/// An item's outcome, with the id of the batch it came from.
type Mail = (Outcome, String);

enum Mailbox {
    Waiting(oneshot::Sender<Mail>),
    Ready(Mail),
}

#[derive(Default)]
struct State {
    /// Items handed a delivery that have neither queued their request nor finished.
    outstanding: usize,
    /// Every item of the job has been taken.
    sealed: bool,
    /// Requests waiting to be submitted, by provider.
    queued: BTreeMap<String, Vec<Queued>>,
    mail: HashMap<u64, Mailbox>,
    /// Items in a batch already made: index -> the batch's place in `records`.
    of_item: HashMap<u64, usize>,
    /// The job's batches, as stored.
    records: Vec<BatchRecord>,
    /// Batches whose poller runs.
    polling: HashSet<usize>,
}

impl State {
    /// Takes a batch of the job's as one of its records, its items pointing at it.
    fn add(&mut self, r: BatchRecord) {
        let n = self.records.len();
        for i in r.indices() {
            self.of_item.insert(i, n);
        }
        self.records.push(r);
    }
}

/// One job's provider batches on this process.
pub struct Batches {
    job: String,
    judge: Arc<Judge>,
    store: Arc<dyn JobStore>,
    /// When what the batches have not answered goes online.
    deadline: tokio::time::Instant,
    /// The job's runner stopped (cancelled, or the service stops).
    stop: CancellationToken,
    /// The job was cancelled.
    cancelled: CancellationToken,
    /// Calls sent online for items their batch did not answer: at most the job's concurrency.
    online: Arc<Semaphore>,
    state: Mutex<State>,
    changed: Notify,
    /// Batches the job was making when its service stopped, to look for at the provider.
    unfinished: Vec<SubmitMark>,
}

impl Batches {
    /// The provider batches of `record` (those it made before, after a restart, included).
    pub fn new(
        record: &JobRecord,
        judge: Arc<Judge>,
        store: Arc<dyn JobStore>,
        stop: CancellationToken,
        cancelled: CancellationToken,
    ) -> Arc<Batches> {
        let deadline_ms = record.created_at_ms.saturating_add(
            record
                .provider_batch_deadline_s
                .unwrap_or(super::DEFAULT_PROVIDER_BATCH_DEADLINE_S)
                .saturating_mul(1000),
        );
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms()));
        let mut state = State::default();
        for r in &record.provider_batches {
            state.add(r.clone());
        }
        Arc::new(Batches {
            job: record.id.clone(),
            judge,
            store,
            deadline: tokio::time::Instant::now() + left,
            stop,
            cancelled,
            online: Arc::new(Semaphore::new(record.max_concurrent.max(1))),
            state: Mutex::new(state),
            changed: Notify::new(),
            unfinished: record.batch_submits.clone(),
        })
    }

    /// Before any item is taken: finds the batches the job was making when its service
    /// stopped (made at the provider, their ids never stored) and takes them as its own, so
    /// that their items are not sent again. Where they cannot be looked for (Anthropic's
    /// batches carry no label; the provider does not answer), the items are sent again, and
    /// a warning says a batch may be billed twice.
    pub async fn recover(self: &Arc<Self>) {
        for mark in &self.unfinished {
            let Some(client) = self.judge.pool().batch_client(&mark.provider).cloned() else {
                continue;
            };
            let since = (mark.since_ms / 1000)
                .saturating_sub(llm_judge_providers::provider_batch::CLOCK_SLACK_S);
            let found = match client.labelled(&self.job, since).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(job = %self.job, provider = %mark.provider, error = %e, "could not look for a provider batch made before the restart: its items are sent again, and that batch, if it was made, is billed too");
                    continue;
                }
            };
            if found.is_empty() && client.api() == Api::Anthropic {
                tracing::warn!(job = %self.job, provider = %mark.provider, "the service stopped while making a provider batch, and Anthropic's batches cannot be looked for by job: its items are sent again, and that batch, if it was made, is billed too");
            }
            let known: HashSet<String> = {
                let s = self.state.lock().unwrap();
                s.records.iter().map(|r| r.id.clone()).collect()
            };
            let new: Vec<_> = found
                .into_iter()
                .filter(|h| !known.contains(&h.id))
                .collect();
            for h in &new {
                tracing::info!(job = %self.job, provider = %mark.provider, batch = %h.id, requests = h.requests.len(), "found a provider batch made before the restart: it is polled, not made again");
            }
            if !new.is_empty() {
                let records: Vec<BatchRecord> = new
                    .iter()
                    .map(|h| BatchRecord::new(&mark.provider, h))
                    .collect();
                self.record(&records, None).await;
                let mut s = self.state.lock().unwrap();
                for r in records {
                    s.add(r);
                }
            }
        }
        if !self.unfinished.is_empty() {
            self.record(&[], None).await;
        }
    }

    /// Stores `add` with the job, and the mark `mark` when given; without one, every mark of
    /// a batch being made is cleared (what was being made is stored, or was not made).
    async fn record(&self, add: &[BatchRecord], mark: Option<SubmitMark>) {
        let add = add.to_vec();
        let stored = retrying(&self.job, || {
            let add = add.clone();
            let mark = mark.clone();
            self.store.update(
                &self.job,
                change(move |r| {
                    let known: HashSet<String> =
                        r.provider_batches.iter().map(|b| b.id.clone()).collect();
                    r.provider_batches
                        .extend(add.iter().filter(|b| !known.contains(&b.id)).cloned());
                    match &mark {
                        Some(m) => r.batch_submits.push(m.clone()),
                        None => r.batch_submits.clear(),
                    }
                    true
                }),
            )
        })
        .await;
        if let Err(e) = stored {
            tracing::error!(job = %self.job, error = %e, "storing the job's provider batches failed");
        }
    }

    /// The delivery for one item of the job, when its call goes as a provider batch: it is in
    /// a batch made before, or its route's first step has a batch API (and it makes one call:
    /// not a panel, not a comparison asked in both orders).
    pub fn delivery(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: &str,
        index: u64,
        item: &Value,
    ) -> Option<(Arc<dyn Deliver>, f64)> {
        let resumed = self.state.lock().unwrap().of_item.get(&index).copied();
        let step = match resumed {
            Some(n) => {
                let provider = self.state.lock().unwrap().records[n].provider.clone();
                let model = self
                    .step_of(kind, route, item)
                    .filter(|s| s.provider == provider)
                    .map(|s| s.model)
                    .unwrap_or_default();
                llm_judge_pool::Step { provider, model }
            }
            None => {
                if tokio::time::Instant::now() >= self.deadline {
                    return None;
                }
                let step = self.step_of(kind, route, item)?;
                self.judge.pool().batch_client(&step.provider)?;
                step
            }
        };
        let discount = self
            .judge
            .pool()
            .batch_discount(&step.provider, &step.model)
            .unwrap_or(0.0);
        self.state.lock().unwrap().outstanding += 1;
        let delivery = Arc::new(ItemDelivery {
            batches: self.clone(),
            index,
            provider: step.provider,
            used: Mutex::new(Use::Fresh),
        });
        Some((delivery, discount))
    }

    /// The first step of the item's route, when the item makes one call along it.
    fn step_of(&self, kind: JudgeKind, route: &str, item: &Value) -> Option<llm_judge_pool::Step> {
        if item.get(INVALID_LINE).is_some() {
            return None;
        }
        if kind == JudgeKind::Compare && item.get("swap").and_then(Value::as_bool) != Some(false) {
            return None;
        }
        let route = match item.get("judge").and_then(Value::as_str) {
            Some(name) => self.judge.resolve_route(Some(name)).ok()?,
            None => route.to_string(),
        };
        if self.judge.panels().contains_key(&route) {
            return None;
        }
        self.judge.pool().first_step(&route)
    }

    /// Every item of the job has been taken: what is queued can be submitted.
    pub fn seal(&self) {
        self.state.lock().unwrap().sealed = true;
        self.changed.notify_one();
    }

    /// The batches, for the job's progress.
    pub fn progress(&self) -> Vec<ProviderBatchProgress> {
        let s = self.state.lock().unwrap();
        s.records.iter().map(BatchRecord::progress).collect()
    }

    /// Submits what the job's items queue, in rounds: each once every item taken has queued
    /// its request or finished (and none is left to take, or a round would fill a batch).
    /// Runs until the job's runner stops.
    pub async fn drive(self: Arc<Self>) {
        loop {
            let round = {
                let mut s = self.state.lock().unwrap();
                let queued: usize = s.queued.values().map(Vec::len).sum();
                let late = tokio::time::Instant::now() >= self.deadline;
                let ready = s.outstanding == 0 && (s.sealed || queued >= ROUND);
                if queued > 0 && (ready || late) {
                    Some((std::mem::take(&mut s.queued), late))
                } else {
                    None
                }
            };
            match round {
                Some((queued, false)) => {
                    for (provider, requests) in queued {
                        self.submit(&provider, requests).await;
                    }
                }
                Some((queued, true)) => {
                    // Past the deadline: no new batch; these go online.
                    for q in queued.into_values().flatten() {
                        self.post(q.id.index, Err(ItemFailure::Expired), String::new());
                    }
                }
                None => {}
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep_until(self.deadline), if tokio::time::Instant::now() < self.deadline => {}
                // And now and then anyway: the state decides, not the wake-up.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Creates the batches of one provider's requests and stores them with the job; requests
    /// that could not go into a batch go online.
    async fn submit(self: &Arc<Self>, provider: &str, requests: Vec<Queued>) {
        let Some(client) = self.judge.pool().batch_client(provider).cloned() else {
            for q in &requests {
                self.post(q.id.index, Err(ItemFailure::Missing), String::new());
            }
            return;
        };
        // Marked first: a service that stops before the ids below are stored looks for what
        // it made instead of making it again.
        let mark = SubmitMark {
            provider: provider.to_string(),
            since_ms: now_ms(),
        };
        self.record(&[], Some(mark)).await;
        let (made, refused, failed) = match client.submit(&requests, Some(&self.job)).await {
            Ok(sub) => (sub.batches, sub.refused, None),
            Err(e) => {
                tracing::warn!(job = %self.job, provider, error = %e.error, "creating a provider batch failed: its items go online");
                (e.done.batches, e.done.refused, Some(e.error))
            }
        };
        let records: Vec<BatchRecord> =
            made.iter().map(|h| BatchRecord::new(provider, h)).collect();
        self.record(&records, None).await;
        if !records.is_empty() {
            for r in &records {
                tracing::info!(job = %self.job, provider, batch = %r.id, requests = r.total, "provider batch created");
            }
            if self.cancelled.is_cancelled() {
                // Cancelled while these were being made: they are cancelled too.
                for h in &made {
                    if let Err(e) = client.cancel(h).await {
                        tracing::warn!(job = %self.job, batch = %h.id, error = %e, "cancelling a provider batch failed");
                    }
                }
            }
        }
        let mut inside = HashSet::new();
        {
            let mut s = self.state.lock().unwrap();
            for r in records {
                inside.extend(r.indices());
                s.add(r);
            }
        }
        for (id, e) in refused {
            inside.insert(id.index);
            self.post(id.index, Err(ItemFailure::Errored(e)), String::new());
        }
        if let Some(e) = failed {
            for q in &requests {
                if !inside.contains(&q.id.index) {
                    self.post(
                        q.id.index,
                        Err(ItemFailure::BatchFailed(e.to_string())),
                        String::new(),
                    );
                }
            }
        }
        let made: Vec<usize> = {
            let s = self.state.lock().unwrap();
            requests
                .iter()
                .filter_map(|q| s.of_item.get(&q.id.index).copied())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for n in made {
            self.ensure_polling(n);
        }
    }

    /// Starts the poller of batch `n` unless it runs.
    fn ensure_polling(self: &Arc<Self>, n: usize) {
        let record = {
            let mut s = self.state.lock().unwrap();
            if !s.polling.insert(n) {
                return;
            }
            s.records[n].clone()
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = me.stop.cancelled() => {}
                _ = me.poll(n, record) => {}
            }
        });
    }

    /// Polls batch `n` until it is over (cancelling it at the provider once the deadline
    /// passes), then hands every item its outcome.
    async fn poll(self: &Arc<Self>, n: usize, record: BatchRecord) {
        let handle = record.handle();
        let Some(client) = self.judge.pool().batch_client(&record.provider).cloned() else {
            self.post_all(&handle, ItemFailure::Missing, &record.id);
            return;
        };
        let polling = client.polling();
        let mut delays = polling.poll_delays();
        let mut cancelled_at: Option<tokio::time::Instant> = None;
        let status = loop {
            match client.status(&handle).await {
                Ok(status) => {
                    self.saw(n, &status).await;
                    if status.phase.is_over() {
                        break Some(status);
                    }
                }
                Err(e) => {
                    tracing::warn!(job = %self.job, batch = %record.id, error = %e, "polling a provider batch failed; polling goes on");
                }
            }
            let now = tokio::time::Instant::now();
            match cancelled_at {
                None if now >= self.deadline => {
                    tracing::info!(job = %self.job, batch = %record.id, "the job's provider batch deadline passed: cancelling the batch, its unanswered items go online");
                    if let Err(e) = client.cancel(&handle).await {
                        tracing::warn!(job = %self.job, batch = %record.id, error = %e, "cancelling a provider batch failed");
                    }
                    cancelled_at = Some(now);
                }
                // A cancelled batch ends soon; one that does not is left to its provider.
                Some(t) if now.duration_since(t) >= CANCEL_GRACE => break None,
                _ => {}
            }
            let mut wait = delays.next().unwrap_or(polling.max);
            if cancelled_at.is_some() {
                wait = polling.first;
            } else if now < self.deadline {
                wait = wait.min(self.deadline - now);
            }
            tokio::time::sleep(wait).await;
        };
        let Some(status) = status else {
            self.post_all(&handle, ItemFailure::Missing, &record.id);
            return;
        };
        let mut outcomes = None;
        for _ in 0..RESULT_TRIES {
            match client.results(&handle, &status).await {
                Ok(o) => {
                    outcomes = Some(o);
                    break;
                }
                Err(e) => {
                    tracing::warn!(job = %self.job, batch = %record.id, error = %e, "reading a provider batch's results failed");
                    tokio::time::sleep(polling.first).await;
                }
            }
        }
        match outcomes {
            Some(outcomes) => {
                for (id, outcome) in outcomes {
                    self.post(id.index, outcome, record.id.clone());
                }
            }
            None => self.post_all(&handle, ItemFailure::Missing, &record.id),
        }
    }

    /// Notes a poll of batch `n`, storing it with the job when what is shown changed.
    async fn saw(&self, n: usize, status: &Status) {
        let changed = {
            let mut s = self.state.lock().unwrap();
            s.records[n].saw(status)
        };
        if !changed {
            return;
        }
        let record = self.state.lock().unwrap().records[n].clone();
        let write = change(move |r| {
            match r.provider_batches.iter_mut().find(|b| b.id == record.id) {
                Some(b) => *b = record.clone(),
                None => return false,
            }
            true
        });
        if let Err(e) = retrying(&self.job, || self.store.update(&self.job, write.clone())).await {
            tracing::warn!(job = %self.job, error = %e, "storing a provider batch's progress failed");
        }
    }

    fn post_all(&self, h: &Handle, failure: ItemFailure, batch: &str) {
        for id in &h.requests {
            self.post(id.index, Err(failure.clone()), batch.to_string());
        }
    }

    /// Hands item `index` its outcome (kept until the item asks for it).
    fn post(&self, index: u64, outcome: Outcome, batch: String) {
        let mut s = self.state.lock().unwrap();
        match s.mail.remove(&index) {
            Some(Mailbox::Waiting(tx)) => {
                let _ = tx.send((outcome, batch));
            }
            _ => {
                s.mail.insert(index, Mailbox::Ready((outcome, batch)));
            }
        }
    }

    /// Where item `index`'s outcome will arrive.
    fn mailbox(&self, index: u64) -> oneshot::Receiver<Mail> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.state.lock().unwrap();
        match s.mail.remove(&index) {
            Some(Mailbox::Ready(mail)) => {
                let _ = tx.send(mail);
            }
            _ => {
                s.mail.insert(index, Mailbox::Waiting(tx));
            }
        }
        rx
    }

    /// An item handed a delivery finished without queueing a request.
    fn gone(&self) {
        let mut s = self.state.lock().unwrap();
        s.outstanding = s.outstanding.saturating_sub(1);
        drop(s);
        self.changed.notify_one();
    }

    /// Queues item `index`'s request (or finds the batch made before that holds it) and
    /// returns where its outcome arrives.
    fn enqueue(
        self: &Arc<Self>,
        provider: &str,
        index: u64,
        chat: Arc<ChatRequest>,
    ) -> oneshot::Receiver<Mail> {
        let rx = self.mailbox(index);
        let resumed = {
            let mut s = self.state.lock().unwrap();
            s.outstanding = s.outstanding.saturating_sub(1);
            match s.of_item.get(&index).copied() {
                Some(n) => Some(n),
                None => {
                    s.queued
                        .entry(provider.to_string())
                        .or_default()
                        .push(Queued {
                            id: CustomId::new(index, ATTEMPT),
                            chat,
                        });
                    None
                }
            }
        };
        match resumed {
            Some(n) => self.ensure_polling(n),
            None => self.changed.notify_one(),
        }
        rx
    }

    /// Cancels at the provider every batch of the job that has not ended (the job was
    /// cancelled).
    pub async fn cancel_all(judge: &Judge, record: &JobRecord) {
        for b in record.provider_batches.iter().filter(|b| !b.is_ended()) {
            let Some(client) = judge.pool().batch_client(&b.provider) else {
                continue;
            };
            match client.cancel(&b.handle()).await {
                Ok(_) => {
                    tracing::info!(job = %record.id, batch = %b.id, "provider batch cancelled")
                }
                Err(e) => {
                    tracing::warn!(job = %record.id, batch = %b.id, error = %e, "cancelling a provider batch failed")
                }
            }
        }
    }
}

/// Requests that make a round submitted before every item has been taken.
const ROUND: usize = 50_000;
/// How long a batch cancelled at the deadline is waited for (what it ran keeps its batch
/// answer) before its items are given up on and sent online.
const CANCEL_GRACE: Duration = Duration::from_secs(60);
/// Tries to read a batch's results.
const RESULT_TRIES: usize = 5;

#[derive(PartialEq)]
enum Use {
    Fresh,
    Queued,
}

/// How one item's call is delivered: its first call through the job's provider batch (an item
/// asks once), any other online.
struct ItemDelivery {
    batches: Arc<Batches>,
    index: u64,
    provider: String,
    used: Mutex<Use>,
}

impl Drop for ItemDelivery {
    fn drop(&mut self) {
        if *self.used.lock().unwrap() == Use::Fresh {
            self.batches.gone();
        }
    }
}

impl Deliver for ItemDelivery {
    fn deliver<'a>(
        &'a self,
        pool: &'a Pool,
        route: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Delivered, RouteFailed>> {
        Box::pin(async move {
            let first = {
                let mut used = self.used.lock().unwrap();
                std::mem::replace(&mut *used, Use::Queued) == Use::Fresh
            };
            let step = pool
                .first_step(route)
                .filter(|s| s.provider == self.provider);
            let Some(step) = step.filter(|_| first) else {
                if first {
                    self.batches.gone();
                }
                return pool.complete(route, req).await;
            };
            // One copy of the request, shared by the queue and (should the batch not answer
            // it) the online call.
            let chat = Arc::new(ChatRequest {
                model: step.model.clone(),
                ..req
            });
            let started = tokio::time::Instant::now();
            let rx = self
                .batches
                .enqueue(&self.provider, self.index, chat.clone());
            let (outcome, batch) = rx
                .await
                .unwrap_or_else(|_| (Err(ItemFailure::Missing), String::new()));
            let failure = match outcome {
                Ok(completion) => {
                    return Ok(pool.batch_delivered(
                        &step.provider,
                        &step.model,
                        completion,
                        &batch,
                        started.elapsed(),
                    ));
                }
                Err(f) => f,
            };
            let noted = Attempt {
                provider: step.provider.clone(),
                model: step.model.clone(),
                outcome: "error",
                status: match &failure {
                    ItemFailure::Errored(ProviderError::Status { status, .. }) => Some(*status),
                    _ => None,
                },
                error: Some(failure.to_string()),
                latency_ms: (started.elapsed().as_secs_f64() * 1000.0).round(),
            };
            let _permit = self.batches.online.acquire().await;
            let req = Arc::try_unwrap(chat).unwrap_or_else(|shared| (*shared).clone());
            match pool.complete(route, req).await {
                Ok(mut d) => {
                    d.attempts.insert(0, noted);
                    Ok(d)
                }
                Err(mut f) => {
                    f.attempts.insert(0, noted);
                    Err(f)
                }
            }
        })
    }
}
