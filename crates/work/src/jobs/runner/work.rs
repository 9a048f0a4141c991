//! The run loop: items are taken and started as slots free up, and the runner waits for what
//! happens next (a result, the time to commit, a fleet's tick, a cancel) until every item has
//! its result or the job stops.

use std::time::Instant;

use futures::StreamExt;

use crate::jobs::record::JobStatus;
use crate::jobs::store::StoreError;

use super::state::{BATCHED_AT_ONCE, Ended, Flow, Run};

/// Where the run loop goes next.
enum Next {
    /// It ends.
    Stop,
    /// Round again, taking and starting items.
    Again,
    /// It waits for what happens next.
    Wait,
}

/// What the run loop waited for.
enum Event {
    /// The job was cancelled, or another replica drives it now.
    Stop,
    /// An item finished (or is to be sent again).
    Done(Box<Ended>),
    /// The results waiting are due to be committed.
    Commit,
    /// A fleet's tick.
    Tick,
    /// Budget room may have come for an item waiting for it.
    Room,
    /// The job waits for its route, and it is time to find out whether it answers again.
    Probe,
    /// A provider batch gave back outcomes.
    Answers,
}

impl Run<'_> {
    /// Runs the loop until the job is cancelled, its lease is lost, or every item has its
    /// result (what waits to be committed is committed by [`Run::finish`]).
    pub(super) async fn work(&self, flow: &mut Flow) -> Result<(), StoreError> {
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            self.take_items(flow).await?;
            self.take_answers(flow).await?;
            if self.cancel.is_cancelled() {
                break;
            }
            self.start_online(flow);
            self.probe(flow);
            match self.when_idle(flow).await? {
                Next::Stop => break,
                Next::Again => continue,
                Next::Wait => {}
            }
            match self.next_event(flow).await {
                Event::Stop => break,
                Event::Done(ended) => self.ended(flow, *ended).await?,
                Event::Commit => self.flush(flow).await?,
                Event::Tick => self.tick(flow).await,
                Event::Room | Event::Probe | Event::Answers => {}
            }
            if let Some(why) = self.waited_too_long(flow) {
                tracing::warn!(job = %self.record.id, reason = %why, "the job fails: it waited too long");
                flow.gave_up = Some(why);
                break;
            }
        }
        Ok(())
    }

    /// With nothing being judged or waiting for a slot: the loop ends once every item has its
    /// result; the results waiting are committed when nothing else will come.
    async fn when_idle(&self, flow: &mut Flow) -> Result<Next, StoreError> {
        if !flow.is_idle() {
            return Ok(Next::Wait);
        }
        if flow.drained && flow.pending.is_empty() {
            return Ok(Next::Stop);
        }
        if self.fleet && !flow.pending.is_empty() {
            // Nothing else to do here: commit now (the job may be complete with these).
            self.flush(flow).await?;
            flow.waiting = false;
            flow.drained = false;
            return Ok(Next::Again);
        }
        if flow.drained {
            self.flush(flow).await?;
            return Ok(Next::Again);
        }
        Ok(Next::Wait)
    }

    /// Waits for the next thing to happen.
    async fn next_event(&self, flow: &mut Flow) -> Event {
        // While the job waits for its route: when the next item goes to find out.
        let probe_at = flow
            .pause
            .as_ref()
            .filter(|p| p.probe.is_none())
            .map(|p| p.next_try);
        // Outcomes to pick up, or room to queue requests again.
        let answers_room = self.batches.is_some() && flow.batched.len() < BATCHED_AT_ONCE;
        let (inflight, batched) = (&mut flow.inflight, &mut flow.batched);
        tokio::select! {
            _ = self.cancel.cancelled() => Event::Stop,
            _ = self.lease_lost.cancelled() => Event::Stop,
            Some(done) = async {
                tokio::select! {
                    Some(d) = inflight.next(), if !inflight.is_empty() => Some(d),
                    Some(d) = batched.next(), if !batched.is_empty() => Some(d),
                    else => None,
                }
            }, if !inflight.is_empty() || !batched.is_empty() => Event::Done(Box::new(done)),
            _ = tokio::time::sleep_until(flow.flush_at), if !flow.pending.is_empty() => Event::Commit,
            _ = flow.tick.tick(), if self.fleet => Event::Tick,
            _ = tokio::time::sleep_until(probe_at.unwrap_or_else(tokio::time::Instant::now)), if probe_at.is_some() => Event::Probe,
            // An item waits for budget room: the budget says when some comes (or, should it
            // have come just before this wait began, the next look finds it).
            _ = Self::budget_room(self.budget.as_ref()), if !flow.deferred.is_empty() => Event::Room,
            _ = async { if let Some(b) = &self.batches { b.answers().await } }, if answers_room => Event::Answers,
        }
    }

    /// Resolves when a reservation of `budget` settles, or after a short while at the latest.
    async fn budget_room(budget: Option<&std::sync::Arc<crate::budget::Budget>>) {
        let look_again = tokio::time::sleep(std::time::Duration::from_millis(250));
        match budget {
            Some(b) => tokio::select! { _ = b.room() => {}, _ = look_again => {} },
            None => look_again.await,
        }
    }

    /// A fleet's tick: items may be free to take over now; a cancel may have come elsewhere.
    async fn tick(&self, flow: &mut Flow) {
        let id = self.record.id.as_str();
        flow.waiting = false;
        if flow.touched.elapsed() >= flow.touch_every && !flow.unacked.is_empty() {
            let tickets: Vec<String> = flow.unacked.iter().cloned().collect();
            let _ = self.jobs.store.touch(id, &tickets).await;
            flow.touched = Instant::now();
        }
        if let Ok(Some(r)) = self.jobs.store.get(id).await
            && r.status != JobStatus::Running
        {
            self.cancel.cancel();
        }
    }
}
