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

mod job_store;
mod ops;
mod retry;
mod tables;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use redb::{Database, ReadableDatabase};

use super::record::now_ms;
use super::store::{RETRY_INTERVAL, StoreError};
pub use job_store::Embedded;
use tables::{META, err, open_db};

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
}
