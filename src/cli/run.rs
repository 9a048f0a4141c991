//! `llm-judge run`: the command line arguments, the checks made before anything runs (exit 2 on
//! any problem), and the end of the run (summary, `--summary-json`, `--fail-under`, exit code).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::ValueEnum;
use tokio::sync::watch;

use super::args::{
    EXIT_FAIL_UNDER, EXIT_FAILED, EXIT_PIPE_CLOSED, EXIT_USAGE, KindArg, parse_fraction,
};
use super::engine::{Backend, Engine, Outcome};
use super::input::{self, Format};
use super::output::{self, IndexSet, Sink};
use super::record::Record;
use super::remote::Remote;
use super::report::Tally;
use crate::config::Settings;
use llm_judge_judge::JudgeKind;
use llm_judge_work::batch::{Budget, Limits};

/// Grade every item of a file (JSON Lines, gzip JSON Lines or CSV) and write one result line per
/// item.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Items to judge: JSON Lines (.jsonl), gzip (.jsonl.gz, or any file starting with the gzip
    /// magic bytes) or CSV with a header (.csv, .csv.gz); `-` reads standard input.
    #[arg(long, short, required_unless_present = "retry_errors")]
    pub input: Option<PathBuf>,
    /// Results, one JSON line per item (default: standard output). An existing file is resumed:
    /// items with an `ok` entry are skipped, error entries are judged again.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Start over: empty the --output file instead of resuming from it.
    #[arg(long)]
    pub overwrite: bool,
    /// The kind of judgment; items have the fields of that kind's single endpoint.
    #[arg(long, value_enum, default_value = "binary")]
    pub kind: KindArg,
    /// The input's layout when its name does not tell (default: CSV for .csv, else JSON Lines).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The judge (route) for items that name none (default: the default route).
    #[arg(long)]
    pub judge: Option<String>,
    /// Items judged at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub concurrency: u16,
    /// TOML configuration file (see llm-judge.example.toml).
    #[arg(long, env = "LLM_JUDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Send the items to a running llm-judge service (e.g. http://127.0.0.1:8080) instead of
    /// judging in this process.
    #[arg(long)]
    pub server: Option<String>,
    /// Client token for --server (sent as Authorization: Bearer).
    #[arg(long, env = "LLM_JUDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Exit with code 3 when the accuracy is below this (0 to 1), or when nothing was graded
    /// correct or incorrect.
    #[arg(long, value_name = "ACCURACY", value_parser = parse_fraction)]
    pub fail_under: Option<f64>,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
    /// After Ctrl-C or SIGTERM, how long items in flight may take to finish, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub grace: f64,
    /// The most this run may spend, in US dollars: an item is sent only while what is spent,
    /// what is in flight and its estimate stay within it; the rest become budget_exhausted
    /// entries (judged again when the run is resumed). Every model the judge may call needs a
    /// price in [prices].
    #[arg(long, value_name = "USD", value_parser = parse_usd)]
    pub max_cost_usd: Option<f64>,
    /// The most tokens (prompt and completion) this run may use, by the same rule; needs no prices.
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: Option<u64>,
    /// Send items whose judge's first step is OpenAI, Azure OpenAI or Anthropic through the
    /// provider's batch API, at the batch price (results within 24 hours; items it does not
    /// answer go online). Items go as jobs of up to 10,000 (`POST /v1/jobs` with --server, else
    /// a service in this process keeping its jobs in the configuration's jobs.data_dir, so that
    /// an interrupted run started again finds its batches).
    #[arg(long)]
    pub provider_batch: bool,
    /// With --server: send the errored items of the server's finished job JOB again (and any it
    /// never judged), follow it until it ends, and write all its results (to --output, else
    /// standard output) and its summary. Exit 0 when the job completes, 1 when it fails.
    #[arg(long, value_name = "JOB", requires = "server", conflicts_with_all = ["input", "provider_batch"])]
    pub retry_errors: Option<String>,
}

fn parse_usd(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not an amount of dollars above 0")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Jsonl,
    Csv,
}

/// Runs the command; every problem found before judging starts is exit code 2.
pub async fn run(args: RunArgs) -> ExitCode {
    if let Some(job) = &args.retry_errors {
        return super::retry::run(&args, job).await;
    }
    let signals = signals();
    let started = Instant::now();
    let prepared = match prepare(&args).await {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("llm-judge run: {msg}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Prepared {
        engine,
        records,
        done,
    } = prepared;
    let outcome = engine.run(records, done, signals).await;
    finish(&args, outcome, started)
}

struct Prepared {
    engine: Engine,
    records: Box<dyn Iterator<Item = std::io::Result<Record>> + Send>,
    done: Arc<IndexSet>,
}

/// Everything checked and opened before judging starts.
async fn prepare(args: &RunArgs) -> Result<Prepared, String> {
    let kind: JudgeKind = args.kind.into();
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        return Err("--grace must be a number of seconds, 0 or more".into());
    }
    let input = open_input(args, kind)?;
    let backend = backend(args, kind).await?;
    // A provider-batch run hands the service a job of many items at a time.
    let concurrency = if args.provider_batch {
        super::remote::JOB_CHUNK
    } else {
        usize::from(args.concurrency)
    };
    let budget = run_budget(args, &backend)?;
    let mut tally = Tally::new(kind);
    let (done, note) = resume(args, &mut tally)?;
    let sink = Sink::open(args.output.as_deref(), args.overwrite).map_err(|e| {
        let out = args.output.as_deref().unwrap_or(Path::new("-"));
        format!("cannot write the output {}: {e}", out.display())
    })?;
    announce(args, &input, kind, &backend);
    if let Some(n) = note {
        eprintln!("llm-judge run: {n}");
    }
    let precount = if input.gzip {
        None
    } else {
        Some((input.path.clone(), input.format))
    };
    let engine = Engine::new(
        backend,
        kind,
        concurrency,
        std::time::Duration::from_secs_f64(args.grace),
        sink,
        tally,
        precount,
    )
    .with_budget(budget);
    Ok(Prepared {
        engine,
        records: input.records,
        done: Arc::new(done),
    })
}

/// The opened input: how it is named to a person, its layout, whether it is gzip, its records.
struct Input {
    path: PathBuf,
    shown: String,
    format: Format,
    gzip: bool,
    records: Box<dyn Iterator<Item = std::io::Result<Record>> + Send>,
}

/// Opens the input (a CSV header is checked against the kind), and makes sure the output is
/// another file.
fn open_input(args: &RunArgs, kind: JudgeKind) -> Result<Input, String> {
    let format = args.format.map(|f| match f {
        FormatArg::Jsonl => Format::Jsonl,
        FormatArg::Csv => Format::Csv,
    });
    let Some(path) = args.input.clone() else {
        return Err("--input is required".into());
    };
    let shown = if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    let opened =
        input::open(&path, format).map_err(|e| format!("cannot read the input {shown}: {e}"))?;
    let (format, gzip) = (opened.format, opened.gzip);
    let records = opened.records(kind).map_err(|e| format!("{shown}: {e}"))?;
    if let Some(out) = &args.output
        && same_file(out, &path)
    {
        return Err("--output is the input file; choose another file for the results".into());
    }
    Ok(Input {
        path,
        shown,
        format,
        gzip,
        records,
    })
}

/// Who judges: a server (`--server`), this process, or with `--provider-batch` a service's
/// jobs (the given server's, else one started in this process).
async fn backend(args: &RunArgs, kind: JudgeKind) -> Result<Backend, String> {
    Ok(match (&args.server, args.provider_batch) {
        (Some(url), false) => {
            let remote = Remote::connect(url, args.token.clone(), kind, args.judge.clone()).await?;
            Backend::Remote(Arc::new(remote))
        }
        (None, false) => local_backend(args)?,
        (server, true) => {
            let (url, token) = match server {
                Some(url) => (url.clone(), args.token.clone()),
                None => in_process_service(args).await?,
            };
            let remote = Remote::connect(&url, token, kind, args.judge.clone())
                .await?
                .with_provider_batch(usize::from(args.concurrency));
            Backend::Remote(Arc::new(remote))
        }
    })
}

/// The run's budget (`--max-cost-usd`, `--max-tokens`), if it has one. A budget in dollars
/// judged in this process needs a price for every model the judge may call.
fn run_budget(args: &RunArgs, backend: &Backend) -> Result<Option<Arc<Budget>>, String> {
    let limits = Limits {
        max_cost_usd: args.max_cost_usd,
        max_tokens: args.max_tokens,
    };
    if let (Backend::Local { judge, route, .. }, Some(_)) = (backend, limits.max_cost_usd) {
        let unpriced: Vec<String> = judge
            .pool()
            .unpriced_steps(route)
            .iter()
            .map(|s| format!("{}:{}", s.provider, s.model))
            .collect();
        if !unpriced.is_empty() {
            return Err(format!(
                "--max-cost-usd is a budget in dollars, and the judge may call {} with no price: \
                 add them to [prices] in the configuration, or budget with --max-tokens only",
                unpriced.join(", ")
            ));
        }
    }
    Ok((!limits.is_empty()).then(|| Budget::new(limits, "the run's budget")))
}

/// The items an existing `--output` already holds (counted in `tally`), unless it is to be
/// overwritten; and what to tell a person about them.
fn resume(args: &RunArgs, tally: &mut Tally) -> Result<(IndexSet, Option<String>), String> {
    let (Some(out), false) = (&args.output, args.overwrite) else {
        return Ok((IndexSet::default(), None));
    };
    let prior = output::resume(out, |entry| tally.add(entry, true))?;
    let mut note = None;
    if !prior.done.is_empty() || prior.errors_dropped > 0 {
        note = Some(format!(
            "resuming {}: {} items already done are skipped{}",
            out.display(),
            prior.done.len(),
            match prior.errors_dropped {
                0 => String::new(),
                n => format!(", {n} error entries are judged again"),
            }
        ));
    }
    Ok((prior.done, note))
}

/// Tells a person what is about to run: the input, the judge, how many at a time, where the
/// results go; and that the rules judge judges when no provider has a key.
fn announce(args: &RunArgs, input: &Input, kind: JudgeKind, backend: &Backend) {
    eprintln!(
        "llm-judge run: {} ({}{}, {}) with judge {}, {} at a time, results to {}",
        input.shown,
        match input.format {
            Format::Jsonl => "JSON Lines",
            Format::Csv => "CSV",
        },
        if input.gzip { ", gzip" } else { "" },
        kind.as_str(),
        backend.describe(),
        args.concurrency,
        args.output
            .as_deref()
            .map_or("standard output".to_string(), |p| p.display().to_string()),
    );
    if let Backend::Local {
        rules_only: true, ..
    } = backend
    {
        eprintln!(
            "llm-judge run: no provider API key found: judging with the built-in `rules` judge. \
             To judge with a model, set OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY, ...) \
             or point a provider at an OpenAI-compatible server with \
             LLM_JUDGE__PROVIDERS__OPENAI__BASE_URL"
        );
    }
}

/// `--provider-batch` without `--server`: the service in this process, on a loopback port,
/// keeping its jobs in `LLM_JUDGE_DATA_DIR` or the configuration's `jobs.data_dir`; its URL and
/// client token.
async fn in_process_service(args: &RunArgs) -> Result<(String, Option<String>), String> {
    let mut settings = Settings::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(dir) = std::env::var_os("LLM_JUDGE_DATA_DIR").filter(|d| !d.is_empty()) {
        settings.jobs.data_dir = std::path::PathBuf::from(dir).display().to_string();
    }
    let token = settings.auth.tokens.first().map(|t| t.expose().to_string());
    let app = crate::app::Application::bind(settings, "127.0.0.1:0".parse().expect("an address"))
        .await
        .map_err(|e| format!("cannot start the service in this process: {e:#}"))?;
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    Ok((url, token))
}

/// Builds the settings and the judge in this process; checks the judge exists.
fn local_backend(args: &RunArgs) -> Result<Backend, String> {
    let settings = Settings::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let rules_only = settings.rules_only;
    llm_judge_metrics::install();
    let judge = crate::app::build_judge(&settings).map_err(|e| format!("{e:#}"))?;
    let route = judge.resolve_route(args.judge.as_deref()).map_err(|_| {
        let mut known: Vec<&str> = settings.routes.keys().map(String::as_str).collect();
        known.extend(settings.panels.keys().map(String::as_str));
        format!(
            "unknown judge {:?}: the configured judges are {}",
            args.judge.as_deref().unwrap_or_default(),
            known.join(", ")
        )
    })?;
    let steps: Vec<String> = match (settings.routes.get(&route), settings.panels.get(&route)) {
        (Some(s), _) => s
            .iter()
            .map(|s| format!("{}:{}", s.provider, s.model))
            .collect(),
        (None, Some(p)) => vec![format!("panel of {}", p.judges.join(", "))],
        (None, None) => Vec::new(),
    };
    Ok(Backend::Local {
        rules_only,
        judge,
        description: format!("{route} [{}]", steps.join(", ")),
        route,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Prints the summary, writes `--summary-json`, and picks the exit code.
fn finish(args: &RunArgs, outcome: Outcome, started: Instant) -> ExitCode {
    let Outcome {
        tally,
        total,
        total_exact,
        signal,
        failure,
        pipe_closed,
        budget,
    } = outcome;
    if pipe_closed {
        // Whoever read the output has gone (`| head`): nothing more to say.
        return ExitCode::from(EXIT_PIPE_CLOSED);
    }
    let stopped = match (&failure, signal) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(130)) => Some("interrupted (SIGINT)".to_string()),
        (None, Some(_)) => Some("terminated (SIGTERM)".to_string()),
        (None, None) => None,
    };
    let stopped = stopped.or_else(|| {
        budget
            .as_ref()
            .filter(|b| b.exhausted)
            .map(|b| format!("budget exhausted: {} items not sent", b.not_sent))
    });
    let mut summary = tally.finish(total, total_exact, started.elapsed(), stopped.as_deref());
    summary.summary.budget = budget;
    eprint!("{}", summary.table());
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.summary_json {
        let written = serde_json::to_vec_pretty(&summary)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            eprintln!(
                "llm-judge run: cannot write the summary to {}: {e}",
                path.display()
            );
            code = ExitCode::from(EXIT_FAILED);
        }
    }
    if let Some(sig) = signal {
        return ExitCode::from(sig);
    }
    if failure.is_some() {
        return ExitCode::from(EXIT_FAILED);
    }
    if let Some(min) = args.fail_under {
        match summary.summary.accuracy {
            None => {
                eprintln!(
                    "llm-judge run: fail: nothing was graded correct or incorrect, so --fail-under {min} cannot be met"
                );
                return ExitCode::from(EXIT_FAIL_UNDER);
            }
            Some(a) if a < min => {
                let within = within(summary.summary.accuracy_interval);
                eprintln!(
                    "llm-judge run: fail: accuracy {a:.4}{within} is below --fail-under {min}"
                );
                return ExitCode::from(EXIT_FAIL_UNDER);
            }
            Some(a) => {
                let within = within(summary.summary.accuracy_interval);
                eprintln!("llm-judge run: ok: accuracy {a:.4}{within} meets --fail-under {min}");
            }
        }
    }
    code
}

/// Watches SIGINT and SIGTERM: the first sets the exit code (130 or 143) in the channel, the
/// second exits at once.
pub fn signals() -> watch::Receiver<Option<u8>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(None);
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return rx;
    };
    tokio::spawn(async move {
        let code = tokio::select! { _ = int.recv() => 130, _ = term.recv() => 143 };
        let _ = tx.send(Some(code));
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!(
            "\nllm-judge run: second signal: quitting at once (results not yet written are \
             lost; running again with the same --output judges them)"
        );
        std::process::exit(i32::from(code));
    });
    rx
}

/// ` (95% interval low to high)` for an accuracy's interval.
fn within(interval: Option<[f64; 2]>) -> String {
    interval.map_or(String::new(), |[lo, hi]| {
        format!(" (95% interval {lo:.4} to {hi:.4})")
    })
}
