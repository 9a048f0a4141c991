//! Persistent jobs: a batch accepted at once (202), run in the background, each result committed
//! as it completes, resumed after a restart or a crash, readable while and after it runs, and
//! expired after a retention period.
//!
//! A job's status only moves through compare-and-set writes on its stored record, so a cancel
//! wins every race with the job's runner: a job cancelled before its runner starts (right after
//! a restart, or right after it was submitted) never calls a provider. A failed write (a full
//! disk) does not lose a job: its runner keeps the results not yet committed and retries until
//! the store works again.

pub mod embedded;
mod options;
pub mod provider_batch;
pub mod record;
pub mod store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::batch::{self, BatchItem, Progress, Summary};
pub use embedded::{Embedded, Store};
use llm_judge_judge::{Judge, JudgeKind};
use llm_judge_pool::Via;
pub use options::{DEFAULT_PROVIDER_BATCH_DEADLINE_S, JobOptions, JobSettings};
use record::now_ms;
pub use record::{Counts, JobRecord, JobStatus};
pub use store::{Change, Created, Done, INVALID_LINE, JobStore, StoreError, Take, WorkItem};
use store::{change, retrying};

/// A running job's live state on this process.
struct Live {
    cancel: CancellationToken,
    /// What this runner counted (a single node's runner counts every result of the job), and
    /// how many were done before it started; `None` until it has counted what was stored.
    summary: Arc<Mutex<Option<(Summary, usize)>>>,
    /// The job's provider batches, when it makes them.
    batches: LiveBatches,
    started: Instant,
}

type LiveBatches = Arc<Mutex<Option<Arc<provider_batch::Batches>>>>;

/// The job manager, shared by the HTTP handlers.
pub struct Jobs {
    store: Arc<dyn JobStore>,
    judge: Arc<Judge>,
    settings: JobSettings,
    live: Mutex<HashMap<String, Live>>,
    /// The runtime [`Jobs::start`] ran on, where every job runs: not the serving thread that
    /// happened to take the request that made it.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// This process among a fleet's replicas (the owner of its provider-batch leases).
    instance: String,
    /// Client tokens' daily budgets: a job sent with a token spends that token's day.
    days: std::sync::OnceLock<Arc<dyn crate::budget::ClientDays>>,
}

/// A fresh job record: nothing committed, not finished.
#[allow(clippy::too_many_arguments)]
fn new_record(
    status: JobStatus,
    kind: JudgeKind,
    route: String,
    max_concurrent: usize,
    total: u64,
    idempotency_key: Option<String>,
    request_digest: Option<String>,
    options: &JobOptions,
) -> JobRecord {
    JobRecord {
        id: new_id(),
        status,
        kind,
        route,
        max_concurrent,
        total,
        created_at_ms: now_ms(),
        finished_at_ms: None,
        idempotency_key,
        request_digest,
        committed: 0,
        summary: None,
        error: None,
        counts: None,
        provider_batch: options.provider_batch,
        provider_batch_deadline_s: options.provider_batch.then(|| {
            options
                .provider_batch_deadline_s
                .unwrap_or(DEFAULT_PROVIDER_BATCH_DEADLINE_S)
        }),
        provider_batches: Vec::new(),
        budget: (!options.budget.is_empty()).then_some(options.budget),
        driver: None,
        batch_submits: Vec::new(),
        client: options.client.clone(),
    }
}

fn new_id() -> String {
    format!("job_{:016x}", rand::random::<u64>())
}

/// A job as shown to clients.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub kind: JudgeKind,
    pub judge: String,
    pub total: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub progress: Progress,
    /// The final summary, once finished.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    pub error: Option<String>,
}

/// Why an idempotency key could not be honoured.
#[derive(Debug)]
pub enum KeyConflict {
    /// The key made a job from a different request.
    DifferentRequest { key: String, job: String },
    /// The key belongs to an upload still arriving.
    InProgress { key: String, job: String },
}

/// What [`Jobs::begin_upload`] found.
pub enum Begin {
    /// A new upload: push its items, then finish it.
    Upload(Upload),
    /// The idempotency key made this job; its request digest is to be compared with the
    /// upload's (which takes reading it).
    Existing {
        view: JobView,
        digest: Option<String>,
    },
    Conflict(KeyConflict),
}

/// How often a fleet's runner looks at its job (a cancel from another replica, items to take
/// over), and how often a replica looks for jobs other replicas accepted.
const FLEET_TICK: Duration = Duration::from_millis(250);
const FLEET_SCOUT: Duration = Duration::from_secs(1);

impl Jobs {
    /// Opens the embedded store in the data directory; call [`Jobs::start`] to resume
    /// unfinished jobs and run the janitor.
    pub fn open(settings: JobSettings, judge: Arc<Judge>) -> Result<Arc<Jobs>, StoreError> {
        let store = Arc::new(Store::open(&settings.data_dir, settings.cache_bytes)?);
        Ok(Self::with_store(settings, judge, Arc::new(Embedded(store))))
    }

    /// Jobs sent with a client token spend that token's day in `days`.
    pub fn count_against(&self, days: Arc<dyn crate::budget::ClientDays>) {
        let _ = self.days.set(days);
    }

    /// The job manager over any store (one a fleet shares, say).
    pub fn with_store(
        settings: JobSettings,
        judge: Arc<Judge>,
        store: Arc<dyn JobStore>,
    ) -> Arc<Jobs> {
        Arc::new(Jobs {
            store,
            judge,
            settings,
            live: Mutex::new(HashMap::new()),
            runtime: std::sync::OnceLock::new(),
            instance: format!("{:016x}", rand::random::<u64>()),
            days: std::sync::OnceLock::new(),
        })
    }

    /// Resumes every job that was queued, running or being cancelled when the process stopped,
    /// and starts the janitor that expires finished jobs. With a store the fleet shares, also
    /// joins the jobs other replicas accept (and those a stopped replica left).
    pub async fn start(self: &Arc<Self>) -> Result<usize, StoreError> {
        let _ = self.runtime.set(tokio::runtime::Handle::current());
        let all = match self.store.list().await {
            Ok(all) => all,
            // A fleet's replica starts while its store is away: it joins the fleet's jobs once
            // the store answers (see below).
            Err(e) if self.store.fleet() => {
                tracing::warn!(error = %e, "the job store does not answer: jobs are joined when it does");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        // An upload cut off by the crash was never accepted: drop it. (In a fleet it may be
        // another replica's, still arriving: it expires by itself if it is abandoned.)
        if !self.store.fleet() {
            for job in all.iter().filter(|j| j.status == JobStatus::Uploading) {
                tracing::warn!(job = %job.id, "removing a job whose upload did not finish");
                self.store.delete(job).await?;
            }
        }
        let unfinished: Vec<JobRecord> = all
            .into_iter()
            .filter(|j| !j.status.is_finished() && j.status != JobStatus::Uploading)
            .collect();
        let n = unfinished.len();
        for job in unfinished {
            tracing::info!(job = %job.id, committed = job.committed, total = job.total, "resuming job");
            self.spawn_runner(job);
        }
        let me = Arc::downgrade(self);
        let every = self.settings.janitor_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(jobs) = me.upgrade() else { return };
                if let Err(e) = jobs.expire().await {
                    tracing::warn!(error = %e, "expiring old jobs failed");
                }
            }
        });
        if self.store.fleet() {
            let me = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(FLEET_SCOUT).await;
                    let Some(jobs) = me.upgrade() else { return };
                    jobs.join_active().await;
                }
            });
        }
        Ok(n)
    }

    /// Starts a runner for every active job of the fleet this process does not run yet.
    async fn join_active(self: &Arc<Self>) {
        let Ok(ids) = self.store.active().await else {
            return;
        };
        for id in ids {
            if self.live.lock().unwrap().contains_key(&id) {
                continue;
            }
            if let Ok(Some(record)) = self.store.get(&id).await
                && !record.status.is_finished()
                && record.status != JobStatus::Uploading
            {
                self.spawn_runner(record);
            }
        }
    }

    /// True when the store is a fleet's (other replicas run the same jobs).
    pub fn fleet(&self) -> bool {
        self.store.fleet()
    }

    /// `Ok` while the store takes writes; otherwise why not (it reopens itself and retries).
    pub async fn ready(&self) -> Result<(), String> {
        self.store.check().await
    }

    /// Stores a job's items (before it is accepted) and starts it. The same idempotency key
    /// with the same request digest returns the job made with it.
    pub async fn submit(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: String,
        max_concurrent: usize,
        items: Vec<Box<serde_json::value::RawValue>>,
        key: Option<(String, String)>,
        options: &JobOptions,
    ) -> Result<Result<(JobView, bool), KeyConflict>, StoreError> {
        let total = items.len() as u64;
        let (key, digest) = key.unzip();
        let record = new_record(
            JobStatus::Queued,
            kind,
            route,
            max_concurrent,
            total,
            key,
            digest,
            options,
        );
        let created = self.store.create(record, items).await?;
        Ok(match created {
            Created::New(record) => {
                self.spawn_runner(record.clone());
                Ok((self.view(&record), true))
            }
            Created::Existing(record) => Ok((self.view(&record), false)),
            Created::Conflict(record) => Err(conflict(record, false)),
            Created::InProgress(record) => Err(conflict(record, true)),
        })
    }

    /// Starts an upload: items arrive later through [`Upload::push`]. An idempotency key used
    /// before answers with its job instead (or with a conflict while that job is uploading).
    pub async fn begin_upload(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: String,
        max_concurrent: usize,
        idempotency_key: Option<String>,
        options: &JobOptions,
    ) -> Result<Begin, StoreError> {
        let record = new_record(
            JobStatus::Uploading,
            kind,
            route,
            max_concurrent,
            0,
            idempotency_key,
            None,
            options,
        );
        let created = self.store.create(record, Vec::new()).await?;
        Ok(match created {
            Created::New(record) => Begin::Upload(Upload {
                jobs: self.clone(),
                record,
                buffer: Vec::new(),
                next: 0,
                open: true,
            }),
            Created::Existing(record) | Created::Conflict(record) => Begin::Existing {
                digest: record.request_digest.clone(),
                view: self.view(&record),
            },
            Created::InProgress(record) => Begin::Conflict(conflict(record, true)),
        })
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobView>, StoreError> {
        Ok(self.store.get(id).await?.map(|r| self.view(&r)))
    }

    pub async fn list(&self, limit: usize) -> Result<Vec<JobView>, StoreError> {
        let all = self.store.list().await?;
        Ok(all.iter().take(limit).map(|r| self.view(r)).collect())
    }

    /// Cancels a job; finished results stay readable. A job not started yet is `cancelled` at
    /// once; a running one is `cancelling` until its runner has stopped. A finished job is left
    /// as it is.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobView>, StoreError> {
        let record = self
            .store
            .update(
                id,
                change(|r| match r.status {
                    // No runner has claimed it (its claim would have made it `running`): the
                    // claim will see this and stop.
                    JobStatus::Queued | JobStatus::Uploading => {
                        r.status = JobStatus::Cancelled;
                        r.finished_at_ms = Some(now_ms());
                        true
                    }
                    JobStatus::Running => {
                        r.status = JobStatus::Cancelling;
                        true
                    }
                    _ => false,
                }),
            )
            .await?;
        // The runner is registered before it claims the job, so a claim made before the write
        // above is always found here. (Other replicas' runners see the write within a tick.)
        if let Some(live) = self.live.lock().unwrap().get(id) {
            live.cancel.cancel();
        }
        Ok(record.map(|r| self.view(&r)))
    }

    /// Up to `limit` finished results after `after` (an index, or a completion sequence number
    /// when `by_completion`).
    pub async fn results(
        &self,
        id: &str,
        after: Option<u64>,
        by_completion: bool,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.store.results(id, after, by_completion, limit).await
    }

    fn view(&self, r: &JobRecord) -> JobView {
        let live = self.live.lock().unwrap();
        let mut progress = match (&r.counts, live.get(&r.id)) {
            _ if r.status.is_finished() => finished_progress(r),
            (Some(c), _) => fleet_progress(r, c),
            (None, Some(l)) => match &*l.summary.lock().unwrap() {
                Some((s, before)) => s.progress(l.started.elapsed(), *before),
                None => finished_progress(r),
            },
            (None, None) => finished_progress(r),
        };
        // The batches as this runner last polled them, else as stored.
        progress.provider_batches = match live
            .get(&r.id)
            .and_then(|l| l.batches.lock().unwrap().clone())
        {
            Some(b) => b.progress(),
            None => r
                .provider_batches
                .iter()
                .map(provider_batch::BatchRecord::progress)
                .collect(),
        };
        JobView {
            id: r.id.clone(),
            status: if live.contains_key(&r.id) && r.status == JobStatus::Queued {
                JobStatus::Running
            } else {
                r.status
            },
            kind: r.kind,
            judge: r.route.clone(),
            total: r.total,
            created_at_ms: r.created_at_ms,
            finished_at_ms: r.finished_at_ms,
            progress,
            summary: r.summary.clone(),
            error: r.error.clone(),
        }
    }

    /// Starts this process's runner of a job, unless it has one already. The runner is
    /// registered here, before it claims the job, so that a cancel always finds it.
    fn spawn_runner(self: &Arc<Self>, record: JobRecord) {
        let cancel = CancellationToken::new();
        let summary = Arc::new(Mutex::new(None));
        let batches: LiveBatches = Arc::new(Mutex::new(None));
        {
            let mut live = self.live.lock().unwrap();
            if live.contains_key(&record.id) {
                return;
            }
            live.insert(
                record.id.clone(),
                Live {
                    cancel: cancel.clone(),
                    summary: summary.clone(),
                    batches: batches.clone(),
                    started: Instant::now(),
                },
            );
        }
        let me = self.clone();
        let runtime = self
            .runtime
            .get()
            .cloned()
            .unwrap_or_else(tokio::runtime::Handle::current);
        runtime.spawn(async move {
            let id = record.id.clone();
            if let Err(e) = me.run(record, cancel, summary, batches).await {
                tracing::error!(job = %id, error = %e, "job failed");
                let message = e.to_string();
                let fail = change(move |r| {
                    if r.status.is_finished() {
                        return false;
                    }
                    r.status = JobStatus::Failed;
                    r.error = Some(message.clone());
                    r.finished_at_ms = Some(now_ms());
                    true
                });
                let _ = retrying(&id, || me.store.update(&id, fail.clone())).await;
            }
            me.live.lock().unwrap().remove(&id);
        });
    }

    /// Waits until this replica holds the lease on the job's provider batches (`None`: the job
    /// ended or was cancelled meanwhile), then renews it in the background until `lost` is
    /// cancelled (by the runner's end, or when another replica holds the lease after all).
    async fn drive_lease(
        &self,
        id: &str,
        cancel: &CancellationToken,
        lost: &CancellationToken,
    ) -> Result<Option<JobRecord>, StoreError> {
        let length = self
            .store
            .claim_idle()
            .map_or(Duration::from_secs(30), |d| {
                (d * 3).max(Duration::from_secs(3))
            });
        let record = loop {
            match provider_batch::lease(&*self.store, id, &self.instance, length).await? {
                None => return Ok(None),
                Some((r, _)) if r.status != JobStatus::Running => return Ok(None),
                Some((r, true)) => break r,
                Some((_, false)) => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                _ = tokio::time::sleep(length / 3) => {}
            }
        };
        tracing::info!(job = %id, "this replica drives the job's provider batches");
        let (store, id, me, lost) = (
            self.store.clone(),
            id.to_string(),
            self.instance.clone(),
            lost.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = lost.cancelled() => return,
                    _ = tokio::time::sleep(length / 3) => {}
                }
                match provider_batch::lease(&*store, &id, &me, length).await {
                    Ok(Some((_, true))) => {}
                    Ok(Some((r, false))) if r.status.is_finished() => return,
                    Ok(_) | Err(_) => {
                        lost.cancel();
                        return;
                    }
                }
            }
        });
        Ok(Some(record))
    }

    /// Takes items to run, waiting out a store that fails with an I/O error.
    async fn take(&self, id: &str, cursor: &mut u64, free: usize) -> Result<Take, StoreError> {
        let mut waited = false;
        loop {
            match self.store.take(id, cursor, free).await {
                Err(e) if e.is_transient() => {
                    if !waited {
                        tracing::warn!(job = id, error = %e, "the job waits for the store to work again");
                        waited = true;
                    }
                    tokio::time::sleep(store::RETRY_INTERVAL).await;
                }
                result => return result,
            }
        }
    }

    /// Runs a job to its end (or, in a fleet, until every item has its result): items are taken
    /// from the store as slots free up, judged with the job's concurrency, and their results
    /// committed in small groups.
    async fn run(
        self: &Arc<Self>,
        record: JobRecord,
        cancel: CancellationToken,
        live_summary: Arc<Mutex<Option<(Summary, usize)>>>,
        live_batches: LiveBatches,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let fleet = store.fleet();
        let id = record.id.clone();
        let kind = record.kind;
        let started = Instant::now();
        // A single node counts what finished before (a resumed job), one stored result at a
        // time; a fleet's store counts for every replica.
        let mut spent_before = (crate::budget::Amount::default(), 0);
        let done_before = if fleet {
            0
        } else {
            let total = record.total as usize;
            let summary = retrying(&id, || store.summarize(&id, Summary::new(kind, total))).await?;
            let before = summary.done();
            spent_before = (
                crate::budget::Amount {
                    cost_usd: summary.cost_usd.unwrap_or(0.0),
                    tokens: summary.usage.total(),
                },
                summary.not_sent(),
            );
            *live_summary.lock().unwrap() = Some((summary, before));
            before
        };
        // The claim: queued or running becomes running; a cancel that came first wins.
        let claim = change(move |r| match r.status {
            JobStatus::Queued | JobStatus::Running => {
                r.status = JobStatus::Running;
                if !fleet {
                    r.committed = done_before as u64;
                }
                true
            }
            JobStatus::Cancelling => {
                r.status = JobStatus::Cancelled;
                r.finished_at_ms = Some(now_ms());
                true
            }
            _ => false,
        });
        let claimed = retrying(&id, || store.update(&id, claim.clone())).await?;
        let Some(record) = claimed.clone().filter(|r| r.status == JobStatus::Running) else {
            tracing::info!(job = %id, "job cancelled before it started");
            // Cancelled while it was down: its provider batches are cancelled too.
            if let Some(r) = claimed {
                provider_batch::Batches::cancel_all(&self.judge, &r).await;
            }
            return Ok(());
        };
        // In a fleet, one replica at a time drives a job's provider batches (and so runs the
        // job): the others wait for its lease to run out.
        let lease_lost = CancellationToken::new();
        let _stop_renewing = lease_lost.clone().drop_guard();
        let record = if fleet && record.provider_batch {
            match self.drive_lease(&id, &cancel, &lease_lost).await? {
                Some(r) => r,
                None => return Ok(()),
            }
        } else {
            record
        };
        if fleet && record.budget.is_some() {
            // The job's driver alone spends its budget: what the stored results cost is spent.
            let total = record.total as usize;
            let s = retrying(&id, || store.summarize(&id, Summary::new(kind, total))).await?;
            spent_before = (
                crate::budget::Amount {
                    cost_usd: s.cost_usd.unwrap_or(0.0),
                    tokens: s.usage.total(),
                },
                s.not_sent(),
            );
        }
        // A resumed job's budget has spent what its stored results cost. A job sent with a
        // client token whose day has a budget spends it too: it stops where the day runs out
        // (after a restart on a later day, it goes on under that day).
        let own = record.budget.filter(|l| !l.is_empty());
        let day = record
            .client
            .as_deref()
            .and_then(|c| self.days.get()?.today_of(c));
        let budget = match (own, day) {
            (None, None) => None,
            (own, day) => {
                let b = batch::Budget::resume_under(
                    own.unwrap_or_default(),
                    "the job's budget",
                    spent_before.0,
                    day,
                );
                if own.is_some() {
                    b.add_refused(spent_before.1);
                }
                Some(b)
            }
        };
        // Provider batches, driven until this runner ends.
        let batches_stop = cancel.child_token();
        let _stop_batches = batches_stop.clone().drop_guard();
        let batches = record.provider_batch.then(|| {
            let b = provider_batch::Batches::new(
                &record,
                self.judge.clone(),
                store.clone(),
                batches_stop.clone(),
                cancel.clone(),
            );
            tokio::spawn(b.clone().drive());
            b
        });
        if let Some(b) = &batches {
            // Before any item is taken: a batch made before a restart, its id never stored,
            // holds its items.
            b.recover().await;
        }
        if let Some(b) = &batches {
            *live_batches.lock().unwrap() = Some(b.clone());
        }

        let max_c = record.max_concurrent.max(1);
        // In a fleet an item's slot is held until its result is committed: the items a replica
        // holds unfinished (taken over by others if it dies) are never more than its share.
        let flush_at_len = if fleet {
            (max_c / 4).clamp(1, 256)
        } else {
            256
        };
        let mut cursor = 0u64;
        let mut buffer: VecDeque<(WorkItem, Option<crate::budget::Reservation>)> = VecDeque::new();
        let mut inflight = FuturesUnordered::new();
        // Items whose call goes as a provider batch: they hold no slot while they wait.
        let mut batched = FuturesUnordered::new();
        let mut unacked: HashSet<String> = HashSet::new();
        let mut pending: Vec<Done> = Vec::new();
        let mut committed = done_before as u64;
        let mut drained = false;
        let mut waiting = false;
        let mut flush_at = tokio::time::Instant::now() + self.settings.commit_interval;
        let mut tick = tokio::time::interval(FLEET_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let touch_every = store
            .claim_idle()
            .map_or(Duration::from_secs(10), |d| d / 3);
        let mut touched = Instant::now();
        let claimed_counter = metrics::counter!(llm_judge_metrics::JOB_ITEMS_CLAIMED);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let busy = inflight.len() + if fleet { pending.len() } else { 0 };
            // Items that go as provider batches hold no slot: taking goes on past them. A
            // provider-batch job takes every item at once (its online ones wait in the buffer),
            // so that its batches are submitted without waiting for the online items.
            while !drained && !waiting && (buffer.is_empty() || batches.is_some()) && busy < max_c {
                match self.take(&id, &mut cursor, max_c - busy).await? {
                    Take::Items(items) => {
                        let taken_over = items.iter().filter(|w| w.claimed).count();
                        if taken_over > 0 {
                            claimed_counter.increment(taken_over as u64);
                            tracing::info!(job = %id, items = taken_over, "took over items of a replica that stopped answering");
                        }
                        for w in items {
                            let delivery = batches
                                .as_ref()
                                .and_then(|b| b.delivery(kind, &record.route, w.index, &w.item));
                            let reservation = match &budget {
                                None => None,
                                Some(b) => {
                                    let discount = delivery.as_ref().map_or(0.0, |(_, d)| *d);
                                    match self.admit(b, kind, &record.route, &w, discount) {
                                        Ok(r) => r,
                                        Err(done) => {
                                            if let Some(s) = live_summary.lock().unwrap().as_mut() {
                                                s.0.count(&done.tally);
                                            }
                                            self.judge.count_batch_item(false);
                                            pending.push(*done);
                                            continue;
                                        }
                                    }
                                }
                            };
                            // Touched from now on, so that nobody takes it over meanwhile.
                            if !w.ticket.is_empty() {
                                unacked.insert(w.ticket.clone());
                            }
                            match delivery {
                                Some((d, _)) => {
                                    batched.push(Box::pin(self.judge_item(
                                        &record.route,
                                        kind,
                                        w,
                                        reservation,
                                        Via::Deliverer(d),
                                    )));
                                }
                                None => buffer.push_back((w, reservation)),
                            }
                        }
                    }
                    Take::Wait => {
                        waiting = true;
                        // A fleet's driver has taken what there is: submit it.
                        if let Some(b) = &batches {
                            b.seal();
                        }
                    }
                    Take::Drained => {
                        drained = true;
                        if let Some(b) = &batches {
                            b.seal();
                        }
                    }
                    Take::Stopped => {
                        cancel.cancel();
                        break;
                    }
                }
            }
            if cancel.is_cancelled() {
                break;
            }
            while inflight.len() + if fleet { pending.len() } else { 0 } < max_c {
                let Some((w, reservation)) = buffer.pop_front() else {
                    break;
                };
                if !w.ticket.is_empty() {
                    unacked.insert(w.ticket.clone());
                }
                inflight.push(self.judge_item(&record.route, kind, w, reservation, Via::Online));
            }
            if inflight.is_empty() && buffer.is_empty() && batched.is_empty() {
                if drained && pending.is_empty() {
                    break;
                }
                if fleet && !pending.is_empty() {
                    // Nothing else to do here: commit now (the job may be complete with these).
                    self.flush(&id, &mut committed, &mut pending, &mut unacked, &cancel)
                        .await?;
                    waiting = false;
                    drained = false;
                    continue;
                }
                if drained {
                    self.flush(&id, &mut committed, &mut pending, &mut unacked, &cancel)
                        .await?;
                    continue;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = lease_lost.cancelled() => break,
                Some(done) = async {
                    tokio::select! {
                        Some(d) = inflight.next(), if !inflight.is_empty() => Some(d),
                        Some(d) = batched.next(), if !batched.is_empty() => Some(d),
                        else => None,
                    }
                }, if !inflight.is_empty() || !batched.is_empty() => {
                    if let Some(s) = live_summary.lock().unwrap().as_mut() {
                        s.0.count(&done.tally);
                    }
                    self.judge.count_batch_item(done.tally.ok);
                    if pending.is_empty() {
                        flush_at = tokio::time::Instant::now() + self.settings.commit_interval;
                    }
                    pending.push(done);
                    if pending.len() >= flush_at_len {
                        self.flush(&id, &mut committed, &mut pending, &mut unacked, &cancel).await?;
                    }
                }
                _ = tokio::time::sleep_until(flush_at), if !pending.is_empty() => {
                    self.flush(&id, &mut committed, &mut pending, &mut unacked, &cancel).await?;
                }
                _ = tick.tick(), if fleet => {
                    // Items may be free to take over now; a cancel may have come elsewhere.
                    waiting = false;
                    if touched.elapsed() >= touch_every && !unacked.is_empty() {
                        let tickets: Vec<String> = unacked.iter().cloned().collect();
                        let _ = store.touch(&id, &tickets).await;
                        touched = Instant::now();
                    }
                    if let Ok(Some(r)) = store.get(&id).await
                        && r.status != JobStatus::Running
                    {
                        cancel.cancel();
                    }
                }
            }
        }
        drop(inflight);
        drop(batched);
        self.flush(&id, &mut committed, &mut pending, &mut unacked, &cancel)
            .await?;
        if lease_lost.is_cancelled() && !cancel.is_cancelled() {
            // Another replica drives the job now (this one was too slow to renew its lease).
            tracing::warn!(job = %id, "another replica took over the job's provider batches");
            return Ok(());
        }
        let stopped = cancel.is_cancelled();
        if stopped && batches.is_some() {
            // Cancelled: so are the provider batches still running.
            if let Ok(Some(r)) = store.get(&id).await {
                provider_batch::Batches::cancel_all(&self.judge, &r).await;
            }
        }
        let final_summary = if fleet {
            // Another replica may have finished the job already: then there is nothing to add.
            let current = retrying(&id, || store.get(&id)).await?;
            let Some(current) = current.filter(|r| !r.status.is_finished()) else {
                return Ok(());
            };
            let total = record.total as usize;
            let mut s = retrying(&id, || store.summarize(&id, Summary::new(kind, total))).await?;
            let since = current
                .counts
                .and_then(|c| c.started_at_ms)
                .map_or(started.elapsed(), |t| {
                    Duration::from_millis(now_ms().saturating_sub(t))
                });
            s.finish(since);
            s
        } else {
            let mut s = live_summary
                .lock()
                .unwrap()
                .as_ref()
                .map(|(s, _)| s.clone())
                .unwrap_or_else(|| Summary::new(kind, record.total as usize));
            s.finish(started.elapsed());
            s
        };
        let mut final_summary = final_summary;
        if record.provider_batch {
            final_summary.show_delivery();
        }
        if let Some(b) = &budget {
            final_summary.budget = Some(b.report());
        }
        let summary = serde_json::to_value(&final_summary).ok();
        let finish = change(move |r| {
            r.status = match r.status {
                JobStatus::Cancelling => JobStatus::Cancelled,
                JobStatus::Running if stopped => JobStatus::Cancelled,
                JobStatus::Running => JobStatus::Completed,
                _ => return false,
            };
            r.finished_at_ms = Some(now_ms());
            r.summary = summary.clone();
            true
        });
        let finished = retrying(&id, || store.update(&id, finish.clone())).await?;
        tracing::info!(job = %id, status = ?finished.map(|r| r.status), "job finished");
        Ok(())
    }

    /// Reserves an item's estimate under the job's budget (`discount` off: the share a provider
    /// batch takes off its price), or makes its `budget_exhausted` entry.
    fn admit(
        &self,
        budget: &Arc<batch::Budget>,
        kind: JudgeKind,
        route: &str,
        w: &WorkItem,
        discount: f64,
    ) -> Result<Option<crate::budget::Reservation>, Box<Done>> {
        if w.item.get(INVALID_LINE).is_some() {
            return Ok(None);
        }
        let index = w.index as usize;
        let item = BatchItem::parse(kind, index, w.item.clone()).read(index);
        let Some(mut estimate) = batch::estimate(&self.judge, route, &item) else {
            return Ok(None);
        };
        estimate.cost_usd = estimate.cost_usd.map(|c| c * (1.0 - discount));
        match budget.reserve(estimate) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let v = batch::error_entry(index, crate::budget::EXHAUSTED, &e.message, None, None);
                let entry = batch::Entry::from_value(index, &v);
                Err(Box::new(Done {
                    index: w.index,
                    ticket: w.ticket.clone(),
                    json: entry.json.get().as_bytes().to_vec(),
                    tally: entry.tally,
                }))
            }
        }
    }

    /// Judges one item into what is to be committed, settling its budget reservation.
    fn judge_item(
        &self,
        route: &str,
        kind: JudgeKind,
        w: WorkItem,
        reservation: Option<crate::budget::Reservation>,
        via: Via,
    ) -> impl Future<Output = Done> + Send + 'static {
        let judge = self.judge.clone();
        let route = route.to_string();
        async move {
            let index = w.index;
            let entry = if let Some(msg) = w.item.get(INVALID_LINE).and_then(Value::as_str) {
                let v = batch::error_entry(index as usize, "invalid_line", msg, None, None);
                batch::Entry::from_value(index as usize, &v)
            } else {
                let item = BatchItem::parse(kind, index as usize, w.item);
                batch::judge_one(&judge, &route, index as usize, item, &via).await
            };
            batch::settle(reservation, &entry);
            Done {
                index,
                ticket: w.ticket,
                json: entry.json.get().as_bytes().to_vec(),
                tally: entry.tally,
            }
        }
    }

    /// Commits the results waiting in `pending`, retrying while the store fails with an I/O
    /// error (they stay in memory meanwhile); a record found not running stops the job.
    async fn flush(
        &self,
        id: &str,
        committed: &mut u64,
        pending: &mut Vec<Done>,
        unacked: &mut HashSet<String>,
        cancel: &CancellationToken,
    ) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let done = std::mem::take(pending);
        let n = done.len() as u64;
        for d in &done {
            unacked.remove(&d.ticket);
        }
        let first = *committed;
        let stored = retrying(id, || self.store.commit(id, first, done.clone())).await?;
        *committed += n;
        if stored.is_none_or(|r| r.status != JobStatus::Running) {
            cancel.cancel();
        }
        Ok(())
    }

    /// Deletes finished jobs older than the retention.
    pub async fn expire(&self) -> Result<usize, StoreError> {
        let retention = self.settings.retention.as_millis() as u64;
        let now = now_ms();
        let mut n = 0;
        for job in self.store.list().await? {
            if job.status.is_finished()
                && job
                    .finished_at_ms
                    .is_some_and(|t| now.saturating_sub(t) >= retention)
            {
                self.store.delete(&job).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn conflict(record: JobRecord, in_progress: bool) -> KeyConflict {
    let key = record.idempotency_key.unwrap_or_default();
    if in_progress {
        KeyConflict::InProgress {
            key,
            job: record.id,
        }
    } else {
        KeyConflict::DifferentRequest {
            key,
            job: record.id,
        }
    }
}

/// The progress of a job a fleet runs, from the counts its store keeps.
fn fleet_progress(r: &JobRecord, c: &Counts) -> Progress {
    let done = r.committed as usize;
    let secs = c
        .started_at_ms
        .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let left = (r.total as usize).saturating_sub(done) as f64;
    Progress {
        done,
        total: r.total as usize,
        correct: c.correct as usize,
        incorrect: c.incorrect as usize,
        unscored: c.unscored as usize,
        errors: c.errors as usize,
        items_per_second: (rate * 10.0).round() / 10.0,
        eta_s: (rate > 0.0).then(|| (left / rate * 10.0).round() / 10.0),
        provider_batches: Vec::new(),
    }
}

/// The progress of a job not running here (finished, or not yet resumed).
fn finished_progress(r: &JobRecord) -> Progress {
    let s = r.summary.as_ref();
    let n = |k: &str| s.and_then(|s| s[k].as_u64()).unwrap_or(0) as usize;
    Progress {
        done: r.committed as usize,
        total: r.total as usize,
        correct: n("correct"),
        incorrect: n("incorrect"),
        unscored: n("unscored"),
        errors: n("errors"),
        items_per_second: s
            .and_then(|s| s["items_per_second"].as_f64())
            .unwrap_or(0.0),
        eta_s: None,
        provider_batches: Vec::new(),
    }
}

/// An NDJSON upload in progress: items are written in pages as they arrive, so an upload of a
/// million items never sits in memory. An upload dropped before it finished (the client went
/// away) is removed with its items, and its idempotency key is free again.
pub struct Upload {
    jobs: Arc<Jobs>,
    record: JobRecord,
    buffer: Vec<Value>,
    next: u64,
    /// Neither finished nor abandoned yet.
    open: bool,
}

impl Upload {
    pub fn count(&self) -> u64 {
        self.next + self.buffer.len() as u64
    }

    /// Adds one item (or an invalid-line marker).
    pub async fn push(&mut self, item: Value) -> Result<(), StoreError> {
        self.buffer.push(item);
        if self.buffer.len() >= 2000 {
            self.write().await?;
        }
        Ok(())
    }

    async fn write(&mut self) -> Result<(), StoreError> {
        let items = std::mem::take(&mut self.buffer);
        let first = self.next;
        self.next += items.len() as u64;
        self.jobs
            .store
            .append_items(&self.record.id, first, items)
            .await
    }

    /// Stores the last items, marks the job queued (with the digest of the upload that made
    /// it) and starts it.
    pub async fn finish(mut self, digest: Option<String>) -> Result<JobView, StoreError> {
        self.write().await?;
        let total = self.next;
        let queue = change(move |r| {
            if r.status != JobStatus::Uploading {
                return false; // cancelled while it was arriving
            }
            r.status = JobStatus::Queued;
            r.total = total;
            r.request_digest = digest.clone();
            true
        });
        let record = self.jobs.store.update(&self.record.id, queue).await?;
        self.open = false;
        let record = record.ok_or_else(|| StoreError::other("the upload's job disappeared"))?;
        if record.status == JobStatus::Queued {
            self.jobs.spawn_runner(record.clone());
        }
        Ok(self.jobs.view(&record))
    }

    /// Drops a failed upload and everything stored of it.
    pub async fn abandon(mut self) {
        self.open = false;
        let _ = self.jobs.store.delete(&self.record).await;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // The request was dropped mid-upload: remove what was stored, in a task of its own.
        let (store, r) = (self.jobs.store.clone(), self.record.clone());
        let remove = async move {
            if let Err(e) = store.delete(&r).await {
                tracing::warn!(job = %r.id, error = %e, "removing an unfinished upload failed");
            }
        };
        if let Some(rt) = self
            .jobs
            .runtime
            .get()
            .cloned()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        {
            drop(rt.spawn(remove));
        }
    }
}
