//! Polling a job's provider batch until it is over (cancelling it at the provider once the
//! job's deadline passes), then handing each of its items the outcome it waits for.

use std::sync::Arc;
use std::time::Duration;

use super::batches::Batches;
use crate::jobs::record::BatchRecord;
use llm_judge_providers::provider_batch::ItemFailure;

/// How long a batch cancelled at the deadline is waited for (what it ran keeps its batch
/// answer) before its items are given up on and sent online.
const CANCEL_GRACE: Duration = Duration::from_secs(60);
/// Tries to read a batch's results.
const RESULT_TRIES: usize = 5;

impl Batches {
    /// Starts the poller of batch `n` unless it runs.
    pub(super) fn ensure_polling(self: &Arc<Self>, n: usize) {
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
}
