//! One chat call: counted, given its outcome, answered after its latency.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::api::Api;
use crate::clock::{ConnClock, now_us};
use crate::faults::{OUTCOMES, Outcome};
use crate::reply::Reply;
use crate::shared::Shared;
use crate::stats::InFlight;
use crate::window::WindowLimit;

/// One chat call: counted, given its outcome from the fault mix, answered after its latency.
/// `started_us` is when its request head arrived.
pub async fn chat(
    shared: &Shared,
    clock: &ConnClock,
    api: Api,
    started_us: u64,
    body: &[u8],
) -> Reply {
    let stats = &shared.stats;
    let last = clock.answered_at_us.swap(0, Ordering::Relaxed);
    if last != 0 && last >= stats.reset_at_us.load(Ordering::Relaxed) {
        stats.gaps.fetch_add(1, Ordering::Relaxed);
        stats
            .gap_us
            .fetch_add(started_us.saturating_sub(last), Ordering::Relaxed);
    }
    let _in_flight = InFlight::new(stats);
    stats.calls.fetch_add(1, Ordering::Relaxed);
    let over = shared.window.as_ref().is_some_and(WindowLimit::arrive);
    let outcome = if over {
        Outcome::E429
    } else {
        shared.faults.pick()
    };
    let index = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
    stats.by_outcome[index].fetch_add(1, Ordering::Relaxed);
    if outcome == Outcome::Timeout {
        tokio::time::sleep(shared.hang).await;
        return Reply::Hang;
    }
    let delay = shared.latency.sample();
    if !delay.is_zero() {
        shared.timer.sleep(delay).await;
    }
    let status = match outcome {
        Outcome::Reset => return Reply::Reset,
        Outcome::Ok | Outcome::Malformed | Outcome::Timeout => 200,
        Outcome::E429 => 429,
        Outcome::E500 => 500,
        Outcome::E503 => 503,
        Outcome::E529 => 529,
    };
    let body: Bytes = match outcome {
        Outcome::Ok => shared
            .answers
            .canned
            .success(api, body, shared.answers.cache.lookup(api, body))
            .into(),
        Outcome::Malformed => shared.answers.canned.malformed(api, body).into(),
        other => Bytes::from_static(shared.answers.canned.error(api, other.label())),
    };
    let done_us = now_us();
    clock
        .answered_at_us
        .store(done_us.max(1), Ordering::Relaxed);
    stats.answered.fetch_add(1, Ordering::Relaxed);
    stats
        .answer_us
        .fetch_add(done_us.saturating_sub(started_us), Ordering::Relaxed);
    Reply::Answer {
        status,
        body,
        content_type: "application/json",
        retry_after: outcome == Outcome::E429,
    }
}
