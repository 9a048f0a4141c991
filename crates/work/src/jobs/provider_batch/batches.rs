//! One job's provider batches on this process: what they hold, the outcome each item waits
//! for, and how they are stored with the job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::batch::ProviderBatchProgress;
use crate::jobs::options::DEFAULT_PROVIDER_BATCH_DEADLINE_S;
use crate::jobs::record::{BatchRecord, JobRecord, SubmitMark, now_ms};
use crate::jobs::store::{JobStore, change, retrying};
use llm_judge_judge::Judge;
use llm_judge_providers::provider_batch::{Handle, ItemFailure, Outcome, Queued, Status};

/// An item's outcome, with the id of the batch it came from.
pub(super) type Mail = (Outcome, String);

/// Where an item's outcome meets the item: the item waiting for it, or the outcome waiting
/// for the item to ask.
pub(super) enum Mailbox {
    Waiting(oneshot::Sender<Mail>),
    Ready(Mail),
}

/// What the job's batches hold and owe, behind one lock.
#[derive(Default)]
pub(super) struct State {
    /// Items handed a delivery that have neither queued their request nor finished.
    pub(super) outstanding: usize,
    /// Every item of the job has been taken.
    pub(super) sealed: bool,
    /// Requests waiting to be submitted, by provider.
    pub(super) queued: BTreeMap<String, Vec<Queued>>,
    pub(super) mail: HashMap<u64, Mailbox>,
    /// Items in a batch already made: index -> the batch's place in `records`.
    pub(super) of_item: HashMap<u64, usize>,
    /// The job's batches, as stored.
    pub(super) records: Vec<BatchRecord>,
    /// Batches whose poller runs.
    pub(super) polling: HashSet<usize>,
}

impl State {
    /// Takes a batch of the job's as one of its records, its items pointing at it.
    pub(super) fn add(&mut self, r: BatchRecord) {
        let n = self.records.len();
        for i in r.indices() {
            self.of_item.insert(i, n);
        }
        self.records.push(r);
    }
}

/// One job's provider batches on this process.
pub struct Batches {
    pub(super) job: String,
    pub(super) judge: Arc<Judge>,
    pub(super) store: Arc<dyn JobStore>,
    /// When what the batches have not answered goes online.
    pub(super) deadline: tokio::time::Instant,
    /// The job's runner stopped (cancelled, or the service stops).
    pub(super) stop: CancellationToken,
    /// The job was cancelled.
    pub(super) cancelled: CancellationToken,
    /// Calls sent online for items their batch did not answer: at most the job's concurrency.
    pub(super) online: Arc<Semaphore>,
    pub(super) state: Mutex<State>,
    pub(super) changed: Notify,
    /// Batches the job was making when its service stopped, to look for at the provider.
    pub(super) unfinished: Vec<SubmitMark>,
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
                .unwrap_or(DEFAULT_PROVIDER_BATCH_DEADLINE_S)
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

    /// Stores `add` with the job, and the mark `mark` when given; without one, every mark of
    /// a batch being made is cleared (what was being made is stored, or was not made).
    pub(super) async fn record(&self, add: &[BatchRecord], mark: Option<SubmitMark>) {
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

    /// Notes a poll of batch `n`, storing it with the job when what is shown changed.
    pub(super) async fn saw(&self, n: usize, status: &Status) {
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

    pub(super) fn post_all(&self, h: &Handle, failure: ItemFailure, batch: &str) {
        for id in &h.requests {
            self.post(id.index, Err(failure.clone()), batch.to_string());
        }
    }

    /// Hands item `index` its outcome (kept until the item asks for it).
    pub(super) fn post(&self, index: u64, outcome: Outcome, batch: String) {
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
    pub(super) fn mailbox(&self, index: u64) -> oneshot::Receiver<Mail> {
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
    pub(super) fn gone(&self) {
        let mut s = self.state.lock().unwrap();
        s.outstanding = s.outstanding.saturating_sub(1);
        drop(s);
        self.changed.notify_one();
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
