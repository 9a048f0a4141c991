//! The verdict cache's embedded tier: answers kept on this node's disk (`cache.redb` in the data
//! directory, an embedded transactional database), so that a restart does not pay for them again.
//!
//! Bounded in size (`cache.disk_mb`: the oldest answers go first once the answers stored pass it)
//! and in age (`cache.ttl_hours`: an older answer is a miss, and is removed). Reads are direct
//! (the database's page cache, then the disk); writes go to one writer thread that commits what
//! arrived together in one transaction, so a judgment never waits for a disk sync. Writes that
//! arrive faster than the disk takes them are dropped: it is a cache.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use llm_judge_embedded::{Failed, Reopening, failed};
use redb::{ReadableTable, TableDefinition};

use super::tier::{CacheTier, CachedAnswer, Key};

/// Key -> stored-at (Unix µs, little endian) followed by the answer (JSON).
const ANSWERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("answers");
/// (stored-at, key), oldest first: what expires or is evicted next.
const AGE: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("age");
/// `bytes`: what the stored answers take.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// What one stored answer costs beyond its bytes (keys, the age index, the B-tree).
const OVERHEAD: u64 = 96;

/// An answer on its way to the writer: its key and its stored form.
type Write = (Key, Vec<u8>);

/// The embedded tier.
pub struct DiskCache {
    db: Arc<Reopening>,
    ttl_us: u64,
    writes: Mutex<Option<SyncSender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A stored-at time later than every one before it in this process, so that the age order is
/// the order answers were stored in.
fn stamp() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = now_us();
    let prev = LAST
        .fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |last| Some(last.max(now.saturating_sub(1)) + 1),
        )
        .unwrap_or(now);
    prev.max(now.saturating_sub(1)) + 1
}

impl DiskCache {
    /// Opens (or creates) `cache.redb` in `dir`, holding about `max_bytes` of answers for `ttl`.
    pub fn open(dir: &Path, max_bytes: u64, ttl: Duration) -> anyhow::Result<DiskCache> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("cache.redb");
        let db = Reopening::open("the verdict cache on disk", &path, 8 << 20, |db| {
            let txn = db.begin_write().map_err(failed("begin"))?;
            {
                txn.open_table(ANSWERS).map_err(failed("open answers"))?;
                txn.open_table(AGE).map_err(failed("open age"))?;
                txn.open_table(META).map_err(failed("open meta"))?;
            }
            txn.commit().map_err(failed("commit"))
        })?;
        let db = Arc::new(db);
        let (tx, rx) = std::sync::mpsc::sync_channel(10_000);
        let ttl_us = ttl.as_micros() as u64;
        let writer = {
            let db = db.clone();
            std::thread::Builder::new()
                .name("verdict-cache-disk".into())
                .spawn(move || write_loop(&db, &rx, max_bytes, ttl_us))?
        };
        Ok(DiskCache {
            db,
            ttl_us,
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    fn read(&self, key: &Key) -> Result<Option<CachedAnswer>, Failed> {
        self.db.read(|txn| {
            let table = txn.open_table(ANSWERS).map_err(failed("open answers"))?;
            let Some(v) = table.get(key).map_err(failed("read"))? else {
                return Ok(None);
            };
            let bytes = v.value();
            let Some((at, answer)) = bytes.split_first_chunk::<8>() else {
                return Ok(None);
            };
            if u64::from_le_bytes(*at).saturating_add(self.ttl_us) <= now_us() {
                return Ok(None);
            }
            Ok(CachedAnswer::decode(answer))
        })
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&self) {
        self.writes.lock().unwrap().take();
        if let Some(w) = self.writer.lock().unwrap().take() {
            let _ = w.join();
        }
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        self.close();
    }
}

impl CacheTier for DiskCache {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn health(&self) -> Result<(), String> {
        self.db.health()
    }

    fn get<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Option<CachedAnswer>> {
        let found = self.read(key).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "verdict cache on disk: read failed");
            None
        });
        futures::future::ready(found).boxed()
    }

    fn put(&self, key: Key, value: &CachedAnswer) {
        let mut bytes = stamp().to_le_bytes().to_vec();
        bytes.extend(value.encode());
        if let Some(tx) = self.writes.lock().unwrap().as_ref()
            && let Err(TrySendError::Full(_)) = tx.try_send((key, bytes))
        {
            tracing::debug!("verdict cache on disk: writer behind, an answer was not stored");
        }
    }
}

/// The writer: commits what arrived together, then removes what is too old or over the bound.
fn write_loop(db: &Reopening, rx: &Receiver<Write>, max_bytes: u64, ttl_us: u64) {
    let mut last_expiry = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(w) => Some(w),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<_> = first.into_iter().collect();
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let expire = last_expiry.elapsed() >= Duration::from_secs(60);
        if batch.is_empty() && !expire {
            continue;
        }
        if expire {
            last_expiry = Instant::now();
        }
        // A failure is the store's to report (once a minute) and to recover from: the answers
        // of a failed batch are not kept, as a cache may drop what it cannot hold.
        let _ = db.write(|txn| write_batch(txn, &batch, max_bytes, ttl_us));
    }
}

fn write_batch(
    txn: &redb::WriteTransaction,
    batch: &[Write],
    max_bytes: u64,
    ttl_us: u64,
) -> Result<(), Failed> {
    put_all(txn, batch, max_bytes, ttl_us).map_err(failed("write answers"))
}

fn put_all(
    txn: &redb::WriteTransaction,
    batch: &[Write],
    max_bytes: u64,
    ttl_us: u64,
) -> Result<(), redb::Error> {
    {
        let mut answers = txn.open_table(ANSWERS)?;
        let mut age = txn.open_table(AGE)?;
        let mut meta = txn.open_table(META)?;
        let mut bytes = meta.get("bytes")?.map_or(0, |v| v.value());
        for (key, value) in batch {
            let at = u64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]));
            if let Some(old) = answers.insert(key, value.as_slice())? {
                let old = old.value();
                let old_at = u64::from_le_bytes(old[..8].try_into().unwrap_or([0; 8]));
                bytes = bytes.saturating_sub(old.len() as u64 + OVERHEAD);
                age.remove((old_at, key))?;
            }
            age.insert((at, key), ())?;
            bytes += value.len() as u64 + OVERHEAD;
        }
        // The oldest go first: those past their age, then as many as the bound needs.
        let cutoff = now_us().saturating_sub(ttl_us);
        let mut gone = Vec::new();
        let mut freed = 0u64;
        for row in age.iter()? {
            let (k, _) = row?;
            let (at, key) = k.value();
            if at >= cutoff && bytes.saturating_sub(freed) <= max_bytes {
                break;
            }
            if let Some(v) = answers.get(key)? {
                freed += v.value().len() as u64 + OVERHEAD;
            }
            gone.push((at, *key));
        }
        for (at, key) in &gone {
            age.remove((*at, key))?;
            answers.remove(key)?;
        }
        meta.insert("bytes", bytes.saturating_sub(freed))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(i: usize, size: usize) -> CachedAnswer {
        CachedAnswer {
            text: format!("{i}:{}", "x".repeat(size)),
            provider: "p".into(),
            model: "m".into(),
            logprobs: None,
        }
    }

    #[tokio::test]
    async fn answers_survive_a_reopen_and_the_size_bound_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let key = |i: usize| crate::cache::VerdictCache::key(&[&i.to_string()]);
        {
            let c = DiskCache::open(dir.path(), 1 << 30, Duration::from_secs(3600)).unwrap();
            c.put(key(1), &answer(1, 10));
        }
        let c = DiskCache::open(dir.path(), 64 * 1024, Duration::from_secs(3600)).unwrap();
        assert_eq!(c.get(&key(1)).await, Some(answer(1, 10)));
        assert_eq!(c.get(&key(2)).await, None);
        // 200 answers of about 1 KiB into 64 KiB: the newest stay, the oldest go.
        for i in 100..300 {
            c.put(key(i), &answer(i, 1000));
        }
        drop(c);
        let c = DiskCache::open(dir.path(), 64 * 1024, Duration::from_secs(3600)).unwrap();
        let mut kept = Vec::new();
        for i in 100..300 {
            if c.get(&key(i)).await.is_some() {
                kept.push(i);
            }
        }
        assert!(kept.len() >= 40 && kept.len() <= 64, "{}", kept.len());
        assert!(kept.contains(&299), "the newest answer stays");
        assert!(!kept.contains(&100), "the oldest answer went first");
    }

    #[tokio::test]
    async fn an_answer_past_its_age_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open(dir.path(), 1 << 20, Duration::from_millis(1)).unwrap();
        let k = crate::cache::VerdictCache::key(&["k"]);
        c.put(k, &answer(0, 1));
        drop(c);
        std::thread::sleep(Duration::from_millis(5));
        let c = DiskCache::open(dir.path(), 1 << 20, Duration::from_millis(1)).unwrap();
        assert_eq!(c.get(&k).await, None);
    }
}
