//! The job store's contract for reading items again (`JobStore::items`), run against the
//! embedded store and the fleet's store in Redis: a runner that let go of the items of a
//! provider batch while the batch ran reads them back, as taken, when it answers.

use super::job_store::{Subject, create, indices, open_embedded, open_redis, record, take_all};
use llm_judge_work::jobs::JobStatus;

contract! {
    cases: [items_taken_are_read_again_as_they_were_handed_out],
    implementations: { embedded: open_embedded, redis: open_redis }
}

async fn items_taken_are_read_again_as_they_were_handed_out(s: &Subject) {
    let store = &*s.store;
    create(store, record("a", JobStatus::Running, 6, 1), 6).await;
    let mut cursor = 0;
    let (taken, _) = take_all(store, "a", &mut cursor).await;
    assert_eq!(indices(&taken), [0, 1, 2, 3, 4, 5]);

    let wanted: Vec<(u64, String)> = taken
        .iter()
        .filter(|w| w.index % 2 == 1)
        .map(|w| (w.index, w.ticket.clone()))
        .collect();
    let again = store.items("a", &wanted).await.unwrap();
    assert_eq!(indices(&again), [1, 3, 5]);
    for w in &again {
        let first = taken.iter().find(|t| t.index == w.index).unwrap();
        assert_eq!(w.item, first.item, "item {} as stored", w.index);
        assert_eq!(w.ticket, first.ticket, "item {} under its ticket", w.index);
        assert!(!w.claimed);
    }
    assert!(store.items("a", &[]).await.unwrap().is_empty());
}
