//! Making a job's provider batches: what its items queue is submitted in rounds, and after a
//! restart the batches being made when the service stopped are looked for at the provider.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::batches::Batches;
use crate::jobs::record::{BatchRecord, SubmitMark, now_ms};
use llm_judge_providers::provider_batch::{Api, ItemFailure, Queued};

/// Requests that make a round submitted before every item has been taken: what waits to be
/// submitted is at most about twice this many requests (taking items pauses beyond that).
pub(super) const ROUND: usize = 4_000;

impl Batches {
    /// Before any item is taken: finds the batches the job was making when its service
    /// stopped (made at the provider, their ids never stored) and takes them as its own, so
    /// that their items are not sent again. Where they cannot be looked for (Anthropic's
    /// batches carry no label; the provider does not answer), the items are sent again, and
    /// a warning says a batch may be billed twice.
    pub async fn recover(self: &Arc<Self>) {
        for mark in &self.unfinished {
            let Some(client) = self.judge.pool().batch_client(&mark.provider).cloned() else {
                continue;
            };
            let since = (mark.since_ms / 1000)
                .saturating_sub(llm_judge_providers::provider_batch::CLOCK_SLACK_S);
            let found = match client.labelled(&self.job, since).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(job = %self.job, provider = %mark.provider, error = %e, "could not look for a provider batch made before the restart: its items are sent again, and that batch, if it was made, is billed too");
                    continue;
                }
            };
            if found.is_empty() && client.api() == Api::Anthropic {
                tracing::warn!(job = %self.job, provider = %mark.provider, "the service stopped while making a provider batch, and Anthropic's batches cannot be looked for by job: its items are sent again, and that batch, if it was made, is billed too");
            }
            let known: HashSet<String> = {
                let s = self.state.lock().unwrap();
                s.records.iter().map(|r| r.id.clone()).collect()
            };
            let new: Vec<_> = found
                .into_iter()
                .filter(|h| !known.contains(&h.id))
                .collect();
            for h in &new {
                tracing::info!(job = %self.job, provider = %mark.provider, batch = %h.id, requests = h.requests.len(), "found a provider batch made before the restart: it is polled, not made again");
            }
            if !new.is_empty() {
                let records: Vec<BatchRecord> = new
                    .iter()
                    .map(|h| BatchRecord::new(&mark.provider, h))
                    .collect();
                self.record(&records, None).await;
                let mut s = self.state.lock().unwrap();
                for r in records {
                    s.add(r);
                }
            }
        }
        if !self.unfinished.is_empty() {
            self.record(&[], None).await;
        }
    }

    /// Submits what the job's items queue, in rounds: once [`ROUND`] requests are queued, and
    /// the last once every item taken has queued its request or finished and none is left to
    /// take. Runs until the job's runner stops.
    pub async fn drive(self: Arc<Self>) {
        loop {
            let round = {
                let mut s = self.state.lock().unwrap();
                let queued: usize = s.queued.values().map(Vec::len).sum();
                let late = tokio::time::Instant::now() >= self.deadline;
                let ready = queued >= ROUND || (s.outstanding == 0 && s.sealed);
                if queued > 0 && (ready || late) {
                    Some((std::mem::take(&mut s.queued), late))
                } else {
                    None
                }
            };
            match round {
                Some((queued, false)) => {
                    for (provider, requests) in queued {
                        self.submit(&provider, requests).await;
                    }
                    // Room to queue again: the runner may take items again.
                    self.answers.notify_one();
                }
                Some((queued, true)) => {
                    // Past the deadline: no new batch; these go online.
                    for q in queued.into_values().flatten() {
                        self.post(q.id.index, Err(ItemFailure::Expired), String::new());
                    }
                }
                None => {}
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep_until(self.deadline), if tokio::time::Instant::now() < self.deadline => {}
                // And now and then anyway: the state decides, not the wake-up.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Creates the batches of one provider's requests and stores them with the job; requests
    /// that could not go into a batch go online.
    async fn submit(self: &Arc<Self>, provider: &str, requests: Vec<Queued>) {
        let Some(client) = self.judge.pool().batch_client(provider).cloned() else {
            for q in &requests {
                self.post(q.id.index, Err(ItemFailure::Missing), String::new());
            }
            return;
        };
        // Marked first: a service that stops before the ids below are stored looks for what
        // it made instead of making it again.
        let mark = SubmitMark {
            provider: provider.to_string(),
            since_ms: now_ms(),
        };
        self.record(&[], Some(mark)).await;
        let (made, refused, failed) = match client.submit(&requests, Some(&self.job)).await {
            Ok(sub) => (sub.batches, sub.refused, None),
            Err(e) => {
                tracing::warn!(job = %self.job, provider, error = %e.error, "creating a provider batch failed: its items go online");
                (e.done.batches, e.done.refused, Some(e.error))
            }
        };
        let records: Vec<BatchRecord> =
            made.iter().map(|h| BatchRecord::new(provider, h)).collect();
        self.record(&records, None).await;
        if !records.is_empty() {
            for r in &records {
                tracing::info!(job = %self.job, provider, batch = %r.id, requests = r.total, "provider batch created");
            }
            if self.cancelled.is_cancelled() {
                // Cancelled while these were being made: they are cancelled too.
                for h in &made {
                    if let Err(e) = client.cancel(h).await {
                        tracing::warn!(job = %self.job, batch = %h.id, error = %e, "cancelling a provider batch failed");
                    }
                }
            }
        }
        let mut inside = HashSet::new();
        {
            let mut s = self.state.lock().unwrap();
            for r in records {
                inside.extend(r.indices());
                s.add(r);
            }
        }
        for (id, e) in refused {
            inside.insert(id.index);
            self.post(id.index, Err(ItemFailure::Errored(e)), String::new());
        }
        if let Some(e) = failed {
            for q in &requests {
                if !inside.contains(&q.id.index) {
                    self.post(
                        q.id.index,
                        Err(ItemFailure::BatchFailed(e.to_string())),
                        String::new(),
                    );
                }
            }
        }
        let made: Vec<usize> = {
            let s = self.state.lock().unwrap();
            requests
                .iter()
                .filter_map(|q| s.of_item.get(&q.id.index).copied())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for n in made {
            self.ensure_polling(n);
        }
    }
}
