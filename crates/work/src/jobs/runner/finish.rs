//! A job's runner at its end: what is in flight is dropped, what waits is committed, the
//! provider batches of a cancelled job are cancelled, and the job's final status and summary
//! are written (unless another replica drives or finished the job).

use std::time::Duration;

use crate::batch::Summary;
use crate::jobs::provider_batch::Batches;
use crate::jobs::record::{JobStatus, now_ms};
use crate::jobs::store::{StoreError, change, retrying};

use super::state::{Flow, Run};

impl Run<'_> {
    /// Ends the job this runner ran: it is `completed`, or `cancelled` when it was stopped.
    pub(super) async fn finish(&self, mut flow: Flow) -> Result<(), StoreError> {
        let id = self.record.id.as_str();
        flow.inflight.clear();
        flow.batched.clear();
        self.flush(&mut flow).await?;
        if self.lease_lost.is_cancelled() && !self.cancel.is_cancelled() {
            // Another replica drives the job now (this one was too slow to renew its lease).
            tracing::warn!(job = %id, "another replica took over the job's provider batches");
            return Ok(());
        }
        let stopped = self.cancel.is_cancelled();
        if stopped && self.batches.is_some() {
            // Cancelled: so are the provider batches still running.
            if let Ok(Some(r)) = self.jobs.store.get(id).await {
                Batches::cancel_all(&self.jobs.judge, &r).await;
            }
        }
        let Some(mut final_summary) = self.final_summary().await? else {
            return Ok(());
        };
        if self.record.provider_batch {
            final_summary.show_delivery();
        }
        if let Some(b) = &self.budget {
            final_summary.budget = Some(b.report());
        }
        let summary = serde_json::to_value(&final_summary).ok();
        let gave_up = flow.gave_up.take();
        let finish = change(move |r| {
            r.status = match r.status {
                JobStatus::Cancelling => JobStatus::Cancelled,
                JobStatus::Running if stopped => JobStatus::Cancelled,
                JobStatus::Running if gave_up.is_some() => JobStatus::Failed,
                JobStatus::Running => JobStatus::Completed,
                _ => return false,
            };
            if r.status == JobStatus::Failed {
                r.error.clone_from(&gave_up);
            }
            r.finished_at_ms = Some(now_ms());
            r.summary = summary.clone();
            true
        });
        let store = &self.jobs.store;
        let finished = retrying(id, || store.update(id, finish.clone())).await?;
        let status = finished.map_or("unknown", |r| r.status.as_str());
        tracing::info!(job = %id, status, "job finished");
        Ok(())
    }

    /// The job's summary at its end: in a fleet, counted from every stored result (`None` when
    /// another replica finished the job already: then there is nothing to add); on a single
    /// node, as this runner counted.
    async fn final_summary(&self) -> Result<Option<Summary>, StoreError> {
        let (id, kind, total) = (
            self.record.id.as_str(),
            self.record.kind,
            self.record.total as usize,
        );
        if !self.fleet {
            let mut s = self
                .summary
                .lock()
                .unwrap()
                .as_ref()
                .map(|(s, _)| s.clone())
                .unwrap_or_else(|| Summary::new(kind, total));
            s.finish(self.started.elapsed());
            return Ok(Some(s));
        }
        let store = &self.jobs.store;
        let current = retrying(id, || store.get(id)).await?;
        let Some(current) = current.filter(|r| !r.status.is_finished()) else {
            return Ok(None);
        };
        let mut s = retrying(id, || store.summarize(id, Summary::new(kind, total))).await?;
        let since = current
            .counts
            .and_then(|c| c.started_at_ms)
            .map_or(self.started.elapsed(), |t| {
                Duration::from_millis(now_ms().saturating_sub(t))
            });
        s.finish(since);
        Ok(Some(s))
    }
}
