//! One item of a job: admitted under the job's budget, then judged into the result that is
//! committed (its calls online, or through the job's provider batch).

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::batch::{self, BatchItem};
use crate::budget::{Budget, EXHAUSTED, NotYet, Reservation};
use crate::jobs::store::{Done, INVALID_LINE, WorkItem};
use llm_judge_judge::{Judge, JudgeKind};
use llm_judge_pool::Via;

use super::state::Ended;

/// What the job's budget makes of an item.
pub(super) enum Admission {
    /// Send it, with its reservation (`None` when it makes no call).
    Go(Option<Reservation>),
    /// It fits once the items in flight settle: it waits for them.
    Wait,
    /// It cannot fit: its `budget_exhausted` result.
    Refused(Box<Done>),
}

/// Reserves an item's estimate under the job's budget (`discount` off: the share a provider
/// batch takes off its price), tells it to wait for room, or makes its `budget_exhausted` entry.
/// An item going as a provider batch (`batched`) does not wait: the items in flight beside it
/// settle when their batch answers, hours later perhaps, and waiting for them would turn the job
/// into a chain of batches one after another; it is admitted or refused at once.
pub(super) fn admit(
    judge: &Judge,
    budget: &Arc<Budget>,
    kind: JudgeKind,
    route: &str,
    w: &WorkItem,
    discount: f64,
    batched: bool,
) -> Admission {
    if w.item.get(INVALID_LINE).is_some() {
        return Admission::Go(None);
    }
    let index = w.index as usize;
    let item = BatchItem::parse(kind, index, w.item.clone()).read(index);
    let Some(mut estimate) = batch::estimate(judge, route, &item) else {
        return Admission::Go(None);
    };
    estimate.cost_usd = estimate.cost_usd.map(|c| c * (1.0 - discount));
    let reserved = if batched {
        budget.reserve(estimate).map_err(NotYet::Exhausted)
    } else {
        budget.try_reserve(estimate)
    };
    match reserved {
        Ok(r) => Admission::Go(Some(r)),
        Err(NotYet::Wait) => Admission::Wait,
        Err(NotYet::Exhausted(e)) => {
            let v = batch::error_entry(index, EXHAUSTED, &e.message, None, None);
            let entry = batch::Entry::from_value(index, &v);
            Admission::Refused(Box::new(Done {
                index: w.index,
                ticket: w.ticket.clone(),
                json: entry.json.get().as_bytes().to_vec(),
                tally: entry.tally,
            }))
        }
    }
}

/// Judges one item into what is to be committed, settling its budget reservation. An item
/// judged online whose route could not be served now comes back with the item, to be sent again.
pub(super) fn judge_item(
    judge: &Arc<Judge>,
    route: &str,
    kind: JudgeKind,
    w: WorkItem,
    reservation: Option<Reservation>,
    via: Via,
) -> impl Future<Output = Ended> + Send + 'static {
    let judge = judge.clone();
    let route = route.to_string();
    async move {
        let index = w.index;
        // Kept to be sent again: only an item judged online waits out an outage.
        let kept = matches!(via, Via::Online).then(|| w.item.clone());
        let mut entry = if let Some(msg) = w.item.get(INVALID_LINE).and_then(Value::as_str) {
            let v = batch::error_entry(index as usize, "invalid_line", msg, None, None);
            batch::Entry::from_value(index as usize, &v)
        } else {
            let item = BatchItem::parse(kind, index as usize, w.item);
            batch::judge_one(&judge, &route, index as usize, item, &via).await
        };
        if entry.parked {
            // No result yet: the call waits in a provider batch, and the reservation with it.
            return Ended {
                done: Done {
                    index,
                    ticket: w.ticket,
                    json: Vec::new(),
                    tally: entry.tally,
                },
                again: None,
                parked: Some(reservation),
            };
        }
        batch::settle(reservation, &entry);
        let again = match (entry.outage.take(), kept) {
            (Some(outage), Some(item)) => Some((
                WorkItem {
                    index,
                    item,
                    ticket: w.ticket.clone(),
                    claimed: false,
                },
                outage,
            )),
            _ => None,
        };
        Ended {
            done: Done {
                index,
                ticket: w.ticket,
                json: entry.json.get().as_bytes().to_vec(),
                tally: entry.tally,
            },
            again,
            parked: None,
        }
    }
}
