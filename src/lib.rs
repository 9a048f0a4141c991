//! llm-judge: an HTTP service that grades model outputs with LLM judges, alone or in batches,
//! across providers, with rate limits, retries, circuit breaking and ordered fallback.
//!
//! Layout (a request travels down this list, never up):
//! - [`server`]: accepting and serving connections (timeouts, connection cap, shutdown).
//! - [`api`]: HTTP routes and the layers in front of them (request ids, origins, auth, body
//!   bounds, the access line), extractors, errors, the OpenAPI document.
//! - [`batch`]: many items with bounded concurrency, results in order, summaries.
//! - [`calibrate`]: judges measured against labelled items (kappa, correlations, bias), and
//!   the runs kept to follow a judge over time.
//! - [`judge`]: prompt templates, verdict parsing, the verdict cache, the rules pre-check,
//!   confidence, panels of judges.
//! - [`pool`]: routes and fallback over each provider's tower stack (retries, circuit breaker,
//!   timeouts, rate and concurrency limits), cost.
//! - [`providers`]: one wire format per file, each a tower `Service` over reqwest.
//! - [`chat`]: the provider-neutral request, completion and error types all of them share.
//! - [`shared`]: what a fleet of replicas shares through Redis (limits, the verdict cache,
//!   jobs), and the verdict cache's tier on disk; implementations of the traits of [`pool`],
//!   [`judge`] and [`jobs`], wired in here.
//! - [`stats`]: agreement statistics (kappas, correlations), used by summaries and calibration.
//! - [`config`] and [`metrics`] sit at the edge; `main.rs` is the command line, and [`cli`] is
//!   its `run` command (grading a file), a client of [`batch`] and [`api`]'s batch endpoint.

pub mod api;
pub mod cli;
pub mod config;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use config::Settings;
use llm_judge_fleet as shared;
use llm_judge_judge::{self as judge, Judge};
use llm_judge_metrics as metrics;
use llm_judge_pool::Pool;
use llm_judge_work::batch;
use llm_judge_work::calibrate;
use llm_judge_work::jobs::{JobSettings, Jobs};

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
    pub redis: Option<Arc<shared::Redis>>,
    /// Each client token's daily spend, when `[auth]` sets a daily budget.
    pub daily_budgets: Option<Arc<api::budget::DailyBudgets>>,
}

/// The pool (every provider client, once) and the judge over it, without the HTTP service or the
/// job store: what `llm-judge run` needs to judge in process.
pub fn build_judge(settings: &Settings) -> anyhow::Result<Arc<Judge>> {
    let pool = Arc::new(Pool::from_settings(
        &settings.pool(),
        Arc::new(judge::rules::RulesGrader),
    )?);
    Ok(Arc::new(
        Judge::new(pool, settings.judge.clone())
            .with_quality(settings.panels.clone(), settings.route_options.clone()),
    ))
}

/// The pool and the judge of a server: with Redis, every provider's limits are the fleet's and
/// the verdict cache has a shared tier; with `cache.disk_mb`, a tier on disk in the data dir.
fn build_server_judge(
    settings: &Settings,
    redis: Option<&Arc<shared::Redis>>,
) -> anyhow::Result<Arc<Judge>> {
    let grader = Arc::new(judge::rules::RulesGrader);
    let pool = match redis {
        Some(r) => Pool::with_limiters(&settings.pool(), grader, &|p| {
            Arc::new(shared::limiter::RedisLimiter::new(r.clone(), p))
        })?,
        None => Pool::from_settings(&settings.pool(), grader)?,
    };
    let c = &settings.cache;
    let ttl = std::time::Duration::from_secs_f64(c.ttl_hours * 3600.0);
    let mut cache =
        judge::cache::VerdictCache::new(settings.judge.cache_entries, c.memory_mb << 20);
    if c.disk_mb > 0 && cache.enabled() {
        let disk = judge::cache::disk::DiskCache::open(
            settings.jobs.data_dir.as_ref(),
            c.disk_mb << 20,
            ttl,
        )?;
        cache = cache.with_tier(Arc::new(disk));
    }
    if let Some(r) = redis {
        cache = cache.with_tier(Arc::new(shared::cache::RedisCache::new(r.clone(), ttl)));
    }
    Ok(Arc::new(
        Judge::with_cache(Arc::new(pool), settings.judge.clone(), cache)
            .with_quality(settings.panels.clone(), settings.route_options.clone()),
    ))
}

impl AppState {
    /// Builds the pool (every provider client, once) and the judge.
    pub fn new(settings: Settings) -> anyhow::Result<AppState> {
        let metrics = metrics::install();
        let redis = shared::Redis::connect(&settings.redis)?;
        let judge = build_server_judge(&settings, redis.as_ref())?;
        let j = &settings.jobs;
        let job_settings = JobSettings {
            data_dir: j.data_dir.clone().into(),
            retention: std::time::Duration::from_secs_f64(j.retention_hours * 3600.0),
            janitor_interval: std::time::Duration::from_secs_f64(j.janitor_interval_s),
            commit_interval: std::time::Duration::from_millis(j.commit_interval_ms),
            cache_bytes: usize::try_from(j.cache_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        };
        let jobs = match &redis {
            // Jobs any replica serves.
            Some(r) => {
                let store = shared::jobs::RedisJobs::new(r.clone(), job_settings.retention);
                Jobs::with_store(job_settings, judge.clone(), Arc::new(store))
            }
            None => Jobs::open(job_settings, judge.clone())?,
        };
        let runs = calibrate::store::RedbRunStore::open(std::path::Path::new(&j.data_dir))
            .map_err(|e| anyhow::anyhow!("calibration run store: {e}"))?;
        let names = settings
            .auth
            .tokens
            .iter()
            .map(|t| api::budget::client_name(t.expose()))
            .collect();
        let daily_budgets = api::budget::DailyBudgets::new(
            batch::Limits {
                max_cost_usd: settings.auth.daily_budget_usd,
                max_tokens: settings.auth.daily_budget_tokens,
            },
            names,
        );
        if let Some(d) = &daily_budgets {
            // Jobs spend the day of the token that sent them.
            jobs.count_against(d.clone());
            if let Some(r) = &redis {
                // One budget per token and day for the whole fleet, kept across restarts.
                d.share(Arc::new(shared::spend::RedisSpend::new(r.clone())));
            }
        }
        Ok(AppState {
            daily_budgets,
            settings: Arc::new(settings),
            judge,
            jobs,
            runs,
            metrics,
            shutting_down: Arc::new(AtomicBool::new(false)),
            stop: tokio_util::sync::CancellationToken::new(),
            redis,
        })
    }
}

/// Builds the HTTP application.
pub fn build_app(settings: Settings) -> anyhow::Result<(Router, AppState)> {
    let state = AppState::new(settings)?;
    Ok((api::router(state.clone()), state))
}

/// A bound, not yet running server; `port()` lets tests bind to port 0.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub async fn bind(settings: Settings, listen: SocketAddr) -> anyhow::Result<Application> {
        let (router, state) = build_app(settings)?;
        if let Some(r) = &state.redis {
            r.start_probe();
        }
        let resumed = state.jobs.start().await?;
        if resumed > 0 {
            tracing::info!(resumed, "resumed unfinished jobs");
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then `/readyz` turns 503, no new connections are taken,
    /// and in-flight requests finish within `server.shutdown_grace_s` (see [`server`]). Every
    /// connection, batch and job runs on the caller's runtime.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        server::serve(self.listener, self.router, self.state, shutdown).await
    }
}

/// The runtime's worker threads: `configured`, or one per CPU the process may use (which
/// follows a container's CPU limit) when it is 0.
pub fn worker_threads(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
