//! `llm-judge serve`: the HTTP service, with its logs on standard error, until SIGINT or
//! SIGTERM; in-flight requests are finished first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::runtime::runtime;
use crate::app::Application;
use crate::config::Settings;

/// The options of `llm-judge serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: server.listen from the configuration, 127.0.0.1:8080).
    #[arg(long, env = "LLM_JUDGE_LISTEN")]
    listen: Option<SocketAddr>,
    /// TOML configuration file (see llm-judge.example.toml).
    #[arg(long, env = "LLM_JUDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for persistent jobs (default: jobs.data_dir, ./llm-judge-data).
    #[arg(long, env = "LLM_JUDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(
        long,
        value_enum,
        default_value = "pretty",
        env = "LLM_JUDGE_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Pretty,
}

/// Runs the service; exit code 2 when it cannot start or stops on an error.
pub fn main(args: ServeArgs) -> ExitCode {
    let format = args.log_format;
    let _flush_logs_at_exit = init_tracing(format);
    let result = Settings::load(args.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            let rt = runtime(settings.server.threads)?;
            let served = rt.block_on(run_service(settings, args.listen, args.data_dir));
            // Jobs' blocking work (the store) gets a moment to end; then the process exits.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            served
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once: as a log line where logs are JSON (a collector reads them), else as a
            // plain line for the person who started it.
            match format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Pretty => eprintln!("llm-judge: {e:#}"),
            }
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr through tracing-appender's non-blocking writer: a request's line is handed
/// to a thread of its own that writes it out, so a request never waits for stderr (a pipe or a
/// file). Lines are never dropped: when the writer falls behind by its queue, logging waits. The
/// returned guard writes what is left when it is dropped, at exit.
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("llm-judge-log")
        .finish(std::io::stderr());
    // Colours only for a person at a terminal: log files and collectors get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Pretty => builder.compact().init(),
    }
    guard
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}

/// Binds the service (with the command line's address and data directory over the settings')
/// and serves until a shutdown signal.
async fn run_service(
    mut settings: Settings,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(dir) = data_dir {
        settings.jobs.data_dir = dir.display().to_string();
    }
    let listen = listen.unwrap_or(settings.listen);
    if settings.rules_only {
        tracing::info!(
            "no provider API key found: judging with the built-in deterministic `rules` judge. \
             To judge with a model, set OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY, ...), \
             or point a provider at a local OpenAI-compatible server with \
             LLM_JUDGE__PROVIDERS__OPENAI__BASE_URL=http://127.0.0.1:11434/v1"
        );
    }
    if !listen.ip().is_loopback() && !settings.auth.enabled() {
        tracing::warn!(%listen, "listening on a non-loopback address with no client tokens: anyone who can reach it can spend the provider keys; set [auth] tokens");
    }
    let routes: Vec<String> = settings
        .routes
        .iter()
        .map(|(n, s)| {
            format!(
                "{n}=[{}]",
                s.iter()
                    .map(|s| format!("{}:{}", s.provider, s.model))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let app = Application::bind(settings, listen).await?;
    tracing::info!(addr = %app.local_addr(), routes = %routes.join(" "), "llm-judge listening");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
