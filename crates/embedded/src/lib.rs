//! An embedded database (redb) that reopens itself after an I/O error, for the stores a single
//! node keeps on its disk (the verdict cache's tier, calibration runs).
//!
//! After an I/O error (a full disk, say) redb answers every later call on that database with an
//! error until it is opened again. [`Reopening`] closes it at the first such error, opens it
//! again on a later call (at most once per [`RETRY_INTERVAL`]), and keeps why writing fails until
//! a write succeeds again: [`Reopening::health`] is what a readiness probe reports. Its warnings
//! are rate-limited ([`Warnings`]), so a store that keeps failing writes a line a minute, not a
//! line a call.
//!
//! Every call blocks (disk I/O): async callers use `spawn_blocking`.

mod warnings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};
pub use warnings::Warnings;

/// The shortest time between two attempts to reopen a database after an I/O error.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Why a call failed; `io` when the disk failed (the call may work again later), not the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub message: String,
    pub io: bool,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// Turns a redb error into a [`Failed`] that says what was being done.
pub fn failed<E: Into<redb::Error>>(what: &'static str) -> impl Fn(E) -> Failed {
    move |e| {
        let e: redb::Error = e.into();
        let io = matches!(
            e,
            redb::Error::Io(_)
                | redb::Error::PreviousIo
                | redb::Error::DatabaseAlreadyOpen
                | redb::Error::DatabaseClosed
                | redb::Error::TransactionPoisoned
        );
        Failed {
            message: format!("{what}: {e}"),
            io,
        }
    }
}

/// A database that reopens itself after an I/O error.
pub struct Reopening {
    /// What the store is, in log lines ("the verdict cache on disk").
    name: &'static str,
    path: PathBuf,
    cache_bytes: usize,
    db: RwLock<Option<Arc<Database>>>,
    health: Mutex<Health>,
    warnings: Warnings,
}

#[derive(Default)]
struct Health {
    /// Why the last write failed, and when, until a write succeeds again.
    failing: Option<(String, Instant)>,
    /// The last attempt to reopen the database.
    reopened: Option<Instant>,
    /// The last probe write of [`Reopening::health`].
    probed: Option<Instant>,
}

impl Reopening {
    /// Opens (or creates) the database at `path` and runs `init` on it (creating its tables).
    pub fn open(
        name: &'static str,
        path: &Path,
        cache_bytes: usize,
        init: impl FnOnce(&Database) -> Result<(), Failed>,
    ) -> Result<Reopening, Failed> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Failed {
                message: format!("cannot create {}: {e}", dir.display()),
                io: true,
            })?;
        }
        let db = open(path, cache_bytes)?;
        init(&db)?;
        Ok(Reopening {
            name,
            path: path.to_path_buf(),
            cache_bytes,
            db: RwLock::new(Some(Arc::new(db))),
            health: Mutex::new(Health::default()),
            warnings: Warnings::every(Duration::from_secs(60)),
        })
    }

    /// The open database, reopened first when an I/O error closed it.
    fn db(&self) -> Result<Arc<Database>, Failed> {
        if let Some(db) = self.db.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let reason = health
            .failing
            .as_ref()
            .map_or_else(|| "I/O error".to_string(), |(m, _)| m.clone());
        let unavailable = Failed {
            message: format!("unavailable after an I/O error ({reason}); retrying"),
            io: true,
        };
        if health
            .reopened
            .is_some_and(|t| t.elapsed() < RETRY_INTERVAL)
        {
            return Err(unavailable);
        }
        health.reopened = Some(Instant::now());
        match open(&self.path, self.cache_bytes) {
            Ok(db) => {
                tracing::debug!(store = self.name, "reopened");
                let db = Arc::new(db);
                *slot = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                self.warnings
                    .warn(|n| tracing::warn!(store = self.name, error = %e, repeated = n, "reopening failed"));
                Err(unavailable)
            }
        }
    }

    /// Notes a call's outcome: an I/O error closes the database and marks writing failing; a
    /// committed write marks it healthy again.
    fn observe<T>(
        &self,
        db: &Arc<Database>,
        result: Result<T, Failed>,
        wrote: bool,
    ) -> Result<T, Failed> {
        match &result {
            Err(e) if e.io => {
                let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_some_and(|d| Arc::ptr_eq(d, db)) {
                    *slot = None;
                }
                let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
                health.failing = Some((e.message.clone(), Instant::now()));
                self.warnings.warn(|n| {
                    tracing::warn!(store = self.name, error = %e, repeated = n, "an I/O error: the store reopens and tries again");
                });
            }
            Ok(_) if wrote => {
                let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
                if health.failing.take().is_some() {
                    tracing::info!(store = self.name, "writing works again");
                    self.warnings.reset();
                }
            }
            _ => {}
        }
        result
    }

    /// Runs `f` in a read transaction.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, Failed>,
    ) -> Result<T, Failed> {
        let db = self.db()?;
        let result = db
            .begin_read()
            .map_err(failed("begin a read"))
            .and_then(|t| f(&t));
        self.observe(&db, result, false)
    }

    /// Runs `f` in one write transaction, committed when it returns `Ok`.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Failed>,
    ) -> Result<T, Failed> {
        let db = self.db()?;
        let result = db
            .begin_write()
            .map_err(failed("begin a write"))
            .and_then(|txn| {
                let value = f(&txn)?;
                txn.commit().map_err(failed("commit"))?;
                Ok(value)
            });
        self.observe(&db, result, true)
    }

    /// `Ok` while writes work; otherwise why the last one failed (until one succeeds again).
    /// A store written rarely would stay failing long after its disk has room again: when no
    /// write has failed for a while, a small probe write (at most once per [`RETRY_INTERVAL`])
    /// finds out whether writing works again.
    pub fn health(&self) -> Result<(), String> {
        {
            let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            let Some((reason, at)) = health.failing.clone() else {
                return Ok(());
            };
            if at.elapsed() < 2 * RETRY_INTERVAL
                || health.probed.is_some_and(|t| t.elapsed() < RETRY_INTERVAL)
            {
                return Err(format!("{}: {reason}", self.name));
            }
            health.probed = Some(Instant::now());
        }
        self.write(|_| Ok(()))
            .map_err(|e| format!("{}: {e}", self.name))
    }
}

fn open(path: &Path, cache_bytes: usize) -> Result<Database, Failed> {
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| {
            let mut f = failed("open")(e);
            f.message = format!("cannot open {}: {}", path.display(), f.message);
            f
        })
}

#[cfg(test)]
mod tests;
