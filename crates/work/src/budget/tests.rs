//! The budget's own tests: limits, reservations, parents, renewal, settling.

use super::*;

fn est(cost: f64, tokens: u64) -> Estimate {
    Estimate {
        cost_usd: Some(cost),
        tokens,
    }
}

#[test]
fn items_go_through_while_spent_plus_in_flight_fits_and_then_never_again() {
    let b = Budget::new(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "the batch's budget",
    );
    let r1 = b.reserve(est(0.4, 10)).unwrap();
    let r2 = b.reserve(est(0.4, 10)).unwrap();
    // 0.8 in flight: 0.4 more would pass the limit.
    let e = b.reserve(est(0.4, 10)).unwrap_err();
    assert!(
        e.message.contains("the batch's budget of $1"),
        "{}",
        e.message
    );
    r1.settle(Some(0.1), 8);
    r2.settle(Some(0.1), 8);
    // Room again, but a sticky budget that refused once sends nothing more.
    let e = b.reserve(est(0.01, 1)).unwrap_err();
    assert!(e.message.contains("is spent"), "{}", e.message);
    let r = b.report();
    assert_eq!((r.spent_tokens, r.not_sent, r.exhausted), (16, 2, true));
    assert!((r.spent_cost_usd.unwrap() - 0.2).abs() < 1e-12);
}

#[test]
fn a_renewable_budget_takes_what_still_fits() {
    let b = Budget::renewable(
        Limits {
            max_cost_usd: None,
            max_tokens: Some(100),
        },
        "the daily budget",
    );
    assert!(b.reserve(est(0.0, 150)).is_err());
    b.reserve(est(0.0, 60)).unwrap().settle(Some(0.0), 60);
    assert!(!b.is_spent());
    b.reserve(est(0.0, 40)).unwrap().settle(Some(0.0), 40);
    assert!(b.is_spent());
}

#[test]
fn a_reservation_dropped_unsettled_counts_its_estimate_as_spent() {
    let b = Budget::new(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "b",
    );
    drop(b.reserve(est(0.3, 5)).unwrap());
    assert_eq!(
        b.spent(),
        Amount {
            cost_usd: 0.3,
            tokens: 5
        }
    );
}

#[test]
fn a_child_takes_from_its_parent_or_not_at_all() {
    let day = Budget::renewable(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "the client token's daily budget",
    );
    let batch = Budget::under(Limits::default(), "the batch's budget", day.clone());
    let r = batch.reserve(est(0.7, 1)).unwrap();
    let e = batch.reserve(est(0.7, 1)).unwrap_err();
    assert!(e.message.contains("daily budget"), "{}", e.message);
    r.settle(Some(0.5), 1);
    assert!((day.spent().cost_usd - 0.5).abs() < 1e-12);
    // The batch closed at the parent's refusal; the day still takes another request.
    assert!(batch.reserve(est(0.1, 1)).is_err());
    assert!(day.reserve(est(0.1, 1)).is_ok());
    assert_eq!(batch.report().not_sent, 2);
}

#[test]
fn a_dollar_budget_refuses_an_unpriced_estimate_and_a_token_budget_does_not_care() {
    let dollars = Budget::new(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "b",
    );
    let unpriced = Estimate {
        cost_usd: None,
        tokens: 10,
    };
    assert!(dollars.reserve(unpriced).is_err());
    // That says nothing of priced items: the budget stays open for them.
    assert!(dollars.reserve(est(0.5, 1)).is_ok());
    let tokens = Budget::new(
        Limits {
            max_cost_usd: None,
            max_tokens: Some(100),
        },
        "b",
    );
    tokens.reserve(unpriced).unwrap().settle(None, 9);
    assert_eq!(tokens.report().spent_cost_usd, None);
}

#[test]
fn resuming_starts_from_what_was_spent() {
    let b = Budget::resume(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "the job's budget",
        Amount {
            cost_usd: 0.95,
            tokens: 0,
        },
    );
    assert!(b.reserve(est(0.1, 1)).is_err());
}

#[test]
fn an_item_that_fits_once_items_in_flight_settle_is_told_to_wait_not_refused() {
    let b = Budget::new(
        Limits {
            max_cost_usd: None,
            max_tokens: Some(100),
        },
        "the batch's budget",
    );
    let first = b.try_reserve(est(0.0, 60)).unwrap();
    // 60 in flight, 60 more asked: it fits once the first settles.
    assert_eq!(b.try_reserve(est(0.0, 60)).unwrap_err(), NotYet::Wait);
    assert!(!b.is_closed(), "waiting closes nothing");
    assert_eq!(b.report().not_sent, 0);
    first.settle(Some(0.0), 10);
    // The first cost 10: the second fits now.
    let second = b.try_reserve(est(0.0, 60)).unwrap();
    second.settle(Some(0.0), 60);
    // 70 spent: 60 more can never fit, whatever settles.
    assert!(matches!(
        b.try_reserve(est(0.0, 60)),
        Err(NotYet::Exhausted(_))
    ));
    assert!(b.is_closed());
    assert_eq!(b.report().not_sent, 1);
}

#[test]
fn an_item_too_large_for_an_idle_budget_is_refused_at_once() {
    let b = Budget::new(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "the batch's budget",
    );
    assert!(matches!(
        b.try_reserve(est(1.5, 1)),
        Err(NotYet::Exhausted(_))
    ));
}

#[tokio::test]
async fn reserving_when_room_waits_for_a_settlement() {
    let b = Budget::new(
        Limits {
            max_cost_usd: Some(1.0),
            max_tokens: None,
        },
        "the batch's budget",
    );
    let first = b.try_reserve(est(0.8, 1)).unwrap();
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.reserve_when_room(est(0.8, 1)).await.map(|_| ()) })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "it waits while the first is in flight"
    );
    first.settle(Some(0.1), 1);
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("room came")
        .unwrap();
    assert!(got.is_ok(), "{got:?}");
}

#[test]
fn a_parents_in_flight_items_make_its_child_wait_too() {
    let day = Budget::renewable(
        Limits {
            max_cost_usd: None,
            max_tokens: Some(100),
        },
        "the client token's daily budget",
    );
    let batch = Budget::under(Limits::default(), "the batch's budget", day.clone());
    let other = day.try_reserve(est(0.0, 80)).unwrap();
    assert_eq!(batch.try_reserve(est(0.0, 50)).unwrap_err(), NotYet::Wait);
    assert!(!batch.is_closed());
    drop(other);
    // Dropped unsettled, the other's estimate counts as spent: 20 left, 50 cannot fit.
    assert!(matches!(
        batch.try_reserve(est(0.0, 50)),
        Err(NotYet::Exhausted(_))
    ));
}
