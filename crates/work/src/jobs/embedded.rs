//! The job store: jobs, their items and their results in an embedded transactional database
//! (redb), so that a job survives a restart or a crash and resumes where it stopped.
//!
//! Every change of a job's record is a compare-and-set inside one write transaction
//! ([`Store::update`]), so that concurrent writers (a cancel, the job's runner) cannot undo each
//! other. A failed write (a full disk) leaves the database as the last commit left it; the store
//! then reopens the database on a later call and reports itself failing ([`Store::check`]) until
//! a write succeeds again.
//!
//! Every call is blocking (disk I/O): callers in async code use `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::record::{JobRecord, now_ms};
use super::store::{
    Change, Created, Done, JobStore, RETRY_INTERVAL, StoreError, Stored, Take, WorkItem,
};
use crate::batch::Summary;
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
/// Small bookkeeping values: the time of the last health probe.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Maps a database error, noting whether it is an I/O failure.
fn err<E: Into<redb::Error>>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| {
        let e: redb::Error = e.into();
        let transient = matches!(
            e,
            redb::Error::Io(_)
                | redb::Error::PreviousIo
                | redb::Error::DatabaseAlreadyOpen
                | redb::Error::DatabaseClosed
                | redb::Error::TransactionPoisoned
        );
        StoreError {
            message: format!("{what}: {e}"),
            transient,
        }
    }
}

fn decode(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::other(format!("{what}: {e}"))
}

fn read_record(bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(decode("decode job"))
}

/// Writes (or overwrites) a job's record inside an open write transaction.
fn write_record(txn: &redb::WriteTransaction, record: &JobRecord) -> Result<(), StoreError> {
    let mut jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
    let bytes = serde_json::to_vec(record).map_err(decode("encode job"))?;
    jobs.insert(record.id.as_str(), bytes.as_slice())
        .map_err(err("write job"))?;
    Ok(())
}

/// The database.
pub struct Store {
    path: PathBuf,
    cache_bytes: usize,
    /// The open database; `None` after an I/O failure, until it is reopened.
    db: RwLock<Option<Arc<Database>>>,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Why the last write failed, and when, until a write succeeds again.
    failing: Option<(String, Instant)>,
    /// The last attempt to reopen the database.
    reopened: Option<Instant>,
    /// The last probe of [`Store::check`].
    probed: Option<Instant>,
}

/// What a call wrote, for [`Store::observe`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrote {
    Nothing,
    /// Data: its success shows that writing works again.
    Data,
    /// The health probe: its success alone does not, while a job's own writes keep failing.
    Probe,
}

/// Opens the database file; `create_tables` on the first open (a reopen after a failure writes
/// nothing, so that reads work again even while the disk is still full).
fn open_db(path: &Path, cache_bytes: usize, create_tables: bool) -> Result<Database, StoreError> {
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| {
            let mut e = err("open")(e);
            e.message = format!("cannot open {}: {}", path.display(), e.message);
            e
        })?;
    if !create_tables {
        return Ok(db);
    }
    let txn = db.begin_write().map_err(err("begin"))?;
    {
        txn.open_table(JOBS).map_err(err("open jobs"))?;
        txn.open_table(ITEMS).map_err(err("open items"))?;
        txn.open_table(RESULTS).map_err(err("open results"))?;
        txn.open_table(ORDER).map_err(err("open order"))?;
        txn.open_table(KEYS).map_err(err("open keys"))?;
        txn.open_table(META).map_err(err("open meta"))?;
    }
    txn.commit().map_err(err("commit"))?;
    Ok(db)
}

impl Store {
    /// Opens (or creates) the database file `jobs.redb` in `dir`, caching at most `cache_bytes`
    /// of its pages in memory.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::other(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("jobs.redb");
        let db = open_db(&path, cache_bytes, true)?;
        Ok(Store {
            path,
            cache_bytes,
            db: RwLock::new(Some(Arc::new(db))),
            health: Mutex::new(Health::default()),
        })
    }

    /// The open database, reopened first when an I/O failure closed it (at most once per
    /// [`RETRY_INTERVAL`]).
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self.db.read().unwrap().as_ref() {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().unwrap();
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let mut health = self.health.lock().unwrap();
        // A call that finds the database closed is one more failure: it keeps the store failing.
        let reason = health
            .failing
            .as_ref()
            .map_or_else(|| "I/O error".to_string(), |(m, _)| m.clone());
        health.failing = Some((reason.clone(), Instant::now()));
        let unavailable = StoreError {
            message: format!("unavailable after a failed write ({reason}); retrying"),
            transient: true,
        };
        if health
            .reopened
            .is_some_and(|t| t.elapsed() < RETRY_INTERVAL)
        {
            return Err(unavailable);
        }
        health.reopened = Some(Instant::now());
        match open_db(&self.path, self.cache_bytes, false) {
            Ok(db) => {
                tracing::debug!("job store reopened");
                let db = Arc::new(db);
                *slot = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                tracing::warn!(error = %e, "job store: reopening failed");
                Err(unavailable)
            }
        }
    }

    /// Notes the outcome of a call on `db`: an I/O failure closes it (every later call on it
    /// would fail) and marks the store failing; a committed write marks it healthy.
    fn observe<T>(
        &self,
        db: &Arc<Database>,
        result: Result<T, StoreError>,
        wrote: Wrote,
    ) -> Result<T, StoreError> {
        match &result {
            Err(e) if e.transient => {
                let mut slot = self.db.write().unwrap();
                if slot.as_ref().is_some_and(|d| Arc::ptr_eq(d, db)) {
                    *slot = None;
                }
                let mut health = self.health.lock().unwrap();
                if health.failing.is_none() {
                    tracing::error!(error = %e, "job store: a write failed; the store reopens and retries");
                }
                health.failing = Some((e.message.clone(), Instant::now()));
            }
            Ok(_) if wrote == Wrote::Data => {
                let mut health = self.health.lock().unwrap();
                if health.failing.take().is_some() {
                    tracing::info!("job store: writing works again");
                }
            }
            _ => {}
        }
        result
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.db()?;
        let result = db.begin_read().map_err(err("begin")).and_then(|t| f(&t));
        self.observe(&db, result, Wrote::Nothing)
    }

    /// Runs `f` in one write transaction, committed when it returns `Ok` (aborted otherwise).
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_as(Wrote::Data, f)
    }

    fn write_as<T>(
        &self,
        wrote: Wrote,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.db()?;
        let result = db.begin_write().map_err(err("begin")).and_then(|txn| {
            let value = f(&txn)?;
            txn.commit().map_err(err("commit"))?;
            Ok(value)
        });
        self.observe(&db, result, wrote)
    }

    /// `Ok` while writes work; otherwise why the last one failed. A job waiting for the store
    /// retries its own write every [`RETRY_INTERVAL`], and its success is what makes the store
    /// healthy again. When no write has failed for twice that long (nothing is waiting), a small
    /// probe write (at most once per interval) finds out whether writes work again.
    pub fn check(&self) -> Result<(), String> {
        {
            let mut health = self.health.lock().unwrap();
            let Some((reason, at)) = health.failing.clone() else {
                return Ok(());
            };
            if at.elapsed() < 2 * RETRY_INTERVAL
                || health.probed.is_some_and(|t| t.elapsed() < RETRY_INTERVAL)
            {
                return Err(reason);
            }
            health.probed = Some(Instant::now());
        }
        self.write_as(Wrote::Probe, |txn| {
            let mut meta = txn.open_table(META).map_err(err("open meta"))?;
            meta.insert("probed_at_ms", now_ms())
                .map_err(err("write probe"))?;
            Ok(())
        })
        .map_err(|e| e.message)?;
        let mut health = self.health.lock().unwrap();
        match &health.failing {
            // A write failed again while the probe ran.
            Some((reason, at)) if at.elapsed() < RETRY_INTERVAL => Err(reason.clone()),
            _ => {
                health.failing = None;
                tracing::info!("job store: writing works again");
                Ok(())
            }
        }
    }

    /// Writes a new job and all its items in one transaction, or finds the job that already has
    /// its idempotency key. A new record with a request digest is compared with that job's.
    pub fn create<T: serde::Serialize>(
        &self,
        record: JobRecord,
        items: &[T],
    ) -> Result<Created, StoreError> {
        self.write(|txn| {
            let mut keys = txn.open_table(KEYS).map_err(err("open keys"))?;
            if let Some(key) = &record.idempotency_key {
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
            if let Some(key) = &record.idempotency_key {
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

/// The embedded store as a [`JobStore`]: every call runs on tokio's blocking pool.
pub struct Embedded(pub Arc<Store>);

impl Embedded {
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&store))
                .await
                .map_err(|e| StoreError::other(format!("store task failed: {e}")))?
        })
    }
}

impl JobStore for Embedded {
    fn fleet(&self) -> bool {
        false
    }

    fn create(
        &self,
        record: JobRecord,
        items: Vec<Box<serde_json::value::RawValue>>,
    ) -> BoxFuture<'_, Result<Created, StoreError>> {
        self.run(move |s| s.create(record, &items))
    }

    fn append_items(
        &self,
        id: &str,
        first: u64,
        items: Vec<Value>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.append_items(&id, first, &items))
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.get(&id))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        self.run(|s| s.list())
    }

    fn update(
        &self,
        id: &str,
        change: Change,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| s.update(&id, |r| change(r)))
    }

    fn take<'a>(
        &'a self,
        id: &'a str,
        cursor: &'a mut u64,
        _free: usize,
    ) -> BoxFuture<'a, Result<Take, StoreError>> {
        let (key, from) = (id.to_string(), *cursor);
        let page = self.run(move |s| s.pending(&key, from, 512));
        Box::pin(async move {
            let page = page.await?;
            let Some((last, _)) = page.last() else {
                return Ok(Take::Drained);
            };
            *cursor = last + 1;
            Ok(Take::Items(
                page.into_iter()
                    .map(|(index, item)| WorkItem {
                        index,
                        item,
                        ticket: String::new(),
                        claimed: false,
                    })
                    .collect(),
            ))
        })
    }

    fn touch<'a>(
        &'a self,
        _id: &'a str,
        _tickets: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn commit(
        &self,
        id: &str,
        first_seq: u64,
        done: Vec<Done>,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| {
            let entries: Vec<(u64, Vec<u8>)> =
                done.into_iter().map(|d| (d.index, d.json)).collect();
            s.commit_results(&id, first_seq, &entries)
        })
    }

    fn results(
        &self,
        id: &str,
        after: Option<u64>,
        by_completion: bool,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Stored>, StoreError>> {
        let id = id.to_string();
        self.run(move |s| {
            if by_completion {
                s.results_by_completion(&id, after, limit)
            } else {
                s.results_by_index(&id, after, limit)
            }
        })
    }

    fn summarize(
        &self,
        id: &str,
        mut summary: Summary,
    ) -> BoxFuture<'_, Result<Summary, StoreError>> {
        let id = id.to_string();
        self.run(move |s| {
            s.for_each_result(&id, |b| {
                summary.add(&serde_json::from_slice::<Value>(b).unwrap_or(Value::Null))
            })?;
            Ok(summary)
        })
    }

    fn delete(&self, record: &JobRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let record = record.clone();
        self.run(move |s| s.delete(&record))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let store = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.check())
                .await
                .unwrap_or_else(|e| Err(format!("store check failed: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::record::JobStatus;

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
}
