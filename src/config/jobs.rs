//! The `[jobs]` section: where jobs are kept, how long, and how their results reach the disk,
//! with its defaults and checks.

use serde::Deserialize;

use super::check::{ConfigError, DAY_S, range};

/// The `[jobs]` defaults.
pub(super) const DEFAULTS: &str = r#"
[jobs]
data_dir = "llm-judge-data"
retention_hours = 168.0
janitor_interval_s = 60.0
commit_interval_ms = 50
max_items = 10000000
cache_mb = 16
max_item_attempts = 10
max_wait_s = 21600
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Where jobs, their items and results are kept (`--data-dir` overrides it).
    pub data_dir: String,
    /// Finished jobs are deleted this long after they finish.
    pub retention_hours: f64,
    /// How often finished jobs are checked for expiry.
    pub janitor_interval_s: f64,
    /// Results finishing within this window are committed to disk together.
    pub commit_interval_ms: u64,
    /// Most items in one NDJSON job upload.
    pub max_items: u64,
    /// Memory the job store may use to cache its pages, in MiB. It bounds the service's memory
    /// however large the jobs: without a bound, every page a long job writes stays cached.
    pub cache_mb: u64,
    /// How many times a job's item is sent while its route cannot be served (every step down,
    /// rate-limited or timing out) before it ends as an error; the job waits between them.
    pub max_item_attempts: u32,
    /// How long a job waits for its route's providers to answer again before it fails (a job
    /// may ask for its own `max_wait_s`).
    pub max_wait_s: u64,
}

/// The longest wait for a route's providers a job may ask for: 30 days.
pub const MAX_WAIT_S: u64 = 30 * 86_400;

/// Range checks of the `[jobs]` keys.
pub(super) fn check_ranges(j: &JobsConfig) -> Result<(), ConfigError> {
    range("jobs.retention_hours", j.retention_hours, 0.0001, 87_600.0)?;
    range("jobs.janitor_interval_s", j.janitor_interval_s, 0.1, DAY_S)?;
    range("jobs.commit_interval_ms", j.commit_interval_ms, 0, 60_000)?;
    range("jobs.max_items", j.max_items, 1, 1_000_000_000)?;
    range("jobs.cache_mb", j.cache_mb, 1, 1 << 20)?;
    range("jobs.max_item_attempts", j.max_item_attempts, 1, 1000)?;
    range("jobs.max_wait_s", j.max_wait_s, 1, MAX_WAIT_S)?;
    Ok(())
}

/// `jobs.data_dir` names a directory.
pub(super) fn check_data_dir(j: &JobsConfig) -> Result<(), ConfigError> {
    if j.data_dir.trim().is_empty() {
        return Err(ConfigError("jobs.data_dir must not be empty".into()));
    }
    Ok(())
}
