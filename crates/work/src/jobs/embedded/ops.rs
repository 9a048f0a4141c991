//! The embedded store's operations on jobs, their items and their results: each a read or a
//! write transaction of its own.

use redb::ReadableTable;
use serde_json::Value;

use super::Store;
use super::tables::{ITEMS, JOBS, KEYS, ORDER, RESULTS, decode, err, read_record, write_record};
use crate::jobs::record::{JobRecord, JobStatus, now_ms};
use crate::jobs::store::{Created, StoreError};

impl Store {
    /// Writes a new job and all its items in one transaction, or finds the job that already has
    /// its idempotency key. A new record with a request digest is compared with that job's.
    pub fn create<T: serde::Serialize>(
        &self,
        record: JobRecord,
        items: &[T],
    ) -> Result<Created, StoreError> {
        self.write(|txn| {
            let mut keys = txn.open_table(KEYS).map_err(err("open keys"))?;
            if let Some(key) = &record.idempotency_scope() {
                let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
                if let Some(id) = keys.get(key.as_str()).map_err(err("read key"))?
                    && let Some(bytes) = jobs.get(id.value()).map_err(err("read job"))?
                {
                    let existing = read_record(bytes.value())?;
                    return Ok(Created::found(existing, &record));
                }
                keys.insert(key.as_str(), record.id.as_str())
                    .map_err(err("write key"))?;
            }
            write_record(txn, &record)?;
            let mut table = txn.open_table(ITEMS).map_err(err("open items"))?;
            for (i, item) in items.iter().enumerate() {
                let bytes = serde_json::to_vec(item).map_err(decode("encode item"))?;
                table
                    .insert((record.id.as_str(), i as u64), bytes.as_slice())
                    .map_err(err("write item"))?;
            }
            Ok(Created::New(record))
        })
    }

    /// Appends items `first..` of an upload.
    pub fn append_items(&self, id: &str, first: u64, items: &[Value]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(ITEMS).map_err(err("open items"))?;
            for (i, item) in (first..).zip(items) {
                let bytes = serde_json::to_vec(item).map_err(decode("encode item"))?;
                table
                    .insert((id, i), bytes.as_slice())
                    .map_err(err("write item"))?;
            }
            Ok(())
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.read(|txn| {
            let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
            match jobs.get(id).map_err(err("read job"))? {
                Some(b) => Ok(Some(read_record(b.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = self.read(|txn| {
            let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
            let mut out = Vec::new();
            for row in jobs.iter().map_err(err("scan jobs"))? {
                let (_, v) = row.map_err(err("scan jobs"))?;
                out.push(read_record(v.value())?);
            }
            Ok(out)
        })?;
        out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Compare-and-set on a job's record, in one write transaction: `change` sees the stored
    /// record and returns true to store what it made of it. Returns the record as stored after
    /// the call (`None` when there is no such job).
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut JobRecord) -> bool,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.write(|txn| {
            let mut record = {
                let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
                match jobs.get(id).map_err(err("read job"))? {
                    Some(b) => read_record(b.value())?,
                    None => return Ok(None),
                }
            };
            if change(&mut record) {
                write_record(txn, &record)?;
            }
            Ok(Some(record))
        })
    }

    /// Up to `limit` items from index `from` on that have no result yet.
    /// The items of job `id` at `indices`, as stored (those not stored are left out).
    pub fn stored_items(&self, id: &str, indices: &[u64]) -> Result<Vec<(u64, Value)>, StoreError> {
        self.read(|txn| {
            let items = txn.open_table(ITEMS).map_err(err("open items"))?;
            let mut out = Vec::with_capacity(indices.len());
            for &index in indices {
                if let Some(v) = items.get((id, index)).map_err(err("read item"))? {
                    out.push((
                        index,
                        serde_json::from_slice(v.value()).unwrap_or(Value::Null),
                    ));
                }
            }
            Ok(out)
        })
    }

    pub fn pending(
        &self,
        id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Value)>, StoreError> {
        self.read(|txn| {
            let items = txn.open_table(ITEMS).map_err(err("open items"))?;
            let results = txn.open_table(RESULTS).map_err(err("open results"))?;
            let mut out = Vec::new();
            for row in items
                .range((id, from)..=(id, u64::MAX))
                .map_err(err("scan items"))?
            {
                let (k, v) = row.map_err(err("scan items"))?;
                let index = k.value().1;
                if results
                    .get((id, index))
                    .map_err(err("read result"))?
                    .is_some()
                {
                    continue;
                }
                let value = serde_json::from_slice(v.value()).unwrap_or(Value::Null);
                out.push((index, value));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Commits finished results, numbered in completion order from `first_seq`, and counts them
    /// in the job's record, in one transaction. Returns the record as stored (its status tells
    /// the runner whether the job was cancelled meanwhile).
    pub fn commit_results(
        &self,
        id: &str,
        first_seq: u64,
        entries: &[(u64, Vec<u8>)],
    ) -> Result<Option<JobRecord>, StoreError> {
        self.write(|txn| {
            let mut record = {
                let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
                match jobs.get(id).map_err(err("read job"))? {
                    Some(b) => read_record(b.value())?,
                    // Deleted meanwhile: nothing to add to.
                    None => return Ok(None),
                }
            };
            let mut results = txn.open_table(RESULTS).map_err(err("open results"))?;
            let mut order = txn.open_table(ORDER).map_err(err("open order"))?;
            for (seq, (index, bytes)) in (first_seq..).zip(entries) {
                results
                    .insert((id, *index), bytes.as_slice())
                    .map_err(err("write result"))?;
                order
                    .insert((id, seq), *index)
                    .map_err(err("write order"))?;
            }
            record.committed = first_seq + entries.len() as u64;
            write_record(txn, &record)?;
            Ok(Some(record))
        })
    }

    /// Up to `limit` results after index `after` (exclusive), in index order.
    pub fn results_by_index(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        let start = after.map_or(0, |a| a + 1);
        self.read(|txn| {
            let results = txn.open_table(RESULTS).map_err(err("open results"))?;
            let mut out = Vec::new();
            for row in results
                .range((id, start)..=(id, u64::MAX))
                .map_err(err("scan results"))?
            {
                let (k, v) = row.map_err(err("scan results"))?;
                out.push((k.value().1, v.value().to_vec()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Up to `limit` results after completion sequence `after` (exclusive), in completion order;
    /// each with its sequence number.
    pub fn results_by_completion(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        self.read(|txn| {
            let order = txn.open_table(ORDER).map_err(err("open order"))?;
            let results = txn.open_table(RESULTS).map_err(err("open results"))?;
            let mut out = Vec::new();
            for row in order
                .range((id, start)..=(id, u64::MAX))
                .map_err(err("scan order"))?
            {
                let (k, index) = row.map_err(err("scan order"))?;
                if let Some(v) = results
                    .get((id, index.value()))
                    .map_err(err("read result"))?
                {
                    out.push((k.value().1, v.value().to_vec()));
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Calls `f` with every committed result of a job, one at a time and in index order, each
    /// borrowed from the database's pages: nothing is collected (resuming a job with a million
    /// results holds one at a time).
    pub fn for_each_result(&self, id: &str, mut f: impl FnMut(&[u8])) -> Result<(), StoreError> {
        self.read(|txn| {
            let results = txn.open_table(RESULTS).map_err(err("open results"))?;
            for row in results
                .range((id, 0)..=(id, u64::MAX))
                .map_err(err("scan results"))?
            {
                let (_, v) = row.map_err(err("scan results"))?;
                f(v.value());
            }
            Ok(())
        })
    }

    /// Removes a job with its items and results, and releases its idempotency key.
    /// See [`crate::jobs::JobStore::abandon_upload`].
    pub fn abandon_upload(
        &self,
        id: &str,
        stale_before_ms: u64,
        reason: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.write(|txn| {
            let mut record = {
                let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
                match jobs.get(id).map_err(err("read job"))? {
                    Some(b) => read_record(b.value())?,
                    None => return Ok(None),
                }
            };
            if !record.upload_is_stale(stale_before_ms) {
                return Ok(Some(record));
            }
            record.status = JobStatus::Failed;
            record.error = Some(reason.to_string());
            record.finished_at_ms = Some(now_ms());
            write_record(txn, &record)?;
            if let Some(key) = &record.idempotency_scope() {
                let mut keys = txn.open_table(KEYS).map_err(err("open keys"))?;
                let mine = keys
                    .get(key.as_str())
                    .map_err(err("read key"))?
                    .is_some_and(|v| v.value() == id);
                if mine {
                    keys.remove(key.as_str()).map_err(err("remove key"))?;
                }
            }
            Ok(Some(record))
        })
    }

    pub fn delete(&self, record: &JobRecord) -> Result<(), StoreError> {
        let id = record.id.as_str();
        self.write(|txn| {
            let mut jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
            jobs.remove(id).map_err(err("remove job"))?;
            let mut items = txn.open_table(ITEMS).map_err(err("open items"))?;
            items
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                .map_err(err("remove items"))?;
            let mut results = txn.open_table(RESULTS).map_err(err("open results"))?;
            results
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                .map_err(err("remove results"))?;
            let mut order = txn.open_table(ORDER).map_err(err("open order"))?;
            order
                .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                .map_err(err("remove order"))?;
            if let Some(key) = &record.idempotency_scope() {
                let mut keys = txn.open_table(KEYS).map_err(err("open keys"))?;
                // Only this job's own key: after it expired, the key may name a newer job.
                let mine = keys
                    .get(key.as_str())
                    .map_err(err("read key"))?
                    .is_some_and(|v| v.value() == id);
                if mine {
                    keys.remove(key.as_str()).map_err(err("remove key"))?;
                }
            }
            Ok(())
        })
    }
}
