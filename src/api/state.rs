//! What every handler shares: the settings, the judge, jobs, kept calibration runs, the
//! metrics handle, the shutdown signals, the fleet's Redis and each client token's daily budget.
//! Built by the composition root (`crate::app`); handlers only read it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use llm_judge_judge::Judge;
use llm_judge_work::budget::daily::DailyBudgets;
use llm_judge_work::calibrate;
use llm_judge_work::jobs::Jobs;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub judge: Arc<Judge>,
    pub jobs: Arc<Jobs>,
    /// Kept calibration runs.
    pub runs: Arc<dyn calibrate::store::RunStore>,
    pub metrics: PrometheusHandle,
    /// Set when shutdown starts: new work is refused, `/readyz` answers 503.
    pub shutting_down: Arc<AtomicBool>,
    /// Cancelled when the shutdown grace period is over: work still running stops and says so.
    pub stop: tokio_util::sync::CancellationToken,
    /// The Redis the fleet shares, when `[redis]` is configured.
    pub redis: Option<Arc<llm_judge_fleet::Redis>>,
    /// Each client token's daily spend, when `[auth]` sets a daily budget.
    pub daily_budgets: Option<Arc<DailyBudgets>>,
}
