//! The embedded job store's tables, how its records are encoded, how redb's errors become
//! [`StoreError`]s, and opening the database file.

use std::path::Path;

use redb::{Database, TableDefinition};

use crate::jobs::record::JobRecord;
use crate::jobs::store::StoreError;

/// Job id -> the job's record (JSON).
pub(super) const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// (job id, index) -> the item as submitted (JSON).
pub(super) const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("items");
/// (job id, index) -> the result entry (JSON).
pub(super) const RESULTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("results");
/// (job id, completion sequence) -> index, for results in completion order.
pub(super) const ORDER: TableDefinition<(&str, u64), u64> = TableDefinition::new("order");
/// Idempotency key -> job id.
pub(super) const KEYS: TableDefinition<&str, &str> = TableDefinition::new("idempotency");
/// Small bookkeeping values: the time of the last health probe.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Maps a database error, noting whether it is an I/O failure.
pub(super) fn err<E: Into<redb::Error>>(what: &'static str) -> impl Fn(E) -> StoreError {
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

pub(super) fn decode(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::other(format!("{what}: {e}"))
}

pub(super) fn read_record(bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(decode("decode job"))
}

/// Writes (or overwrites) a job's record inside an open write transaction.
pub(super) fn write_record(
    txn: &redb::WriteTransaction,
    record: &JobRecord,
) -> Result<(), StoreError> {
    let mut jobs = txn.open_table(JOBS).map_err(err("open jobs"))?;
    let bytes = serde_json::to_vec(record).map_err(decode("encode job"))?;
    jobs.insert(record.id.as_str(), bytes.as_slice())
        .map_err(err("write job"))?;
    Ok(())
}

/// Opens the database file; `create_tables` on the first open (a reopen after a failure writes
/// nothing, so that reads work again even while the disk is still full).
pub(super) fn open_db(
    path: &Path,
    cache_bytes: usize,
    create_tables: bool,
) -> Result<Database, StoreError> {
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
