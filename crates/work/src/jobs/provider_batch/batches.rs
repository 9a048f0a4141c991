//! One job's provider batches on this process: what they hold, the outcomes they gave back
//! (until the job's runner picks them up), and how they are stored with the job.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::batch::ProviderBatchProgress;
use crate::jobs::options::DEFAULT_PROVIDER_BATCH_DEADLINE_S;
use crate::jobs::record::{BatchRecord, JobRecord, SubmitMark, now_ms};
use crate::jobs::store::{JobStore, change, retrying};
use llm_judge_judge::Judge;
use llm_judge_providers::provider_batch::{Handle, ItemFailure, Outcome, Queued, Status};

/// An item's outcome, with the id of the batch it came from.
pub type Mail = (Outcome, String);

/// What the job's batches hold and owe, behind one lock.
#[derive(Default)]
pub(super) struct State {
    /// Items handed a delivery that have neither queued their request nor finished.
    pub(super) outstanding: usize,
    /// Every item of the job has been taken.
    pub(super) sealed: bool,
    /// Requests waiting to be submitted, by provider.
    pub(super) queued: BTreeMap<String, Vec<Queued>>,
    /// Outcomes given back, by item index, for the runner to pick up.
    pub(super) answered: VecDeque<(u64, Mail)>,
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
    /// Outcomes were given back, or a round was submitted (room to queue again).
    pub(super) answers: Notify,
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
            answers: Notify::new(),
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

    /// Gives back item `index`'s outcome, for the runner to pick up.
    pub(super) fn post(&self, index: u64, outcome: Outcome, batch: String) {
        self.state
            .lock()
            .unwrap()
            .answered
            .push_back((index, (outcome, batch)));
        self.answers.notify_one();
    }

    /// At most `max` of the outcomes given back, oldest first.
    pub fn answered(&self, max: usize) -> Vec<(u64, Mail)> {
        let mut s = self.state.lock().unwrap();
        let n = max.min(s.answered.len());
        s.answered.drain(..n).collect()
    }

    /// Whether items may queue more requests: fewer than two rounds wait to be submitted.
    pub fn has_room(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.queued.values().map(Vec::len).sum::<usize>() < 2 * super::submit::ROUND
    }

    /// Whether outcomes wait to be picked up.
    pub fn has_answers(&self) -> bool {
        !self.state.lock().unwrap().answered.is_empty()
    }

    /// Resolves once outcomes were given back, or a round was submitted, since the last call
    /// (at once if that happened and nobody waited).
    pub async fn answers(&self) {
        self.answers.notified().await;
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
