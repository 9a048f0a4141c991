//! Items of a job's provider batches between their call being queued and their result: while
//! the batch runs, each is a record (its index, ticket and budget reservation); when the batch
//! gives back its outcome, the item is read from the store again and judged with that answer.

use std::collections::HashMap;

use crate::batch;
use crate::budget::Reservation;
use crate::jobs::store::{Done, StoreError, WorkItem};
use llm_judge_pool::Via;

use super::item::judge_item;
use super::state::{BATCHED_AT_ONCE, Flow, Parked, Run};

impl Run<'_> {
    /// An item's call waits in a provider batch now: the item is kept as a record (and judged
    /// at once should its batch have answered already).
    pub(super) fn parked(
        &self,
        flow: &mut Flow,
        done: Done,
        reservation: Option<Reservation>,
    ) -> Result<(), StoreError> {
        flow.parked.insert(
            done.index,
            Parked {
                ticket: done.ticket,
                reservation,
                since: tokio::time::Instant::now(),
            },
        );
        if let Some(mail) = flow.early.remove(&done.index) {
            flow.ready.push_back((done.index, mail));
        }
        Ok(())
    }

    /// Judges the items whose batch gave back their outcome, while fewer than
    /// [`BATCHED_AT_ONCE`] items of provider batches are being judged.
    pub(super) async fn take_answers(&self, flow: &mut Flow) -> Result<(), StoreError> {
        let Some(batches) = &self.batches else {
            return Ok(());
        };
        let (kind, route) = (self.record.kind, self.record.route.as_str());
        loop {
            let room = BATCHED_AT_ONCE.saturating_sub(flow.batched.len());
            if room == 0 {
                return Ok(());
            }
            let mut got: Vec<_> = flow.ready.drain(..room.min(flow.ready.len())).collect();
            if got.len() < room {
                got.extend(batches.answered(room - got.len()));
            }
            if got.is_empty() {
                return Ok(());
            }
            let mut wanted = Vec::with_capacity(got.len());
            let mut mail = HashMap::with_capacity(got.len());
            for (index, m) in got {
                match flow.parked.get(&index) {
                    Some(p) => {
                        wanted.push((index, p.ticket.clone()));
                        mail.insert(index, m);
                    }
                    // Not parked yet (or no longer held here): kept until it is.
                    None => {
                        flow.early.insert(index, m);
                    }
                }
            }
            if wanted.is_empty() {
                continue;
            }
            for w in self.stored_items(&wanted).await? {
                let (Some(p), Some(m)) = (flow.parked.remove(&w.index), mail.remove(&w.index))
                else {
                    continue;
                };
                let via = Via::Deliverer(batches.answer(m, p.since.elapsed()));
                let w = WorkItem {
                    ticket: p.ticket,
                    ..w
                };
                let item = judge_item(&self.jobs.judge, route, kind, w, p.reservation, via);
                flow.batched.push(Box::pin(item));
            }
            // What the store no longer holds cannot be judged: an error entry says so.
            for index in mail.into_keys() {
                let Some(p) = flow.parked.remove(&index) else {
                    continue;
                };
                let message = "the item could not be read back from the job store";
                tracing::warn!(job = %self.record.id, index, "{message} when its provider batch answered");
                let v = batch::error_entry(index as usize, "item_lost", message, None, None);
                let entry = batch::Entry::from_value(index as usize, &v);
                batch::settle(p.reservation, &entry);
                let done = Done {
                    index,
                    ticket: p.ticket,
                    json: entry.json.get().as_bytes().to_vec(),
                    tally: entry.tally,
                };
                self.collect(flow, done).await?;
            }
        }
    }

    /// Reads items from the store again, waiting out a store that fails with an I/O error.
    async fn stored_items(&self, wanted: &[(u64, String)]) -> Result<Vec<WorkItem>, StoreError> {
        let mut waited = false;
        loop {
            match self.jobs.store.items(&self.record.id, wanted).await {
                Err(e) if e.is_transient() => self.wait_for_store(&e, &mut waited).await,
                result => return result,
            }
        }
    }
}
