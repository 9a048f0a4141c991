//! The job store's contract (`JobStore`), run against the embedded store (redb, a single node)
//! and the fleet's store in Redis: a job and its items are stored before it is accepted, its
//! record changes only by compare-and-set (a cancel wins, no update is lost), an idempotency key
//! names one job until that job is deleted, every index ends with one result readable by index
//! and by completion, and an item a runner took is handed to another only once the runner has
//! gone quiet for the store's `claim_idle`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_judge_judge::JudgeKind;
use llm_judge_work::batch::{Summary, Tally};
use llm_judge_work::jobs::embedded::Store;
use llm_judge_work::jobs::{
    Created, Done, Embedded, JobRecord, JobStatus, JobStore, Take, WorkItem,
};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::RedisServer;

contract! {
    cases: [
        a_job_is_stored_with_its_items_before_it_is_accepted,
        an_upload_appends_items_that_the_job_then_hands_out,
        update_is_a_compare_and_set_and_a_cancel_wins,
        concurrent_updates_are_never_lost,
        an_idempotency_key_names_one_job_until_that_job_is_deleted,
        an_idempotency_key_is_its_owners_own,
        an_upload_whose_replica_stopped_fails_and_frees_its_key,
        each_index_has_one_result_read_by_index_and_by_completion,
        deleting_a_job_removes_it_with_its_results_and_frees_its_key,
        jobs_are_listed_newest_first,
        a_taken_item_goes_to_another_runner_only_after_its_runner_goes_quiet,
    ],
    implementations: { embedded: open_embedded, redis: open_redis }
}

/// A store under test, with what must live as long as it (its directory, its Redis).
pub(crate) struct Subject {
    pub(crate) store: Arc<dyn JobStore>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

pub(crate) async fn open_embedded() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    Some(Subject {
        store: Arc::new(Embedded(Arc::new(store))),
        _keep: Box::new(dir),
    })
}

/// How long an item may go without a word from its runner in the Redis store.
const CLAIM_IDLE: Duration = Duration::from_secs(1);

pub(crate) async fn open_redis() -> Option<Subject> {
    let server = RedisServer::start().await?;
    let redis = crate::redis_handle(
        &server,
        &format!("claim_idle_s = {:.1}", CLAIM_IDLE.as_secs_f64()),
    );
    let store = llm_judge_fleet::jobs::RedisJobs::new(redis, Duration::from_secs(3600));
    Some(Subject {
        store: Arc::new(store),
        _keep: Box::new(server),
    })
}

pub(crate) fn record(id: &str, status: JobStatus, total: u64, created_at_ms: u64) -> JobRecord {
    JobRecord {
        id: id.into(),
        status,
        kind: JudgeKind::Binary,
        route: "rules".into(),
        max_concurrent: 1,
        total,
        created_at_ms,
        finished_at_ms: None,
        idempotency_key: None,
        request_digest: None,
        committed: 0,
        summary: None,
        error: None,
        counts: None,
        provider_batch: false,
        provider_batch_deadline_s: None,
        provider_batches: Vec::new(),
        budget: None,
        driver: None,
        batch_submits: Vec::new(),
        client: None,
        owner: None,
        upload_seen_ms: None,
        max_wait_s: None,
    }
}

/// A queued job with an idempotency key and, when known, its request's digest.
fn keyed(id: &str, status: JobStatus, key: &str, digest: Option<&str>) -> JobRecord {
    JobRecord {
        idempotency_key: Some(key.into()),
        request_digest: digest.map(str::to_string),
        ..record(id, status, 0, 1)
    }
}

fn item(i: u64) -> Value {
    json!({"question": "q", "answer": "a", "prediction": format!("p{i}")})
}

pub(crate) fn raw_items(n: u64) -> Vec<Box<RawValue>> {
    (0..n)
        .map(|i| serde_json::value::to_raw_value(&item(i)).unwrap())
        .collect()
}

/// What a store's `create` did, and the job it names.
fn created(c: Created) -> (&'static str, String) {
    match c {
        Created::New(r) => ("new", r.id),
        Created::Existing(r) => ("existing", r.id),
        Created::Conflict(r) => ("conflict", r.id),
        Created::InProgress(r) => ("in progress", r.id),
    }
}

/// Stores a new job with `n` items.
pub(crate) async fn create(store: &dyn JobStore, r: JobRecord, n: u64) {
    let id = r.id.clone();
    assert_eq!(
        created(store.create(r, raw_items(n)).await.unwrap()),
        ("new", id)
    );
}

pub(crate) async fn set_status(store: &dyn JobStore, id: &str, status: JobStatus) -> JobRecord {
    store
        .update(
            id,
            Arc::new(move |r: &mut JobRecord| {
                r.status = status;
                true
            }),
        )
        .await
        .unwrap()
        .unwrap()
}

/// Takes, as one runner (its `cursor`), until the store hands out nothing more: the items
/// taken, and what the last take said.
pub(crate) async fn take_all(
    store: &dyn JobStore,
    id: &str,
    cursor: &mut u64,
) -> (Vec<WorkItem>, Take) {
    let mut taken = Vec::new();
    loop {
        match store.take(id, cursor, 2).await.unwrap() {
            Take::Items(items) => {
                assert!(!items.is_empty(), "a take of no items");
                taken.extend(items);
            }
            other => return (taken, other),
        }
    }
}

pub(crate) fn indices(items: &[WorkItem]) -> Vec<u64> {
    let mut all: Vec<u64> = items.iter().map(|w| w.index).collect();
    all.sort_unstable();
    all
}

/// A finished item: its result entry, with the verdict `correct` for even indices.
pub(crate) fn done(w: &WorkItem) -> Done {
    let entry = if w.index.is_multiple_of(2) {
        json!({"index": w.index, "status": "ok", "verdict": "correct"})
    } else {
        json!({"index": w.index, "status": "ok", "verdict": "incorrect"})
    };
    Done {
        index: w.index,
        ticket: w.ticket.clone(),
        json: serde_json::to_vec(&entry).unwrap(),
        tally: Tally::of_value(&entry),
    }
}

async fn a_job_is_stored_with_its_items_before_it_is_accepted(s: &Subject) {
    let store = &*s.store;
    assert_eq!(store.check().await, Ok(()));
    create(store, record("a", JobStatus::Queued, 5, 1), 5).await;
    let got = store.get("a").await.unwrap().expect("stored on create");
    assert_eq!(
        (got.id.as_str(), got.status, got.total, got.route.as_str()),
        ("a", JobStatus::Queued, 5, "rules")
    );
    assert!(store.get("none").await.unwrap().is_none());
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, ["a"]);
    set_status(store, "a", JobStatus::Running).await;
    let mut cursor = 0;
    let (taken, last) = take_all(store, "a", &mut cursor).await;
    assert_eq!(
        indices(&taken),
        [0, 1, 2, 3, 4],
        "each item handed out once"
    );
    for w in &taken {
        assert_eq!(w.item, item(w.index), "item {} as submitted", w.index);
        assert!(!w.claimed, "a first hand-out is no takeover");
    }
    assert!(
        matches!(last, Take::Wait | Take::Drained),
        "every item is out: {last:?}"
    );
}

async fn an_upload_appends_items_that_the_job_then_hands_out(s: &Subject) {
    let store = &*s.store;
    create(store, record("u", JobStatus::Uploading, 0, 1), 2).await;
    store
        .append_items("u", 2, vec![item(2), item(3), item(4)])
        .await
        .unwrap();
    store
        .update(
            "u",
            Arc::new(|r: &mut JobRecord| {
                r.status = JobStatus::Running;
                r.total = 5;
                true
            }),
        )
        .await
        .unwrap()
        .unwrap();
    let mut cursor = 0;
    let (taken, _) = take_all(store, "u", &mut cursor).await;
    assert_eq!(indices(&taken), [0, 1, 2, 3, 4]);
    for w in &taken {
        assert_eq!(w.item, item(w.index), "item {}", w.index);
    }
}

async fn update_is_a_compare_and_set_and_a_cancel_wins(s: &Subject) {
    let store = &*s.store;
    create(store, record("a", JobStatus::Queued, 1, 1), 1).await;
    // A cancel lands first; a claim that expects `queued` then changes nothing.
    set_status(store, "a", JobStatus::Cancelled).await;
    let after = store
        .update(
            "a",
            Arc::new(|r: &mut JobRecord| {
                if r.status != JobStatus::Queued {
                    return false;
                }
                r.status = JobStatus::Running;
                true
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, JobStatus::Cancelled);
    assert_eq!(
        store.get("a").await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert!(
        store
            .update("missing", Arc::new(|_: &mut JobRecord| true))
            .await
            .unwrap()
            .is_none()
    );
    // Committing results keeps the stored status (a cancel is not undone by a commit).
    set_status(store, "a", JobStatus::Cancelling).await;
    let w = WorkItem {
        index: 0,
        item: item(0),
        ticket: String::new(),
        claimed: false,
    };
    let r = store.commit("a", 0, vec![done(&w)]).await.unwrap().unwrap();
    assert_eq!((r.status, r.committed), (JobStatus::Cancelling, 1));
}

async fn concurrent_updates_are_never_lost(s: &Subject) {
    const WRITERS: usize = 16;
    create(&*s.store, record("a", JobStatus::Queued, 1, 1), 1).await;
    let writers = (0..WRITERS).map(|_| {
        let store = s.store.clone();
        tokio::spawn(async move {
            store
                .update(
                    "a",
                    Arc::new(|r: &mut JobRecord| {
                        r.max_concurrent += 1;
                        true
                    }),
                )
                .await
                .unwrap()
                .unwrap()
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
    let r = s.store.get("a").await.unwrap().unwrap();
    assert_eq!(
        r.max_concurrent,
        1 + WRITERS,
        "every writer's change is kept"
    );
}

async fn an_idempotency_key_names_one_job_until_that_job_is_deleted(s: &Subject) {
    let store = &*s.store;
    let new = |id, digest| keyed(id, JobStatus::Queued, "k", digest);
    let try_create = async |r: JobRecord| created(store.create(r, raw_items(0)).await.unwrap());
    assert_eq!(try_create(new("a", Some("d1"))).await, ("new", "a".into()));
    assert_eq!(
        try_create(new("b", Some("d1"))).await,
        ("existing", "a".into())
    );
    assert_eq!(
        try_create(new("b", Some("d2"))).await,
        ("conflict", "a".into())
    );
    // An upload (no digest yet) finds the job and compares later.
    assert_eq!(try_create(new("b", None)).await, ("existing", "a".into()));
    assert!(store.get("b").await.unwrap().is_none(), "no second job");
    let a = store.get("a").await.unwrap().unwrap();
    store.delete(&a).await.unwrap();
    let upload = keyed("c", JobStatus::Uploading, "k", None);
    assert_eq!(try_create(upload).await, ("new", "c".into()));
    assert_eq!(
        try_create(new("d", Some("d1"))).await,
        ("in progress", "c".into())
    );
    // Deleting the first job again (already gone) leaves the key with the upload.
    store.delete(&a).await.unwrap();
    assert_eq!(
        try_create(new("d", Some("d1"))).await,
        ("in progress", "c".into())
    );
}

async fn an_idempotency_key_is_its_owners_own(s: &Subject) {
    let store = &*s.store;
    let owned = |id: &str, owner: &str| JobRecord {
        owner: Some(owner.into()),
        ..keyed(id, JobStatus::Queued, "k", Some("d1"))
    };
    let try_create = async |r: JobRecord| created(store.create(r, raw_items(0)).await.unwrap());
    assert_eq!(try_create(owned("a", "alice")).await, ("new", "a".into()));
    // The same key and request from another owner is another job, never a hint of the first.
    assert_eq!(try_create(owned("b", "bob")).await, ("new", "b".into()));
    assert_eq!(
        try_create(owned("c", "alice")).await,
        ("existing", "a".into())
    );
    // Nor does it meet the key of a job with no owner.
    let unowned = keyed("d", JobStatus::Queued, "k", Some("d1"));
    assert_eq!(try_create(unowned).await, ("new", "d".into()));
    // Deleting one owner's job frees only that owner's key.
    let a = store.get("a").await.unwrap().unwrap();
    store.delete(&a).await.unwrap();
    assert_eq!(
        try_create(owned("e", "bob")).await,
        ("existing", "b".into())
    );
    assert_eq!(try_create(owned("f", "alice")).await, ("new", "f".into()));
}

async fn an_upload_whose_replica_stopped_fails_and_frees_its_key(s: &Subject) {
    let store = &*s.store;
    let upload = |id: &str, seen: u64| JobRecord {
        upload_seen_ms: Some(seen),
        ..keyed(id, JobStatus::Uploading, "k", None)
    };
    let try_create = async |r: JobRecord| created(store.create(r, raw_items(0)).await.unwrap());
    assert_eq!(try_create(upload("a", 1_000)).await, ("new", "a".into()));
    assert_eq!(
        try_create(upload("b", 1_000)).await,
        ("in progress", "a".into())
    );
    // Heard of since the cut-off: left as it is.
    let kept = store.abandon_upload("a", 500, "gone".into()).await.unwrap();
    assert_eq!(kept.unwrap().status, JobStatus::Uploading);
    assert_eq!(
        try_create(upload("b", 1_000)).await,
        ("in progress", "a".into())
    );
    // Not heard of since: failed with the reason, and the key is free for a new upload.
    let failed = store
        .abandon_upload("a", 2_000, "the upload broke off".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("the upload broke off"));
    assert!(failed.finished_at_ms.is_some());
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        a.status,
        JobStatus::Failed,
        "the failed upload stays listed"
    );
    assert_eq!(try_create(upload("b", 3_000)).await, ("new", "b".into()));
    // A job that is not an upload is never abandoned; a missing one is None.
    assert!(
        store
            .abandon_upload("nothing", u64::MAX, "x".into())
            .await
            .unwrap()
            .is_none()
    );
    let queued = record("q", JobStatus::Queued, 0, 1);
    create(store, queued, 0).await;
    let still = store
        .abandon_upload("q", u64::MAX, "x".into())
        .await
        .unwrap();
    assert_eq!(still.unwrap().status, JobStatus::Queued);
}

async fn each_index_has_one_result_read_by_index_and_by_completion(s: &Subject) {
    let store = &*s.store;
    create(store, record("a", JobStatus::Running, 4, 1), 4).await;
    let mut cursor = 0;
    let (taken, _) = take_all(store, "a", &mut cursor).await;
    let by_index = |i: u64| taken.iter().find(|w| w.index == i).unwrap();
    // Completed in the order 2, 0, then 3, 1; each commit numbered from what was committed.
    let first = vec![done(by_index(2)), done(by_index(0))];
    let r = store.commit("a", 0, first).await.unwrap().unwrap();
    assert_eq!(r.committed, 2);
    let second = vec![done(by_index(3)), done(by_index(1))];
    let r = store.commit("a", 2, second).await.unwrap().unwrap();
    assert_eq!(r.committed, 4);
    assert_eq!(store.get("a").await.unwrap().unwrap().committed, 4);

    let index_of = |stored: &[(u64, Vec<u8>)]| -> Vec<(u64, u64)> {
        stored
            .iter()
            .map(|(n, json)| {
                let v: Value = serde_json::from_slice(json).unwrap();
                (*n, v["index"].as_u64().unwrap())
            })
            .collect()
    };
    let all = store.results("a", None, false, 10).await.unwrap();
    assert_eq!(index_of(&all), [(0, 0), (1, 1), (2, 2), (3, 3)]);
    let after = store.results("a", Some(1), false, 10).await.unwrap();
    assert_eq!(index_of(&after), [(2, 2), (3, 3)]);
    let page = store.results("a", None, false, 1).await.unwrap();
    assert_eq!(index_of(&page), [(0, 0)]);
    // In completion order, each with its sequence number.
    let all = store.results("a", None, true, 10).await.unwrap();
    assert_eq!(index_of(&all), [(0, 2), (1, 0), (2, 3), (3, 1)]);
    let after = store.results("a", Some(1), true, 10).await.unwrap();
    assert_eq!(index_of(&after), [(2, 3), (3, 1)]);

    let summary = store
        .summarize("a", Summary::new(JudgeKind::Binary, 4))
        .await
        .unwrap();
    assert_eq!((summary.correct, summary.incorrect), (2, 2));
    let (_, last) = take_all(store, "a", &mut cursor).await;
    assert!(
        matches!(last, Take::Drained),
        "every item has its result: {last:?}"
    );
}

async fn deleting_a_job_removes_it_with_its_results_and_frees_its_key(s: &Subject) {
    let store = &*s.store;
    let r = JobRecord {
        total: 2,
        ..keyed("a", JobStatus::Running, "k", Some("d1"))
    };
    create(store, r, 2).await;
    create(store, record("other", JobStatus::Queued, 1, 2), 1).await;
    let (taken, _) = take_all(store, "a", &mut 0).await;
    let results: Vec<Done> = taken.iter().map(done).collect();
    store.commit("a", 0, results).await.unwrap().unwrap();
    let a = store.get("a").await.unwrap().unwrap();
    store.delete(&a).await.unwrap();
    assert!(store.get("a").await.unwrap().is_none());
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, ["other"], "the other job stays");
    for by_completion in [false, true] {
        assert!(
            store
                .results("a", None, by_completion, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let again = keyed("b", JobStatus::Queued, "k", Some("d1"));
    assert_eq!(
        created(store.create(again, raw_items(0)).await.unwrap()),
        ("new", "b".into()),
        "the key is free once its job is gone"
    );
}

async fn jobs_are_listed_newest_first(s: &Subject) {
    let store = &*s.store;
    for (id, at) in [("a", 1), ("b", 3), ("c", 2), ("d", 5), ("e", 5)] {
        create(store, record(id, JobStatus::Queued, 0, at), 0).await;
    }
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, ["e", "d", "b", "c", "a"], "by creation, then by id");
}

async fn a_taken_item_goes_to_another_runner_only_after_its_runner_goes_quiet(s: &Subject) {
    let store = &*s.store;
    create(store, record("a", JobStatus::Running, 4, 1), 4).await;
    let mut cursor = 0;
    let taken_at = Instant::now();
    let (taken, last) = take_all(store, "a", &mut cursor).await;
    assert_eq!(indices(&taken), [0, 1, 2, 3]);
    assert!(!matches!(last, Take::Items(_) | Take::Stopped), "{last:?}");
    let mut latest: Vec<WorkItem> = taken;
    latest.sort_by_key(|w| w.index);
    match store.claim_idle() {
        None => {
            // Nobody else would take them over: the runner's later takes hand out nothing again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (again, _) = take_all(store, "a", &mut cursor).await;
            assert!(again.is_empty(), "{:?}", indices(&again));
        }
        Some(idle) => {
            // Items 0 and 1 are touched halfway through: only 2 and 3 go quiet for `idle`.
            tokio::time::sleep(idle / 2).await;
            let touched: Vec<String> = latest[..2].iter().map(|w| w.ticket.clone()).collect();
            let kept: BTreeSet<u64> = latest[..2].iter().map(|w| w.index).collect();
            store.touch("a", &touched).await.unwrap();
            let (again, _) = take_all(store, "a", &mut cursor).await;
            assert!(
                again.is_empty(),
                "taken over too early: {:?}",
                indices(&again)
            );
            let claimed = crate::within("a takeover", idle * 5, async || {
                let (again, _) = take_all(store, "a", &mut cursor).await;
                (!again.is_empty()).then_some(again)
            })
            .await;
            assert!(
                taken_at.elapsed() >= idle,
                "taken over after {:?}",
                taken_at.elapsed()
            );
            let quiet: BTreeSet<u64> = (0..4).filter(|i| !kept.contains(i)).collect();
            assert_eq!(
                indices(&claimed).into_iter().collect::<BTreeSet<_>>(),
                quiet,
                "only the items nobody touched"
            );
            assert!(claimed.iter().all(|w| w.claimed), "marked as taken over");
            latest.retain(|w| kept.contains(&w.index));
            latest.extend(claimed);
        }
    }
    let results: Vec<Done> = latest.iter().map(done).collect();
    let r = store.commit("a", 0, results).await.unwrap().unwrap();
    assert_eq!(r.committed, 4);
    let (_, last) = take_all(store, "a", &mut cursor).await;
    assert!(matches!(last, Take::Drained), "{last:?}");
}
