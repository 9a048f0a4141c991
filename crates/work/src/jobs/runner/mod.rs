//! A job's runner: started for every job this process runs, it claims the job, takes its items
//! from the store as slots free up, admits them under the job's budget, judges them (online, or
//! through the job's provider batches), commits their results in small groups, and writes the
//! job's end.
//!
//! The runner is registered before it claims the job, so that a cancel always finds it; a
//! cancel that comes first wins the claim. A store that fails with an I/O error is waited out:
//! results not committed yet stay in memory until it works again.

mod answers;
mod commit;
mod finish;
mod item;
mod pause;
mod start;
mod state;
mod take;
mod work;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::manager::{Jobs, Live, LiveBatches, LiveSummary, LiveWaiting};
use super::record::{JobRecord, JobStatus, now_ms};
use super::store::{StoreError, change, retrying};
use start::Spent;
use state::{Flow, Run};

/// What a runner shares with the job's views while it runs.
struct LiveParts {
    summary: LiveSummary,
    batches: LiveBatches,
    waiting: LiveWaiting,
}

impl Jobs {
    /// Starts this process's runner of a job, unless it has one already. The runner is
    /// registered here, before it claims the job, so that a cancel always finds it.
    pub(super) fn spawn_runner(self: &Arc<Self>, record: JobRecord) {
        let cancel = CancellationToken::new();
        let summary = Arc::new(Mutex::new(None));
        let batches: LiveBatches = Arc::new(Mutex::new(None));
        let waiting: LiveWaiting = Arc::new(Mutex::new(None));
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
                    waiting: waiting.clone(),
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
            let live = LiveParts {
                summary,
                batches,
                waiting,
            };
            if let Err(e) = me.run(record, cancel, live).await {
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

    /// Runs a job to its end (or, in a fleet, until every item has its result): items are taken
    /// from the store as slots free up, judged with the job's concurrency, and their results
    /// committed in small groups.
    async fn run(
        &self,
        record: JobRecord,
        cancel: CancellationToken,
        live: LiveParts,
    ) -> Result<(), StoreError> {
        let LiveParts {
            summary,
            batches: live_batches,
            waiting,
        } = live;
        let fleet = self.store.fleet();
        let started = Instant::now();
        // A single node counts what finished before (a resumed job), one stored result at a
        // time; a fleet's store counts for every replica.
        let (done_before, mut spent) = if fleet {
            (0, Spent::default())
        } else {
            self.count_before(&record, &summary).await?
        };
        let Some(record) = self.claim(&record.id, fleet, done_before).await? else {
            return Ok(());
        };
        // In a fleet, one replica at a time drives a job's provider batches (and so runs the
        // job): the others wait for its lease to run out.
        let lease_lost = CancellationToken::new();
        let _stop_renewing = lease_lost.clone().drop_guard();
        let record = if fleet && record.provider_batch {
            match self.drive_lease(&record.id, &cancel, &lease_lost).await? {
                Some(r) => r,
                None => return Ok(()),
            }
        } else {
            record
        };
        if fleet && record.budget.is_some() {
            // The job's driver alone spends its budget: what the stored results cost is spent.
            spent = self.spent(&record).await?;
        }
        let budget = self.budget_of(&record, spent);
        // Provider batches, driven until this runner ends.
        let batches_stop = cancel.child_token();
        let _stop_batches = batches_stop.clone().drop_guard();
        let batches = self
            .start_batches(&record, &batches_stop, &cancel, &live_batches)
            .await;
        let run = Run {
            jobs: self,
            record,
            fleet,
            cancel,
            lease_lost,
            summary,
            budget,
            batches,
            waiting,
            started,
        };
        let mut flow = Flow::new(&run, done_before as u64);
        run.work(&mut flow).await?;
        run.finish(flow).await
    }
}
