//! Taking a job's items from the store, and placing each where it waits for its call: among
//! the items of the job's provider batches, or in the buffer for an online slot.

use crate::jobs::store::{RETRY_INTERVAL, StoreError, Take, WorkItem};
use llm_judge_pool::Via;

use super::item::{Admission, admit, judge_item};
use super::state::{BATCHED_AT_ONCE, Flow, Run};

impl Run<'_> {
    /// Takes items while slots are free. Items that go as provider batches hold no slot:
    /// taking goes on past them (while fewer than [`BATCHED_AT_ONCE`] of them are being judged;
    /// each then waits as a record). A provider-batch job takes every item (its online ones wait
    /// in the buffer), so that its batches are submitted without waiting for the online items.
    pub(super) async fn take_items(&self, flow: &mut Flow) -> Result<(), StoreError> {
        self.place_deferred(flow);
        let busy = flow.busy(self.fleet);
        while flow.deferred.is_empty()
            && flow.pause.is_none()
            && !flow.drained
            && !flow.waiting
            && (flow.buffer.is_empty() || self.batches.is_some())
            && flow.batched.len() < BATCHED_AT_ONCE
            && self.batches.as_ref().is_none_or(|b| b.has_room())
            && busy < flow.max_c
        {
            match self.take(&mut flow.cursor, flow.max_c - busy).await? {
                Take::Items(items) => {
                    let taken_over = items.iter().filter(|w| w.claimed).count();
                    if taken_over > 0 {
                        flow.claimed_counter.increment(taken_over as u64);
                        tracing::info!(job = %self.record.id, items = taken_over, "took over items of a replica that stopped answering");
                    }
                    for w in items {
                        // Behind an item waiting for budget room, the rest wait in order.
                        if !flow.deferred.is_empty() {
                            flow.deferred.push_back(w);
                        } else if let Some(w) = self.place(flow, w) {
                            flow.deferred.push_back(w);
                        }
                    }
                }
                Take::Wait => {
                    flow.waiting = true;
                    // A fleet's driver has taken what there is: submit it.
                    if let Some(b) = &self.batches {
                        b.seal();
                    }
                }
                Take::Drained => {
                    flow.drained = true;
                    if let Some(b) = &self.batches {
                        b.seal();
                    }
                }
                Take::Stopped => {
                    self.cancel.cancel();
                    break;
                }
            }
        }
        Ok(())
    }

    /// Takes items to run, waiting out a store that fails with an I/O error.
    async fn take(&self, cursor: &mut u64, free: usize) -> Result<Take, StoreError> {
        let id = self.record.id.as_str();
        let mut waited = false;
        loop {
            match self.jobs.store.take(id, cursor, free).await {
                Err(e) if e.is_transient() => self.wait_for_store(&e, &mut waited).await,
                result => return result,
            }
        }
    }

    /// After the store failed with an I/O error: waits a while before the next try, saying
    /// once (`waited`) that the job waits.
    pub(super) async fn wait_for_store(&self, e: &StoreError, waited: &mut bool) {
        if !*waited {
            tracing::warn!(job = %self.record.id, error = %e, "the job waits for the store to work again");
            *waited = true;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }

    /// Places the items that waited for budget room, in order, while they fit.
    fn place_deferred(&self, flow: &mut Flow) {
        while let Some(w) = flow.deferred.pop_front() {
            if let Some(w) = self.place(flow, w) {
                flow.deferred.push_front(w);
                break;
            }
        }
    }

    /// Admits a taken item under the job's budget and puts it where it waits: its provider
    /// batch, or the buffer. An item the budget refuses is a result at once; one that fits once
    /// items in flight settle is handed back, to wait for them.
    pub(super) fn place(&self, flow: &mut Flow, w: WorkItem) -> Option<WorkItem> {
        let (kind, route) = (self.record.kind, self.record.route.as_str());
        let delivery = self
            .batches
            .as_ref()
            .and_then(|b| b.delivery(kind, route, w.index, &w.item));
        let reservation = match &self.budget {
            None => None,
            Some(b) => {
                let discount = delivery.as_ref().map_or(0.0, |(_, d)| *d);
                let batched = delivery.is_some();
                match admit(&self.jobs.judge, b, kind, route, &w, discount, batched) {
                    Admission::Go(r) => r,
                    Admission::Wait => {
                        // Touched while it waits, so that nobody takes it over meanwhile.
                        if !w.ticket.is_empty() {
                            flow.unacked.insert(w.ticket.clone());
                        }
                        return Some(w);
                    }
                    Admission::Refused(done) => {
                        if let Some(s) = self.summary.lock().unwrap().as_mut() {
                            s.0.count(&done.tally);
                        }
                        self.jobs.judge.count_batch_item(false);
                        flow.pending.push(*done);
                        return None;
                    }
                }
            }
        };
        // Touched from now on, so that nobody takes it over meanwhile.
        if !w.ticket.is_empty() {
            flow.unacked.insert(w.ticket.clone());
        }
        match delivery {
            Some((d, _)) => {
                let via = Via::Deliverer(d);
                let item = judge_item(&self.jobs.judge, route, kind, w, reservation, via);
                flow.batched.push(Box::pin(item));
            }
            None => flow.buffer.push_back((w, reservation)),
        }
        None
    }

    /// Starts items waiting in the buffer while online slots are free (and the job is not
    /// waiting for its route: then one item at a time goes, see [`Run::probe`]).
    pub(super) fn start_online(&self, flow: &mut Flow) {
        while flow.pause.is_none() && flow.busy(self.fleet) < flow.max_c {
            let Some((w, reservation)) = flow.buffer.pop_front() else {
                break;
            };
            if !w.ticket.is_empty() {
                flow.unacked.insert(w.ticket.clone());
            }
            let (kind, route) = (self.record.kind, self.record.route.as_str());
            let item = judge_item(&self.jobs.judge, route, kind, w, reservation, Via::Online);
            flow.inflight.push(Box::pin(item));
        }
    }
}
