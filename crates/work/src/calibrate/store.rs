//! Where calibration runs are kept, so that a judge's figures can be followed over time: a small
//! trait, and its embedded implementation (a redb file beside the job store).
//!
//! A run is kept as its report without per-item results (see [`super::report::stored_form`]),
//! under an id that sorts by time, so listing newest first is a reverse scan.

use std::path::Path;
use std::sync::Arc;

use llm_judge_embedded::{Reopening, failed};
use redb::{ReadableTable, TableDefinition};
use serde_json::Value;

/// Run id -> the run's report (JSON).
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("calibration_runs");

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only runs that measured this judge, with only its figures.
    pub judge: Option<String>,
    /// Only runs on this gold set (its `dataset` digest).
    pub dataset: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
    /// Only the runs of this owner (a client token's name); `None`: everyone's.
    pub owner: Option<String>,
}

/// The field of a stored run that names its owner (a client token's name); it is kept with the
/// run and never listed.
pub const OWNER: &str = "owner";

/// Kept calibration runs. Calls block (disk I/O): async callers use `spawn_blocking`.
pub trait RunStore: Send + Sync {
    /// Keeps a run (its stored form, with `run_id` and `created_at_ms`).
    fn save(&self, run: &Value) -> Result<(), String>;
    /// Runs matching the query, newest first.
    fn list(&self, query: &RunQuery) -> Result<Vec<Value>, String>;
    /// `Ok` while runs can be kept; otherwise why not (for a readiness probe).
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Runs in an embedded database file, reopened after an I/O error (a full disk).
pub struct RedbRunStore {
    db: Reopening,
}

impl RedbRunStore {
    /// Opens (or creates) `calibration.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<RedbRunStore>, String> {
        let path = dir.join("calibration.redb");
        // Runs are small and read rarely: a small page cache is plenty.
        let db = Reopening::open("the calibration run store", &path, 4 << 20, |db| {
            let txn = db.begin_write().map_err(failed("begin"))?;
            txn.open_table(RUNS).map_err(failed("open runs"))?;
            txn.commit().map_err(failed("commit"))
        })
        .map_err(|e| e.to_string())?;
        Ok(Arc::new(RedbRunStore { db }))
    }
}

impl RunStore for RedbRunStore {
    fn save(&self, run: &Value) -> Result<(), String> {
        let id = run["run_id"]
            .as_str()
            .ok_or("a run needs a run_id")?
            .to_string();
        let bytes = serde_json::to_vec(run).map_err(|e| e.to_string())?;
        self.db
            .write(|txn| {
                let mut t = txn.open_table(RUNS).map_err(failed("open runs"))?;
                t.insert(id.as_str(), bytes.as_slice())
                    .map_err(failed("write run"))?;
                Ok(())
            })
            .map_err(|e| e.to_string())
    }

    fn list(&self, q: &RunQuery) -> Result<Vec<Value>, String> {
        self.db
            .read(|txn| {
                let t = txn.open_table(RUNS).map_err(failed("open runs"))?;
                let mut out = Vec::new();
                for row in t.iter().map_err(failed("read runs"))?.rev() {
                    if out.len() >= q.limit {
                        break;
                    }
                    let (_, v) = row.map_err(failed("read run"))?;
                    if let Some(run) = listed(v.value(), q) {
                        out.push(run);
                    }
                }
                Ok(out)
            })
            .map_err(|e| e.to_string())
    }

    fn health(&self) -> Result<(), String> {
        self.db.health()
    }
}

/// A stored run as the query lists it (only its judge's figures, without its owner), or
/// `None` when the query leaves it out.
fn listed(bytes: &[u8], q: &RunQuery) -> Option<Value> {
    let run = serde_json::from_slice::<Value>(bytes).ok()?;
    if q.dataset.as_deref().is_some_and(|d| run["dataset"] != d) {
        return None;
    }
    if q.owner.as_deref().is_some_and(|o| run[OWNER] != o) {
        return None;
    }
    let mut run = run;
    if let Some(fields) = run.as_object_mut() {
        fields.remove(OWNER);
    }
    super::report::only_judge(run, q.judge.as_deref())
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An id that sorts by creation time: the time in hex, then random digits.
pub fn new_run_id(ms: u64) -> String {
    format!("cal-{ms:012x}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_list_newest_first_filtered_by_judge_and_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbRunStore::open(dir.path()).unwrap();
        for (i, (dataset, judges)) in [("d1", vec!["a", "b"]), ("d1", vec!["b"]), ("d2", vec!["a"])]
            .into_iter()
            .enumerate()
        {
            let judges: Vec<Value> = judges
                .iter()
                .map(|j| json!({"judge": j, "cohen_kappa": i}))
                .collect();
            let run = json!({"run_id": new_run_id(1000 + i as u64), "dataset": dataset, "judges": judges});
            store.save(&run).unwrap();
        }
        let all = store
            .list(&RunQuery {
                limit: 10,
                ..RunQuery::default()
            })
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0]["dataset"], "d2", "newest first");
        let a = store
            .list(&RunQuery {
                judge: Some("a".into()),
                limit: 10,
                ..RunQuery::default()
            })
            .unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|r| r["judges"].as_array().unwrap().len() == 1));
        let a_d1 = store
            .list(&RunQuery {
                judge: Some("a".into()),
                dataset: Some("d1".into()),
                limit: 10,
                owner: None,
            })
            .unwrap();
        assert_eq!(a_d1.len(), 1);
        assert_eq!(a_d1[0]["judges"][0]["cohen_kappa"], 0);
        let one = store
            .list(&RunQuery {
                limit: 1,
                ..RunQuery::default()
            })
            .unwrap();
        assert_eq!(one.len(), 1);
        // Reopening keeps them.
        drop(store);
        let store = RedbRunStore::open(dir.path()).unwrap();
        assert_eq!(
            store
                .list(&RunQuery {
                    limit: 10,
                    ..RunQuery::default()
                })
                .unwrap()
                .len(),
            3
        );
    }
}
