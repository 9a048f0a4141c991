//! The job store: jobs, their items and their results in an embedded transactional database
//! (redb), so that a job survives a restart or a crash and resumes where it stopped.
//!
//! Every call is blocking (disk I/O): callers in async code use `spawn_blocking`.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Job id -> the job's record (JSON).
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// (job id, index) -> the item as submitted (JSON).
const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("items");
/// (job id, index) -> the result entry (JSON).
const RESULTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("results");
/// (job id, completion sequence) -> index, for results in completion order.
const ORDER: TableDefinition<(&str, u64), u64> = TableDefinition::new("order");
/// Idempotency key -> job id.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("idempotency");

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Items are still arriving (an NDJSON upload); never run, removed at start-up if unfinished.
    Uploading,
    Queued,
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl JobStatus {
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Cancelled | JobStatus::Failed
        )
    }
}

/// What is stored about a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub status: JobStatus,
    pub kind: crate::judge::JudgeKind,
    pub route: String,
    pub max_concurrent: usize,
    pub total: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    /// Results committed so far (also the next completion sequence number).
    pub committed: u64,
    /// The final summary, once finished.
    pub summary: Option<Value>,
    pub error: Option<String>,
}

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("job store: {0}")]
pub struct StoreError(pub String);

/// Writes (or overwrites) a job's record inside an open write transaction.
fn write_record(txn: &redb::WriteTransaction, record: &JobRecord) -> Result<(), StoreError> {
    let mut jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
    let bytes = serde_json::to_vec(record).map_err(err("encode job"))?;
    jobs.insert(record.id.as_str(), bytes.as_slice())
        .map_err(err("write job"))?;
    Ok(())
}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError(format!("{what}: {e}"))
}

/// The database.
pub struct Store {
    db: Database,
}

/// What creating a job did.
pub enum Created {
    New(JobRecord),
    /// The idempotency key was seen before: this is that job.
    Existing(JobRecord),
}

impl Store {
    /// Opens (or creates) the database file `jobs.redb` in `dir`, caching at most `cache_bytes`
    /// of its pages in memory.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("jobs.redb");
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(err("begin"))?;
        {
            txn.open_table(JOBS).map_err(err("open jobs"))?;
            txn.open_table(ITEMS).map_err(err("open items"))?;
            txn.open_table(RESULTS).map_err(err("open results"))?;
            txn.open_table(ORDER).map_err(err("open order"))?;
            txn.open_table(KEYS).map_err(err("open keys"))?;
        }
        txn.commit().map_err(err("commit"))?;
        Ok(Store { db })
    }

    /// Writes a new job and all its items in one transaction (or finds the job that already has
    /// this idempotency key).
    pub fn create<T: serde::Serialize>(
        &self,
        record: JobRecord,
        items: &[T],
    ) -> Result<Created, StoreError> {
        let txn = self.db.begin_write().map_err(err("begin"))?;
        {
            let mut keys = txn.open_table(KEYS).map_err(err("open keys"))?;
            let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
            if let Some(key) = &record.idempotency_key
                && let Some(id) = keys.get(key.as_str()).map_err(err("read key"))?
                && let Some(bytes) = jobs.get(id.value()).map_err(err("read job"))?
            {
                let existing: JobRecord =
                    serde_json::from_slice(bytes.value()).map_err(err("decode job"))?;
                return Ok(Created::Existing(existing));
            }
            drop(jobs);
            if let Some(key) = &record.idempotency_key {
                keys.insert(key.as_str(), record.id.as_str())
                    .map_err(err("write key"))?;
            }
            write_record(&txn, &record)?;
            let mut table = txn.open_table(ITEMS).map_err(err("open items"))?;
            for (i, item) in items.iter().enumerate() {
                let bytes = serde_json::to_vec(item).map_err(err("encode item"))?;
                table
                    .insert((record.id.as_str(), i as u64), bytes.as_slice())
                    .map_err(err("write item"))?;
            }
        }
        txn.commit().map_err(err("commit"))?;
        Ok(Created::New(record))
    }

    /// The job made with an idempotency key, if any.
    pub fn by_key(&self, key: &str) -> Result<Option<JobRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
        let keys = txn.open_table(KEYS).map_err(err("open keys"))?;
        let Some(id) = keys.get(key).map_err(err("read key"))? else {
            return Ok(None);
        };
        let id = id.value().to_string();
        drop(keys);
        drop(txn);
        self.get(&id)
    }

    /// Appends items `first..` of an upload.
    pub fn append_items(&self, id: &str, first: u64, items: &[Value]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err("begin"))?;
        {
            let mut table = txn.open_table(ITEMS).map_err(err("open items"))?;
            for (i, item) in (first..).zip(items) {
                let bytes = serde_json::to_vec(item).map_err(err("encode item"))?;
                table
                    .insert((id, i), bytes.as_slice())
                    .map_err(err("write item"))?;
            }
        }
        txn.commit().map_err(err("commit"))
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
        let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
        match jobs.get(id).map_err(err("read job"))? {
            Some(b) => Ok(Some(
                serde_json::from_slice(b.value()).map_err(err("decode job"))?,
            )),
            None => Ok(None),
        }
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
        let jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
        let mut out = Vec::new();
        for row in jobs.iter().map_err(err("scan jobs"))? {
            let (_, v) = row.map_err(err("scan jobs"))?;
            out.push(serde_json::from_slice::<JobRecord>(v.value()).map_err(err("decode job"))?);
        }
        out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    pub fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err("begin"))?;
        {
            write_record(&txn, record)?;
        }
        txn.commit().map_err(err("commit"))
    }

    /// Up to `limit` items from index `from` on that have no result yet.
    pub fn pending(
        &self,
        id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Value)>, StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
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
    }

    /// Commits finished results (and the job's record) in one transaction.
    pub fn commit_results(
        &self,
        record: &JobRecord,
        entries: &[(u64, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err("begin"))?;
        {
            let mut results = txn.open_table(RESULTS).map_err(err("open results"))?;
            let mut order = txn.open_table(ORDER).map_err(err("open order"))?;
            let first = record.committed - entries.len() as u64;
            for (seq, (index, bytes)) in (first..).zip(entries) {
                results
                    .insert((record.id.as_str(), *index), bytes.as_slice())
                    .map_err(err("write result"))?;
                order
                    .insert((record.id.as_str(), seq), *index)
                    .map_err(err("write order"))?;
            }
            write_record(&txn, record)?;
        }
        txn.commit().map_err(err("commit"))
    }

    /// Up to `limit` results after index `after` (exclusive), in index order.
    pub fn results_by_index(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
        let results = txn.open_table(RESULTS).map_err(err("open results"))?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        if after == Some(u64::MAX) {
            return Ok(out);
        }
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
    }

    /// Up to `limit` results after completion sequence `after` (exclusive), in completion order;
    /// each with its sequence number.
    pub fn results_by_completion(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
        let order = txn.open_table(ORDER).map_err(err("open order"))?;
        let results = txn.open_table(RESULTS).map_err(err("open results"))?;
        let start = after.map_or(0, |a| a.saturating_add(1));
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
    }

    /// Calls `f` with every committed result of a job (to rebuild its counts after a restart).
    pub fn for_each_result(&self, id: &str, mut f: impl FnMut(&[u8])) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(err("begin"))?;
        let results = txn.open_table(RESULTS).map_err(err("open results"))?;
        for row in results
            .range((id, 0)..=(id, u64::MAX))
            .map_err(err("scan results"))?
        {
            let (_, v) = row.map_err(err("scan results"))?;
            f(v.value());
        }
        Ok(())
    }

    /// Removes a job with its items and results.
    pub fn delete(&self, record: &JobRecord) -> Result<(), StoreError> {
        let id = record.id.as_str();
        let txn = self.db.begin_write().map_err(err("begin"))?;
        {
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
            if let Some(key) = &record.idempotency_key {
                let mut keys = txn.open_table(KEYS).map_err(err("open keys"))?;
                keys.remove(key.as_str()).map_err(err("remove key"))?;
            }
        }
        txn.commit().map_err(err("commit"))
    }
}
