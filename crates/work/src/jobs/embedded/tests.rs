//! The embedded store's own rules: idempotency keys, and the compare-and-set of a record.

use serde_json::Value;

use super::Store;
use crate::jobs::record::{JobRecord, JobStatus};
use crate::jobs::store::Created;

fn record(id: &str, status: JobStatus, key: Option<&str>, digest: Option<&str>) -> JobRecord {
    JobRecord {
        id: id.into(),
        status,
        kind: llm_judge_judge::JudgeKind::Binary,
        route: "rules".into(),
        max_concurrent: 1,
        total: 0,
        created_at_ms: 0,
        finished_at_ms: None,
        idempotency_key: key.map(str::to_string),
        request_digest: digest.map(str::to_string),
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

fn id_of(c: Created) -> (&'static str, String) {
    match c {
        Created::New(r) => ("new", r.id),
        Created::Existing(r) => ("existing", r.id),
        Created::Conflict(r) => ("conflict", r.id),
        Created::InProgress(r) => ("in progress", r.id),
    }
}

#[test]
fn idempotency_keys_compare_digests_and_are_released_only_by_their_own_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    let none: &[Value] = &[];
    let new = |id, d| record(id, JobStatus::Queued, Some("k"), d);
    assert_eq!(
        id_of(store.create(new("a", Some("d1")), none).unwrap()),
        ("new", "a".into())
    );
    assert_eq!(
        id_of(store.create(new("b", Some("d1")), none).unwrap()),
        ("existing", "a".into())
    );
    assert_eq!(
        id_of(store.create(new("b", Some("d2")), none).unwrap()),
        ("conflict", "a".into())
    );
    // An upload (no digest yet) finds the job and compares later.
    assert_eq!(
        id_of(store.create(new("b", None), none).unwrap()),
        ("existing", "a".into())
    );
    let a = store.get("a").unwrap().unwrap();
    store.delete(&a).unwrap();
    let upload = record("c", JobStatus::Uploading, Some("k"), None);
    assert_eq!(
        id_of(store.create(upload, none).unwrap()),
        ("new", "c".into())
    );
    assert_eq!(
        id_of(store.create(new("d", Some("d1")), none).unwrap()),
        ("in progress", "c".into())
    );
    // Deleting the first job again (already gone) leaves the key with the upload.
    store.delete(&a).unwrap();
    assert_eq!(
        id_of(store.create(new("d", Some("d1")), none).unwrap()),
        ("in progress", "c".into())
    );
}

#[test]
fn update_is_a_compare_and_set_on_the_stored_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store
        .create::<Value>(record("a", JobStatus::Queued, None, None), &[])
        .unwrap();
    // A cancel lands first; a claim that expects `queued` then changes nothing.
    store
        .update("a", |r| {
            r.status = JobStatus::Cancelled;
            true
        })
        .unwrap();
    let after = store
        .update("a", |r| {
            if r.status != JobStatus::Queued {
                return false;
            }
            r.status = JobStatus::Running;
            true
        })
        .unwrap()
        .unwrap();
    assert_eq!(after.status, JobStatus::Cancelled);
    assert_eq!(
        store.get("a").unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert!(store.update("missing", |_| true).unwrap().is_none());
    // Committing results keeps the stored status (a cancel is not undone by a commit).
    store
        .update("a", |r| {
            r.status = JobStatus::Cancelling;
            true
        })
        .unwrap();
    let r = store
        .commit_results("a", 0, &[(0, b"{}".to_vec())])
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.committed), (JobStatus::Cancelling, 1));
    assert!(store.check().is_ok());
}
