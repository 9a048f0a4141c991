//! A job's runner before its first item: what the stored results counted and spent, the claim
//! (a cancel that came first wins), a fleet's lease on the job's provider batches, the job's
//! budget, and its provider batches.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::batch::Summary;
use crate::budget::{Amount, Budget};
use crate::jobs::manager::{Jobs, LiveBatches, LiveSummary};
use crate::jobs::provider_batch::{self, Batches};
use crate::jobs::record::{JobRecord, JobStatus, now_ms};
use crate::jobs::store::{StoreError, change, retrying};

/// What a job's stored results spent: their cost, and the items its budget did not send.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Spent {
    amount: Amount,
    refused: usize,
}

impl Spent {
    fn of(summary: &Summary) -> Spent {
        Spent {
            amount: Amount {
                cost_usd: summary.cost_usd.unwrap_or(0.0),
                tokens: summary.usage.total(),
            },
            refused: summary.not_sent(),
        }
    }
}

impl Jobs {
    /// A single node's runner counts what finished before (a resumed job), one stored result at
    /// a time, into the job's live summary: how many were done, and what they spent.
    pub(super) async fn count_before(
        &self,
        record: &JobRecord,
        live: &LiveSummary,
    ) -> Result<(usize, Spent), StoreError> {
        let summary = self.stored_summary(record).await?;
        let before = summary.done();
        let spent = Spent::of(&summary);
        *live.lock().unwrap() = Some((summary, before));
        Ok((before, spent))
    }

    /// What a job's stored results spent (a fleet's driver alone spends the job's budget).
    pub(super) async fn spent(&self, record: &JobRecord) -> Result<Spent, StoreError> {
        Ok(Spent::of(&self.stored_summary(record).await?))
    }

    /// Every stored result of the job, counted.
    async fn stored_summary(&self, record: &JobRecord) -> Result<Summary, StoreError> {
        let (id, kind, total) = (&record.id, record.kind, record.total as usize);
        retrying(id, || self.store.summarize(id, Summary::new(kind, total))).await
    }

    /// The claim: queued or running becomes running; a cancel that came first wins. The job as
    /// claimed, or `None` when it is not running (cancelled before it started: its provider
    /// batches are cancelled too).
    pub(super) async fn claim(
        &self,
        id: &str,
        fleet: bool,
        done_before: usize,
    ) -> Result<Option<JobRecord>, StoreError> {
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
        let claimed = retrying(id, || self.store.update(id, claim.clone())).await?;
        let Some(record) = claimed.clone().filter(|r| r.status == JobStatus::Running) else {
            tracing::info!(job = %id, "job cancelled before it started");
            // Cancelled while it was down: its provider batches are cancelled too.
            if let Some(r) = claimed {
                Batches::cancel_all(&self.judge, &r).await;
            }
            return Ok(None);
        };
        Ok(Some(record))
    }

    /// Waits until this replica holds the lease on the job's provider batches (`None`: the job
    /// ended or was cancelled meanwhile), then renews it in the background until `lost` is
    /// cancelled (by the runner's end, or when another replica holds the lease after all).
    pub(super) async fn drive_lease(
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

    /// The job's budget, having spent what its stored results cost. A job sent with a client
    /// token whose day has a budget spends it too: it stops where the day runs out (after a
    /// restart on a later day, it goes on under that day).
    pub(super) fn budget_of(&self, record: &JobRecord, spent: Spent) -> Option<Arc<Budget>> {
        let own = record.budget.filter(|l| !l.is_empty());
        let day = record
            .client
            .as_deref()
            .and_then(|c| self.days.get()?.today_of(c));
        match (own, day) {
            (None, None) => None,
            (own, day) => {
                let b = Budget::resume_under(
                    own.unwrap_or_default(),
                    "the job's budget",
                    spent.amount,
                    day,
                );
                if own.is_some() {
                    b.add_refused(spent.refused);
                }
                Some(b)
            }
        }
    }

    /// The job's provider batches, when it makes them: driven until `stop`, the batches made
    /// before a restart found again, and shown in the job's progress.
    pub(super) async fn start_batches(
        &self,
        record: &JobRecord,
        stop: &CancellationToken,
        cancel: &CancellationToken,
        live: &LiveBatches,
    ) -> Option<Arc<Batches>> {
        if !record.provider_batch {
            return None;
        }
        let b = Batches::new(
            record,
            self.judge.clone(),
            self.store.clone(),
            stop.clone(),
            cancel.clone(),
        );
        tokio::spawn(b.clone().drive());
        // Before any item is taken: a batch made before a restart, its id never stored, holds
        // its items.
        b.recover().await;
        *live.lock().unwrap() = Some(b.clone());
        Some(b)
    }
}
