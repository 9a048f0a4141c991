//! Outages a job waits out. An item judged online whose route cannot be served now (every step
//! failed for a transient reason: unreachable, timed out, 429, 5xx, circuit open, no permit in
//! time) goes back to the job's queue instead of ending as an error, and the job stops sending
//! items. One item at a time, after a growing wait (1 s, doubling to 15 s, jittered), finds out
//! whether the route answers again; when it does, the job resumes by itself.
//!
//! An item ends as an error only when it is at fault itself (the route said so), or after
//! `jobs.max_item_attempts` sends. A job that waited longer than its `max_wait_s` fails with
//! the reason; the results it finished stay.

use std::time::{Duration, Instant};

use llm_judge_metrics as m;

use crate::batch::{Outage, Waiting};
use crate::jobs::record::now_ms;
use crate::jobs::store::{StoreError, WorkItem};
use llm_judge_pool::Via;

use super::item::judge_item;
use super::state::{Ended, Flow, Run};

/// The first wait before an item is sent to find out whether the route answers again.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between two such items.
const LONGEST_WAIT: Duration = Duration::from_secs(15);
/// How soon a probe that could not go (no budget room yet) is tried again.
const PROBE_AGAIN: Duration = Duration::from_millis(250);

/// A job waiting for its route to be served again.
pub(super) struct Pause {
    since: Instant,
    since_ms: u64,
    /// When the next item goes to find out whether the route answers.
    pub(super) next_try: tokio::time::Instant,
    wait: Duration,
    outage: Outage,
    /// The item sent to find out, while it is out.
    pub(super) probe: Option<u64>,
    gauge: metrics::Gauge,
}

impl Drop for Pause {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// `d`, give or take a fifth, so that replicas that began waiting together do not try together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.8..1.2))
}

impl Run<'_> {
    /// What judging an item came to: a result to count and commit, or (its route could not
    /// be served) an item to send again once the route answers.
    pub(super) async fn ended(&self, flow: &mut Flow, ended: Ended) -> Result<(), StoreError> {
        let Ended {
            done,
            again,
            parked,
        } = ended;
        if let Some(reservation) = parked {
            return self.parked(flow, done, reservation);
        }
        let was_probe = flow
            .pause
            .as_mut()
            .is_some_and(|p| p.probe.take_if(|i| *i == done.index).is_some());
        let Some((item, outage)) = again else {
            flow.attempts.remove(&done.index);
            // An answer: the route is served again (an item that made no call says nothing).
            if was_probe || done.tally.ok {
                self.resume(flow);
            }
            return self.collect(flow, done).await;
        };
        if was_probe && let Some(p) = flow.pause.as_mut() {
            p.wait = (p.wait * 2).min(LONGEST_WAIT);
            p.next_try = tokio::time::Instant::now() + jittered(p.wait);
        }
        let sent = flow.attempts.entry(item.index).or_insert(0);
        *sent += 1;
        if *sent >= self.jobs.settings.max_item_attempts {
            let sent = *sent;
            flow.attempts.remove(&item.index);
            tracing::warn!(job = %self.record.id, index = item.index, sent, reason = %outage.reason,
                "an item ends as an error: its route could not be served in jobs.max_item_attempts sends");
            self.show_waiting(flow);
            return self.collect(flow, done).await;
        }
        metrics::counter!(m::JOB_ITEMS_REQUEUED).increment(1);
        flow.again.push_back(item);
        self.wait_out(flow, outage);
        Ok(())
    }

    /// The job waits (or goes on waiting) for its route, which cannot be served now.
    fn wait_out(&self, flow: &mut Flow, outage: Outage) {
        match flow.pause.as_mut() {
            Some(p) => p.outage = outage,
            None => {
                tracing::warn!(job = %self.record.id, reason = %outage.reason,
                    providers = %outage.providers.join(","),
                    "the job waits: its route cannot be served now; its items are sent again once it can");
                let gauge = metrics::gauge!(m::JOBS_WAITING);
                gauge.increment(1.0);
                flow.pause = Some(Pause {
                    since: Instant::now(),
                    since_ms: now_ms(),
                    next_try: tokio::time::Instant::now() + jittered(FIRST_WAIT),
                    wait: FIRST_WAIT,
                    outage,
                    probe: None,
                    gauge,
                });
            }
        }
        self.show_waiting(flow);
    }

    /// The route answers again: the job stops waiting, and what waited is sent again.
    fn resume(&self, flow: &mut Flow) {
        let Some(p) = flow.pause.take() else {
            return;
        };
        tracing::info!(job = %self.record.id, waited_s = p.since.elapsed().as_secs(),
            items = flow.again.len(), "the job's route answers again: the job goes on");
        *self.waiting.lock().unwrap() = None;
        for w in std::mem::take(&mut flow.again) {
            if let Some(w) = self.place(flow, w) {
                flow.deferred.push_back(w);
            }
        }
    }

    /// While the job waits and its wait is over: one item goes, alone, to find out whether the
    /// route answers again (the first of those waiting to be sent again).
    pub(super) fn probe(&self, flow: &mut Flow) {
        let now = tokio::time::Instant::now();
        if !flow
            .pause
            .as_ref()
            .is_some_and(|p| p.probe.is_none() && p.next_try <= now)
        {
            return;
        }
        while let Some(w) = flow.again.pop_front() {
            let index = w.index;
            let before = flow.buffer.len();
            match self.place(flow, w) {
                Some(w) => {
                    // It waits for budget room: it goes once there is some.
                    flow.again.push_front(w);
                    if let Some(p) = flow.pause.as_mut() {
                        p.next_try = now + PROBE_AGAIN;
                    }
                    return;
                }
                None if flow.buffer.len() > before => {
                    let Some((w, reservation)) = flow.buffer.pop_back() else {
                        return;
                    };
                    self.send_probe(flow, w, reservation, index);
                    return;
                }
                // The budget refused it (its result is waiting to be committed), or it went
                // into a provider batch: the next one goes.
                None => {}
            }
        }
        // Nothing waits to be sent again: an item taken before the wait goes instead.
        match flow.buffer.pop_front() {
            Some((w, reservation)) => {
                let index = w.index;
                self.send_probe(flow, w, reservation, index);
            }
            None => self.resume(flow),
        }
    }

    fn send_probe(
        &self,
        flow: &mut Flow,
        w: WorkItem,
        reservation: Option<crate::budget::Reservation>,
        index: u64,
    ) {
        let (kind, route) = (self.record.kind, self.record.route.as_str());
        let item = judge_item(&self.jobs.judge, route, kind, w, reservation, Via::Online);
        flow.inflight.push(Box::pin(item));
        if let Some(p) = flow.pause.as_mut() {
            p.probe = Some(index);
        }
        self.show_waiting(flow);
    }

    /// Why the job stops waiting and fails, once it has waited longer than it may.
    pub(super) fn waited_too_long(&self, flow: &Flow) -> Option<String> {
        let p = flow.pause.as_ref()?;
        let max_wait = self
            .record
            .max_wait_s
            .map_or(self.jobs.settings.max_wait, Duration::from_secs);
        (p.since.elapsed() > max_wait).then(|| {
            format!(
                "the job waited {} s for its route's providers ({}) to answer again, longer than \
                 its max_wait_s ({}); last error: {}. The results it finished are kept.",
                p.since.elapsed().as_secs(),
                p.outage.providers.join(", "),
                max_wait.as_secs(),
                p.outage.reason
            )
        })
    }

    /// What the job's progress says of the wait (nothing once it is over).
    fn show_waiting(&self, flow: &Flow) {
        let shown = flow.pause.as_ref().map(|p| {
            let next = p
                .next_try
                .saturating_duration_since(tokio::time::Instant::now());
            Waiting {
                reason: p.outage.reason.clone(),
                providers: p.outage.providers.clone(),
                since_ms: p.since_ms,
                next_try_ms: now_ms() + next.as_millis() as u64,
                items: flow.again.len() + usize::from(p.probe.is_some()),
            }
        });
        *self.waiting.lock().unwrap() = shown;
    }
}
