//! The composition root: settings -> pool -> judge -> jobs -> the fleet's shared tiers -> the
//! state handlers share, and the bound server. The one module that knows every layer; only the
//! command line and the tests import it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use llm_judge_fleet::Redis;
use llm_judge_judge::Judge;
use llm_judge_judge::cache::VerdictCache;
use llm_judge_judge::cache::disk::DiskCache;
use llm_judge_judge::rules::RulesGrader;
use llm_judge_pool::Pool;
use llm_judge_work::budget::Limits;
use llm_judge_work::budget::daily::{DailyBudgets, client_name};
use llm_judge_work::calibrate::store::RedbRunStore;
use llm_judge_work::jobs::{JobSettings, Jobs};
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::server;

/// The pool (every provider client, once) and the judge over it, without the HTTP service or the
/// job store: what `llm-judge run` needs to judge in process.
pub fn build_judge(settings: &Settings) -> anyhow::Result<Arc<Judge>> {
    let pool = Arc::new(Pool::from_settings(
        &settings.pool(),
        Arc::new(RulesGrader),
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
    redis: Option<&Arc<Redis>>,
) -> anyhow::Result<Arc<Judge>> {
    let grader = Arc::new(RulesGrader);
    let pool = match redis {
        Some(r) => Pool::with_limiters(&settings.pool(), grader, &|p| {
            Arc::new(llm_judge_fleet::limiter::RedisLimiter::new(r.clone(), p))
        })?,
        None => Pool::from_settings(&settings.pool(), grader)?,
    };
    let c = &settings.cache;
    let ttl = Duration::from_secs_f64(c.ttl_hours * 3600.0);
    let mut cache = VerdictCache::new(settings.judge.cache_entries, c.memory_mb << 20);
    if c.disk_mb > 0 && cache.enabled() {
        let disk = DiskCache::open(settings.jobs.data_dir.as_ref(), c.disk_mb << 20, ttl)?;
        cache = cache.with_tier(Arc::new(disk));
    }
    if let Some(r) = redis {
        cache = cache.with_tier(Arc::new(llm_judge_fleet::cache::RedisCache::new(
            r.clone(),
            ttl,
        )));
    }
    Ok(Arc::new(
        Judge::with_cache(Arc::new(pool), settings.judge.clone(), cache)
            .with_quality(settings.panels.clone(), settings.route_options.clone()),
    ))
}

/// Jobs over the store the settings choose: the fleet's Redis, else redb in the data dir.
fn build_jobs(
    settings: &Settings,
    judge: &Arc<Judge>,
    redis: Option<&Arc<Redis>>,
) -> anyhow::Result<Arc<Jobs>> {
    let j = &settings.jobs;
    let job_settings = JobSettings {
        data_dir: j.data_dir.clone().into(),
        retention: Duration::from_secs_f64(j.retention_hours * 3600.0),
        janitor_interval: Duration::from_secs_f64(j.janitor_interval_s),
        commit_interval: Duration::from_millis(j.commit_interval_ms),
        cache_bytes: usize::try_from(j.cache_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        max_item_attempts: j.max_item_attempts,
        max_wait: Duration::from_secs(j.max_wait_s),
    };
    Ok(match redis {
        // Jobs any replica serves.
        Some(r) => {
            let store = llm_judge_fleet::jobs::RedisJobs::new(r.clone(), job_settings.retention);
            Jobs::with_store(job_settings, judge.clone(), Arc::new(store))
        }
        None => Jobs::open(job_settings, judge.clone())?,
    })
}

/// Each client token's daily budget, when `[auth]` sets one: jobs spend the day of the token
/// that sent them, and with Redis the day is the fleet's, kept across restarts.
fn build_daily_budgets(
    settings: &Settings,
    jobs: &Jobs,
    redis: Option<&Arc<Redis>>,
) -> Option<Arc<DailyBudgets>> {
    let names = settings
        .auth
        .tokens
        .iter()
        .map(|t| client_name(t.expose()))
        .collect();
    let daily = DailyBudgets::new(
        Limits {
            max_cost_usd: settings.auth.daily_budget_usd,
            max_tokens: settings.auth.daily_budget_tokens,
        },
        names,
    )?;
    jobs.count_against(daily.clone());
    if let Some(r) = redis {
        daily.share(Arc::new(llm_judge_fleet::spend::RedisSpend::new(r.clone())));
    }
    Some(daily)
}

/// Builds every layer, once, into what the handlers share.
pub fn state(settings: Settings) -> anyhow::Result<AppState> {
    let metrics = llm_judge_metrics::install();
    let redis = Redis::connect(&settings.redis)?;
    let judge = build_server_judge(&settings, redis.as_ref())?;
    let jobs = build_jobs(&settings, &judge, redis.as_ref())?;
    let runs = RedbRunStore::open(std::path::Path::new(&settings.jobs.data_dir))
        .map_err(|e| anyhow::anyhow!("calibration run store: {e}"))?;
    let daily_budgets = build_daily_budgets(&settings, &jobs, redis.as_ref());
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

/// Builds the HTTP application.
pub fn build_app(settings: Settings) -> anyhow::Result<(Router, AppState)> {
    let state = state(settings)?;
    Ok((api::router(state.clone()), state))
}

/// A bound, not yet running server; `local_addr()` lets tests bind to port 0.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub async fn bind(settings: Settings, listen: SocketAddr) -> anyhow::Result<Application> {
        // The port first: a start that cannot listen has created nothing (no data directory).
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| listen_error(listen, &e))?;
        let (router, state) = build_app(settings)?;
        if let Some(r) = &state.redis {
            r.start_probe();
        }
        let resumed = state.jobs.start().await?;
        if resumed > 0 {
            tracing::info!(resumed, "resumed unfinished jobs");
        }
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

/// Why the service cannot listen on `listen`, and what to do about it.
fn listen_error(listen: SocketAddr, e: &std::io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process listens there: stop it, or choose another address with \
             --listen HOST:PORT (or LLM_JUDGE_LISTEN, or server.listen)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "; no interface of this machine has that address: use --listen 127.0.0.1:PORT, or \
             0.0.0.0:PORT for every interface"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose --listen 127.0.0.1:8080 or another port"
        }
        _ => "",
    };
    anyhow::anyhow!("cannot listen on {listen}: {e}{hint}")
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
