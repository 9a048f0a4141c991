//! Judging one item of a batch: what it may cost, whether its budget lets it through, the
//! judgment into its entry, and settling what it really cost.

use std::sync::Arc;

use serde_json::Value;

use super::entry::{Entry, Outage, binary_tally, compare_tally, error_entry, score_tally};
use super::item::BatchItem;
use crate::budget::{Budget, Estimate, Reservation};
use llm_judge_judge::{HumanLabel, Judge, JudgeError};
use llm_judge_pool::Via;

/// A binary judgment with the person's label its item carried, echoed in its result.
#[derive(serde::Serialize)]
struct Labelled<'a, J> {
    #[serde(flatten)]
    judgment: &'a J,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<HumanLabel>,
}

/// Judges one item of a batch into its entry; its calls travel as `via` says.
pub async fn judge_one(
    judge: &Judge,
    route: &str,
    index: usize,
    item: BatchItem,
    via: &Via,
) -> Entry {
    let item = item.read(index);
    let error = |code: &str, message: &str, field: Option<&str>, attempts: Option<Value>| {
        Entry::from_value(index, &error_entry(index, code, message, field, attempts))
    };
    let own_route;
    let route = match item.judge() {
        Some(name) => match judge.resolve_route(Some(name)) {
            Ok(r) => {
                own_route = r;
                own_route.as_str()
            }
            Err(_) => {
                let field = format!("items[{index}].judge");
                return error(
                    "unknown_judge",
                    &format!("no judge named {name:?}"),
                    Some(&field),
                    None,
                );
            }
        },
        None => route,
    };
    let outcome: Result<Entry, JudgeError> = match item {
        BatchItem::Invalid(e) => {
            return error("invalid_item", &e.message, Some(&e.field), None);
        }
        // `read` above has read it.
        BatchItem::Unread(..) => {
            return error("internal_error", "the item was not read", None, None);
        }
        BatchItem::Binary(i) => judge.binary(route, &i, via).await.map(|j| {
            let mut tally = binary_tally(&j);
            tally.label = i.label.map(|l| l == HumanLabel::Correct);
            let labelled = Labelled {
                judgment: &j,
                label: i.label,
            };
            Entry::ok(index, &labelled, tally)
        }),
        BatchItem::Score(i) => judge
            .score(route, &i, via)
            .await
            .map(|j| Entry::ok(index, &j, score_tally(&j))),
        BatchItem::Compare(i) => judge
            .compare(route, &i, via)
            .await
            .map(|j| Entry::ok(index, &j, compare_tally(&j))),
    };
    match outcome {
        Ok(entry) => entry,
        Err(JudgeError::Parked) => {
            let mut entry = error(
                "parked",
                "the call waits for its provider batch",
                None,
                None,
            );
            entry.parked = true;
            entry
        }
        Err(JudgeError::UnknownRoute(r)) => error(
            "unknown_judge",
            &format!("no judge named {r:?}"),
            Some("judge"),
            None,
        ),
        Err(JudgeError::Failed {
            code,
            message,
            attempts,
            outage,
        }) => {
            let providers = outage.then(|| {
                let mut p: Vec<String> = Vec::new();
                for a in &attempts {
                    if !p.contains(&a.provider) {
                        p.push(a.provider.clone());
                    }
                }
                p
            });
            let mut entry = error(
                code,
                &message,
                None,
                Some(serde_json::to_value(attempts).unwrap_or_default()),
            );
            entry.outage = providers.map(|providers| Outage {
                reason: message,
                providers,
            });
            entry
        }
    }
}

/// What judging an item may cost at most, or `None` when it will be no call at all (an invalid
/// item, an unknown judge: an error entry).
pub fn estimate(judge: &Judge, route: &str, item: &BatchItem) -> Option<Estimate> {
    let own;
    let route = match item.judge() {
        Some(name) => {
            own = judge.resolve_route(Some(name)).ok()?;
            own.as_str()
        }
        None => route,
    };
    Some(match item {
        BatchItem::Binary(i) => judge.estimate_binary(route, i),
        BatchItem::Score(i) => judge.estimate_score(route, i),
        BatchItem::Compare(i) => judge.estimate_compare(route, i),
        BatchItem::Invalid(_) | BatchItem::Unread(..) => return None,
    })
}

/// What a budget made of an item.
pub enum Admitted {
    /// Send it (read, with its reservation, or `None` when it makes no call).
    Go(BatchItem, Option<Reservation>),
    /// Its `budget_exhausted` entry.
    Refused(Entry),
}

/// Admits an item under `budget`. The item is read first, if it was not.
pub fn admit(
    judge: &Judge,
    route: &str,
    index: usize,
    item: BatchItem,
    budget: &Arc<Budget>,
) -> Admitted {
    let item = item.read(index);
    let Some(estimate) = estimate(judge, route, &item) else {
        return Admitted::Go(item, None);
    };
    match budget.reserve(estimate) {
        Ok(r) => Admitted::Go(item, Some(r)),
        Err(e) => Admitted::Refused(Entry::from_value(
            index,
            &error_entry(index, crate::budget::EXHAUSTED, &e.message, None, None),
        )),
    }
}

/// [`admit`], waiting while the item fits the budget only once items in flight have settled.
pub async fn admit_when_room(
    judge: &Judge,
    route: &str,
    index: usize,
    item: BatchItem,
    budget: &Arc<Budget>,
) -> Admitted {
    let item = item.read(index);
    let Some(estimate) = estimate(judge, route, &item) else {
        return Admitted::Go(item, None);
    };
    match budget.reserve_when_room(estimate).await {
        Ok(r) => Admitted::Go(item, Some(r)),
        Err(e) => Admitted::Refused(Entry::from_value(
            index,
            &error_entry(index, crate::budget::EXHAUSTED, &e.message, None, None),
        )),
    }
}

/// Settles an item's reservation with what its entry says it cost (an error entry made no
/// billed call).
pub fn settle(reservation: Option<Reservation>, entry: &Entry) {
    if let Some(r) = reservation {
        if entry.tally.ok {
            r.settle(entry.tally.cost_usd, entry.tally.usage.total());
        } else {
            r.settle(Some(0.0), 0);
        }
    }
}
