//! What a job is asked to be: the settings every job shares (where they are kept, how long,
//! how often results are committed) and the options each job is sent with.

use std::time::Duration;

use crate::batch;

/// Job settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub data_dir: std::path::PathBuf,
    /// Finished jobs are deleted this long after they finish.
    pub retention: Duration,
    pub janitor_interval: Duration,
    /// Results finishing within this window are committed together (one disk sync for many).
    pub commit_interval: Duration,
    /// The store's page cache, in bytes.
    pub cache_bytes: usize,
    /// How many times an item is sent while its route cannot be served before it ends as an
    /// error.
    pub max_item_attempts: u32,
    /// How long a job waits for its route to be served again before it fails (unless the job
    /// asks for its own).
    pub max_wait: Duration,
}

/// How a job is run, besides its route and concurrency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    /// Send items whose route's first step has a batch API as provider batches.
    pub provider_batch: bool,
    /// With `provider_batch`: seconds after creation when what the provider batches have not
    /// answered goes online.
    pub provider_batch_deadline_s: Option<u64>,
    /// The job's spend budget (empty: none).
    pub budget: batch::Limits,
    /// The name of the client token that sent the job, when its day has a budget: the job
    /// spends that day too.
    pub client: Option<String>,
    /// The tenant the job belongs to (see [`super::JobRecord::owner`]).
    pub owner: Option<String>,
    /// How long the job waits for its route to be served again before it fails (default:
    /// the `jobs.max_wait_s` setting).
    pub max_wait_s: Option<u64>,
}

/// The default of `provider_batch_deadline_s`: the providers' own completion window.
pub const DEFAULT_PROVIDER_BATCH_DEADLINE_S: u64 = 24 * 3600;
