//! Starting the job manager and keeping it: unfinished jobs are resumed, finished ones expire
//! after the retention, and in a fleet the jobs other replicas accepted are joined.

use std::sync::Arc;
use std::time::Duration;

use super::manager::Jobs;
use super::record::{JobRecord, JobStatus, now_ms};
use super::store::StoreError;

/// How often a replica looks for jobs other replicas accepted.
const FLEET_SCOUT: Duration = Duration::from_secs(1);

impl Jobs {
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

    /// Deletes finished jobs older than the retention.
    pub async fn expire(&self) -> Result<usize, StoreError> {
        let retention = self.settings.retention.as_millis() as u64;
        let now = now_ms();
        let mut n = 0;
        for job in self.store.list().await? {
            if job.status == JobStatus::Uploading {
                // In a fleet: an upload whose replica stopped is marked failed.
                self.free_stranded(&job).await?;
                continue;
            }
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
