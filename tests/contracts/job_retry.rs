//! The job store's contract for sending a finished job's errored items again
//! (`JobStore::retry_errors`), run against the embedded store and the fleet's store in Redis:
//! the errored results go, the others stay (renumbered in completion order), the errored items
//! are handed out again and nothing else, and a job not finished is left as it is.

use std::sync::Arc;

use llm_judge_work::batch::Tally;
use llm_judge_work::jobs::{Done, JobRecord, JobStatus, Take, WorkItem};
use serde_json::{Value, json};

use super::job_store::{
    Subject, create, done, indices, open_embedded, open_redis, record, set_status, take_all,
};

contract! {
    cases: [
        retry_removes_the_errors_and_hands_their_items_out_again,
        retry_leaves_a_job_not_finished_as_it_is,
    ],
    implementations: { embedded: open_embedded, redis: open_redis }
}

/// An item that ended as an error.
fn failed(w: &WorkItem) -> Done {
    let entry = json!({"index": w.index, "status": "error",
        "error": {"code": "all_providers_failed", "message": "down"}});
    Done {
        index: w.index,
        ticket: w.ticket.clone(),
        json: serde_json::to_vec(&entry).unwrap(),
        tally: Tally::of_value(&entry),
    }
}

fn requeue() -> llm_judge_work::jobs::Change {
    Arc::new(|r: &mut JobRecord| {
        r.status = JobStatus::Queued;
        true
    })
}

async fn retry_removes_the_errors_and_hands_their_items_out_again(s: &Subject) {
    let store = &*s.store;
    create(store, record("a", JobStatus::Running, 5, 1), 5).await;
    let mut cursor = 0;
    let (taken, _) = take_all(store, "a", &mut cursor).await;
    let by_index = |i: u64| taken.iter().find(|w| w.index == i).unwrap();
    // Finished in the order 3, 0, 1, 4, 2; the odd ones as errors.
    let finished: Vec<Done> = [3, 0, 1, 4, 2]
        .iter()
        .map(|&i| {
            if i % 2 == 1 {
                failed(by_index(i))
            } else {
                done(by_index(i))
            }
        })
        .collect();
    store.commit("a", 0, finished).await.unwrap();
    set_status(store, "a", JobStatus::Completed).await;

    let (r, removed) = store.retry_errors("a", requeue()).await.unwrap().unwrap();
    assert_eq!((removed, r.status, r.committed), (2, JobStatus::Queued, 3));
    if let Some(c) = &r.counts {
        assert_eq!((c.correct, c.incorrect, c.errors), (3, 0, 0), "{c:?}");
    }
    let index_of = |stored: &[(u64, Vec<u8>)]| -> Vec<(u64, u64)> {
        stored
            .iter()
            .map(|(n, json)| {
                let v: Value = serde_json::from_slice(json).unwrap();
                (*n, v["index"].as_u64().unwrap())
            })
            .collect()
    };
    let kept = store.results("a", None, false, 10).await.unwrap();
    assert_eq!(index_of(&kept), [(0, 0), (2, 2), (4, 4)]);
    let kept = store.results("a", None, true, 10).await.unwrap();
    assert_eq!(index_of(&kept), [(0, 0), (1, 4), (2, 2)], "renumbered");

    // The errored items, and nothing else, are handed out again.
    set_status(store, "a", JobStatus::Running).await;
    let mut cursor = 0;
    let (again, _) = take_all(store, "a", &mut cursor).await;
    assert_eq!(indices(&again), [1, 3]);
    let r = store
        .commit("a", 3, again.iter().map(done).collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.committed, 5);
    let (_, last) = take_all(store, "a", &mut cursor).await;
    assert!(matches!(last, Take::Drained), "{last:?}");
    let all = store.results("a", None, true, 10).await.unwrap();
    assert_eq!(all.len(), 5);

    // With no error left, a retry removes nothing.
    set_status(store, "a", JobStatus::Completed).await;
    let (r, removed) = store.retry_errors("a", requeue()).await.unwrap().unwrap();
    assert_eq!((removed, r.committed), (0, 5));
}

async fn retry_leaves_a_job_not_finished_as_it_is(s: &Subject) {
    let store = &*s.store;
    create(store, record("b", JobStatus::Running, 2, 1), 2).await;
    let (r, removed) = store.retry_errors("b", requeue()).await.unwrap().unwrap();
    assert_eq!((removed, r.status), (0, JobStatus::Running));
    assert!(
        store
            .retry_errors("nope", requeue())
            .await
            .unwrap()
            .is_none()
    );
}
