//! The job manager and its state: the store, the judge, the settings, and the jobs running on
//! this process. The HTTP handlers' calls, the runners, uploads and the views all work on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::embedded::{Embedded, Store};
use super::options::JobSettings;
use super::provider_batch::Batches;
use super::store::{JobStore, StoreError};
use crate::batch::Summary;
use llm_judge_judge::Judge;

/// A running job's live state on this process.
pub(super) struct Live {
    pub(super) cancel: CancellationToken,
    /// What this runner counted (a single node's runner counts every result of the job), and
    /// how many were done before it started; `None` until it has counted what was stored.
    pub(super) summary: LiveSummary,
    /// The job's provider batches, when it makes them.
    pub(super) batches: LiveBatches,
    /// Set while the job waits for its route's providers to answer again.
    pub(super) waiting: LiveWaiting,
    pub(super) started: Instant,
}

/// What a job's progress says while the job waits for its route's providers.
pub(super) type LiveWaiting = Arc<Mutex<Option<crate::batch::Waiting>>>;

/// The job's provider batches, once its runner has started them.
pub(super) type LiveBatches = Arc<Mutex<Option<Arc<Batches>>>>;

/// What a job's runner counted, and how many items were done before it started; `None` until
/// it has counted what was stored.
pub(super) type LiveSummary = Arc<Mutex<Option<(Summary, usize)>>>;

/// The job manager, shared by the HTTP handlers.
pub struct Jobs {
    pub(super) store: Arc<dyn JobStore>,
    pub(super) judge: Arc<Judge>,
    pub(super) settings: JobSettings,
    pub(super) live: Mutex<HashMap<String, Live>>,
    /// The runtime [`Jobs::start`] ran on, where every job runs: not the serving thread that
    /// happened to take the request that made it.
    pub(super) runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// This process among a fleet's replicas (the owner of its provider-batch leases).
    pub(super) instance: String,
    /// Client tokens' daily budgets: a job sent with a token spends that token's day.
    pub(super) days: std::sync::OnceLock<Arc<dyn crate::budget::ClientDays>>,
}

impl Jobs {
    /// Opens the embedded store in the data directory; call [`Jobs::start`] to resume
    /// unfinished jobs and run the janitor.
    pub fn open(settings: JobSettings, judge: Arc<Judge>) -> Result<Arc<Jobs>, StoreError> {
        let store = Arc::new(Store::open(&settings.data_dir, settings.cache_bytes)?);
        Ok(Self::with_store(settings, judge, Arc::new(Embedded(store))))
    }

    /// Jobs sent with a client token spend that token's day in `days`.
    pub fn count_against(&self, days: Arc<dyn crate::budget::ClientDays>) {
        let _ = self.days.set(days);
    }

    /// The job manager over any store (one a fleet shares, say).
    pub fn with_store(
        settings: JobSettings,
        judge: Arc<Judge>,
        store: Arc<dyn JobStore>,
    ) -> Arc<Jobs> {
        Arc::new(Jobs {
            store,
            judge,
            settings,
            live: Mutex::new(HashMap::new()),
            runtime: std::sync::OnceLock::new(),
            instance: format!("{:016x}", rand::random::<u64>()),
            days: std::sync::OnceLock::new(),
        })
    }
}
