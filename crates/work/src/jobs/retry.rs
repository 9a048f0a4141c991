//! Sending a finished job's errored items again: their results removed, the job queued and run
//! again, its summary and progress counted anew once it ends.

use std::sync::Arc;

use super::manager::Jobs;
use super::record::{JobRecord, JobStatus};
use super::store::{StoreError, change};
use super::view::JobView;

/// What asking to send a job's errored items again did.
pub enum Retried {
    /// No such job, or the tenant may not see it.
    NotFound,
    /// Nothing changed: the job has not finished (its view), or cannot run again (why).
    Refused(Box<JobView>, String),
    /// The job is queued again: its errored items (`requeued` of them) and any item without a
    /// result are run.
    Queued { view: Box<JobView>, requeued: u64 },
}

impl Jobs {
    /// Sends the errored items of a finished (or failed, or cancelled) job again, with the items
    /// it never judged. Twice in a row is harmless: the second finds the job queued or running
    /// and changes nothing.
    pub async fn retry(
        self: &Arc<Self>,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Retried, StoreError> {
        let Some(before) = self.store.get(id).await?.filter(|r| r.visible_to(tenant)) else {
            return Ok(Retried::NotFound);
        };
        if let Some(why) = cannot_run_again(&before) {
            return Ok(Retried::Refused(Box::new(self.view(&before)), why));
        }
        let requeue = change(|r| {
            if cannot_run_again(r).is_some() {
                return false;
            }
            r.status = JobStatus::Queued;
            r.finished_at_ms = None;
            r.summary = None;
            r.error = None;
            true
        });
        let Some((record, requeued)) = self.store.retry_errors(id, requeue).await? else {
            return Ok(Retried::NotFound);
        };
        if record.status != JobStatus::Queued {
            let why = cannot_run_again(&record)
                .unwrap_or_else(|| format!("the job is {}", record.status.as_str()));
            return Ok(Retried::Refused(Box::new(self.view(&record)), why));
        }
        tracing::info!(job = %id, requeued, "the job's errored items are sent again");
        self.spawn_runner(record.clone());
        Ok(Retried::Queued {
            view: Box::new(self.view(&record)),
            requeued,
        })
    }
}

/// Why a job cannot be run again now, if it cannot.
fn cannot_run_again(r: &JobRecord) -> Option<String> {
    if !r.status.is_finished() {
        return Some(format!(
            "the job is {}: its errored items can be sent again once it has finished",
            r.status.as_str()
        ));
    }
    if r.error.as_deref() == Some(super::facade::STRANDED) {
        return Some(
            "the job's upload broke off before its items had all arrived: send the upload again"
                .into(),
        );
    }
    None
}
