//! The lease of a fleet's replica on a job's provider batches: one replica at a time drives
//! them, and another takes over once its lease has run out.

use std::time::Duration;

use crate::jobs::record::{JobRecord, Lease, now_ms};
use crate::jobs::store::{JobStore, StoreError, change, retrying};

/// Takes (or renews) the lease on `id`'s provider batches for `owner`, for `length`, unless
/// another replica holds it; the record as stored after, and whether `owner` holds it.
pub async fn lease(
    store: &dyn JobStore,
    id: &str,
    owner: &str,
    length: Duration,
) -> Result<Option<(JobRecord, bool)>, StoreError> {
    let me = owner.to_string();
    let take = change(move |r| {
        let now = now_ms();
        let free = r
            .driver
            .as_ref()
            .is_none_or(|l| l.owner == me || l.until_ms <= now);
        if !free || r.status.is_finished() {
            return false;
        }
        r.driver = Some(Lease {
            owner: me.clone(),
            until_ms: now + length.as_millis() as u64,
        });
        true
    });
    let stored = retrying(id, || store.update(id, take.clone())).await?;
    Ok(stored.map(|r| {
        let mine = r.driver.as_ref().is_some_and(|l| l.owner == owner);
        (r, mine)
    }))
}
