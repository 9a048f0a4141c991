//! Committing a job's results: each finished item is counted and waits with the others until
//! there are enough of them or the commit interval has passed; then they are committed
//! together.

use crate::jobs::record::JobStatus;
use crate::jobs::store::{Done, StoreError, retrying};

use super::state::{Flow, Run};

impl Run<'_> {
    /// Counts a finished item, and adds it to the results waiting to be committed (committing
    /// them when there are enough).
    pub(super) async fn collect(&self, flow: &mut Flow, done: Done) -> Result<(), StoreError> {
        if let Some(s) = self.summary.lock().unwrap().as_mut() {
            s.0.count(&done.tally);
        }
        self.jobs.judge.count_batch_item(done.tally.ok);
        if flow.pending.is_empty() {
            flow.flush_at = tokio::time::Instant::now() + self.jobs.settings.commit_interval;
        }
        flow.pending.push(done);
        if flow.pending.len() >= flow.flush_at_len {
            self.flush(flow).await?;
        }
        Ok(())
    }

    /// Commits the results waiting in `pending`, retrying while the store fails with an I/O
    /// error (they stay in memory meanwhile); a record found not running stops the job.
    pub(super) async fn flush(&self, flow: &mut Flow) -> Result<(), StoreError> {
        if flow.pending.is_empty() {
            return Ok(());
        }
        let id = self.record.id.as_str();
        let done = std::mem::take(&mut flow.pending);
        let n = done.len() as u64;
        for d in &done {
            flow.unacked.remove(&d.ticket);
        }
        let first = flow.committed;
        let stored = retrying(id, || self.jobs.store.commit(id, first, done.clone())).await?;
        flow.committed += n;
        if stored.is_none_or(|r| r.status != JobStatus::Running) {
            self.cancel.cancel();
        }
        Ok(())
    }
}
