//! llm-judge: an HTTP service that grades model outputs with LLM judges, alone or in batches,
//! across providers, with rate limits, retries, circuit breaking and ordered fallback.
//!
//! Layout (a request travels down this list, never up):
//! - [`api`]: HTTP routes, extractors, errors, the OpenAPI document, request ids and auth.
//! - [`batch`]: many items with bounded concurrency, results in order, summaries.
//! - [`judge`]: prompt templates, verdict parsing, the verdict cache, the rules pre-check.
//! - [`pool`]: routes and fallback over each provider's tower stack (retries, circuit breaker,
//!   timeouts, rate and concurrency limits), cost.
//! - [`providers`]: one wire format per file, each a tower `Service` over reqwest.
//! - [`chat`]: the provider-neutral request, completion and error types all of them share.
//! - [`config`], [`metrics`] and [`logs`] (the log writer) sit at the edge; `main.rs` is the
//!   command line, and [`cli`] is its `run` command (grading a file), a client of [`batch`] and
//!   [`api`]'s batch endpoint.

pub mod api;
pub mod batch;
pub mod chat;
pub mod cli;
pub mod config;
pub mod jobs;
pub mod judge;
pub mod lanes;
pub mod logs;
pub mod metrics;
pub mod pool;
pub mod providers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use config::Settings;
use jobs::{JobSettings, Jobs};
use judge::Judge;
use pool::Pool;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub judge: Arc<Judge>,
    pub jobs: Arc<Jobs>,
    pub metrics: PrometheusHandle,
    pub shutting_down: Arc<AtomicBool>,
}

/// The pool (every provider client, once) and the judge over it, without the HTTP service or the
/// job store: what `llm-judge run` needs to judge in process.
pub fn build_judge(settings: &Settings) -> anyhow::Result<Arc<Judge>> {
    let pool = Arc::new(Pool::from_settings(
        settings,
        Arc::new(judge::rules::RulesGrader),
    )?);
    Ok(Arc::new(Judge::new(pool, settings.judge.clone())))
}

impl AppState {
    /// Builds the pool (every provider client, once) and the judge.
    pub fn new(settings: Settings) -> anyhow::Result<AppState> {
        let metrics = metrics::install();
        let judge = build_judge(&settings)?;
        let j = &settings.jobs;
        let jobs = Jobs::open(
            JobSettings {
                data_dir: j.data_dir.clone().into(),
                retention: std::time::Duration::from_secs_f64(j.retention_hours * 3600.0),
                janitor_interval: std::time::Duration::from_secs_f64(j.janitor_interval_s),
                commit_interval: std::time::Duration::from_millis(j.commit_interval_ms),
                cache_bytes: usize::try_from(j.cache_mb.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
            },
            judge.clone(),
        )?;
        Ok(AppState {
            settings: Arc::new(settings),
            judge,
            jobs,
            metrics,
            shutting_down: Arc::new(AtomicBool::new(false)),
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
    /// and in-flight requests finish (the caller bounds how long with its grace period).
    ///
    /// Connections are served by `server.threads` threads of their own (see [`lanes`]), each a
    /// single-threaded runtime that runs the connections handed to it from start to end. The
    /// calling task accepts and hands each new connection to the next thread in turn; jobs and
    /// anything else spawned by the caller stay on the caller's runtime.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let threads = serving_threads(self.state.settings.server.threads);
        let addr = self.local_addr();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let runtimes = (0..threads)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let handles: Vec<tokio::runtime::Handle> =
            runtimes.iter().map(|rt| rt.handle().clone()).collect();
        let mut senders = Vec::with_capacity(threads);
        let mut finished = Vec::with_capacity(threads);
        for (lane, rt) in runtimes.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let router = self.router.clone();
            let mut stop = stop_rx.clone();
            let mut release = release_rx.clone();
            let all = handles.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("llm-judge-http-{lane}"))
                .spawn(move || {
                    lanes::enter(lane, all);
                    rt.block_on(async move {
                        let served = axum::serve(Handed { rx, addr }, router)
                            .with_graceful_shutdown(async move {
                                let _ = stop.wait_for(|v| *v).await;
                            })
                            .await;
                        let _ = done_tx.send(served);
                        // This thread may be judging items of a batch another lane is serving:
                        // it keeps running them until every lane has finished.
                        let _ = release.wait_for(|v| *v).await;
                    });
                });
            if let Err(e) = spawned {
                let _ = stop_tx.send(true);
                let _ = release_tx.send(true);
                return Err(e);
            }
            senders.push(tx);
            finished.push(done_rx);
        }
        let listener = self.listener;
        let mut next = 0usize;
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, _)) => {
                    // Replies split into two writes must not wait for the client's delayed ACK.
                    let _ = tcp.set_nodelay(true);
                    if let Ok(tcp) = tcp.into_std() {
                        let _ = senders[next].send(tcp);
                        next = (next + 1) % senders.len();
                    }
                }
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        self.state.shutting_down.store(true, Ordering::SeqCst);
        drop(listener);
        let _ = stop_tx.send(true);
        let mut result = Ok(());
        for done in finished {
            let served = done
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("a serving thread panicked")));
            result = result.and(served);
        }
        let _ = release_tx.send(true);
        result
    }
}

/// How many threads serve connections: `configured`, or one per CPU when it is 0.
pub fn serving_threads(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The connections handed to one serving thread.
struct Handed {
    rx: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
    addr: SocketAddr,
}

impl axum::serve::Listener for Handed {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(std) = self.rx.recv().await else {
                // No more connections come; shutdown ends the serving loop.
                return std::future::pending().await;
            };
            if let Ok(tcp) = tokio::net::TcpStream::from_std(std)
                && let Ok(peer) = tcp.peer_addr()
            {
                return (tcp, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
