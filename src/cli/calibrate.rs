//! `llm-judge calibrate`: measures judges against a file of labelled items (JSON Lines), in this
//! process or through a running service's `POST /v1/calibrate`, prints each judge's figures, and
//! gates on them (`--fail-under-kappa`, `--fail-under-accuracy`) for CI.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::args::{EXIT_FAIL_UNDER, EXIT_FAILED, EXIT_USAGE, KindArg, parse_fraction};
use super::input::{self, Format};
use crate::config::Settings;
use llm_judge_judge::JudgeKind;
use llm_judge_work::calibrate::{self, InvalidItem, Plan, store::RunStore};

/// Measure judges against labelled items and print how far each agrees with the labels.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Labelled items, one JSON object per line (.jsonl, or gzip): the kind's fields plus
    /// `label`, and optionally `id` and `group`; `-` reads standard input.
    #[arg(long, short)]
    pub input: PathBuf,
    /// The kind of judgment.
    #[arg(long, value_enum, default_value = "binary")]
    pub kind: KindArg,
    /// A route or panel to measure; repeat for several (default: the default route).
    #[arg(long = "judge", value_name = "NAME")]
    pub judges: Vec<String>,
    /// TOML configuration file (see llm-judge.example.toml).
    #[arg(long, env = "LLM_JUDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Send the items to a running llm-judge service (its POST /v1/calibrate, which keeps the
    /// run) instead of judging in this process.
    #[arg(long)]
    pub server: Option<String>,
    /// Client token for --server (sent as Authorization: Bearer).
    #[arg(long, env = "LLM_JUDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Judge calls at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub concurrency: u16,
    /// A name for the run (a gold set's version, a prompt variant).
    #[arg(long)]
    pub name: Option<String>,
    /// Also write the whole report as JSON, with every item's verdicts, to this file.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Keep the run in the calibration store of this directory (in this process; a server
    /// keeps its runs itself).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Exit with code 3 when any judge's Cohen's kappa is below this (-1 to 1), or undefined.
    /// Binary and compare only.
    #[arg(long, value_name = "KAPPA", allow_hyphen_values = true, value_parser = parse_kappa)]
    pub fail_under_kappa: Option<f64>,
    /// Exit with code 3 when any judge's accuracy against the labels is below this (0 to 1), or
    /// undefined.
    #[arg(long, value_name = "ACCURACY", value_parser = parse_fraction)]
    pub fail_under_accuracy: Option<f64>,
}

fn parse_kappa(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (-1.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a kappa between -1 and 1")),
    }
}

/// Runs the command.
pub async fn run(args: CalibrateArgs) -> ExitCode {
    let kind: JudgeKind = args.kind.into();
    if args.fail_under_kappa.is_some() && kind == JudgeKind::Score {
        eprintln!(
            "llm-judge calibrate: --fail-under-kappa is for binary and compare labels; for scores \
             use --fail-under-accuracy, or read spearman and mean_abs_error in --output"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let (values, unreadable) = match read_file(&args.input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("llm-judge calibrate: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let shown = if args.input == Path::new("-") {
        "standard input".to_string()
    } else {
        args.input.display().to_string()
    };
    let report = match &args.server {
        Some(url) => remote(&args, url, kind, values, &unreadable).await,
        None => local(&args, kind, values, unreadable).await,
    };
    let report = match report {
        Ok(r) => r,
        Err((code, e)) => {
            eprintln!("llm-judge calibrate: {e}");
            return ExitCode::from(code);
        }
    };
    eprint!("{}", table(&shown, &report));
    if let Some(path) = &args.output {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            eprintln!(
                "llm-judge calibrate: cannot write the report to {}: {e}",
                path.display()
            );
            return ExitCode::from(EXIT_FAILED);
        }
    }
    gate(&args, &report)
}

/// A line that could not be read: its item index, its line number, why.
type Unreadable = (usize, usize, String);

/// The items of the input with their indices, and the lines that could not be read.
type InputItems = (Vec<(usize, Value)>, Vec<Unreadable>);

/// The lines of the input, as values, and the lines that could not be read.
fn read_file(path: &Path) -> Result<InputItems, String> {
    let opened = input::open(path, Some(Format::Jsonl))
        .map_err(|e| format!("cannot read the input {}: {e}", path.display()))?;
    if input::format_from_name(path) == Format::Csv {
        return Err("calibrate reads JSON Lines (one labelled item per line), not CSV".into());
    }
    let records = opened
        .records(JudgeKind::Binary)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut values, mut bad) = (Vec::new(), Vec::new());
    for (index, record) in records.enumerate() {
        let (line, item) = record.map_err(|e| format!("reading {}: {e}", path.display()))?;
        match item {
            Ok(v) => values.push((index, v)),
            Err(message) => bad.push((index, line, message)),
        }
    }
    if values.is_empty() && bad.is_empty() {
        return Err(format!("{} has no items", path.display()));
    }
    Ok((values, bad))
}

type Failure = (u8, String);

/// The items in input order, unreadable lines as `null` placeholders the service lists as
/// invalid (so that indices stay those of the input).
fn in_order(values: Vec<(usize, Value)>, unreadable: &[Unreadable]) -> Vec<Value> {
    let total = values.len() + unreadable.len();
    let mut out = vec![Value::Null; total];
    for (i, v) in values {
        out[i] = v;
    }
    out
}

/// Renames the invalid entries of unreadable lines to say which line and why.
fn mark_unreadable(report: &mut Value, unreadable: &[Unreadable]) {
    let Some(list) = report["invalid_items"].as_array_mut() else {
        return;
    };
    for entry in list.iter_mut() {
        let Some(i) = entry["index"].as_u64() else {
            continue;
        };
        if let Some((index, line, message)) = unreadable.iter().find(|u| u.0 as u64 == i) {
            *entry = serde_json::to_value(calibrate::unreadable(*index, *line, message))
                .unwrap_or(Value::Null);
        }
    }
}

async fn local(
    args: &CalibrateArgs,
    kind: JudgeKind,
    values: Vec<(usize, Value)>,
    unreadable: Vec<Unreadable>,
) -> Result<Value, Failure> {
    let usage = |e: String| (EXIT_USAGE, e);
    let settings = Settings::load(args.config.as_deref()).map_err(|e| usage(e.to_string()))?;
    llm_judge_metrics::install();
    let judge = crate::app::build_judge(&settings).map_err(|e| usage(format!("{e:#}")))?;
    let names = if args.judges.is_empty() {
        vec![settings.judge.default_route.clone()]
    } else {
        args.judges.clone()
    };
    let mut judges = Vec::new();
    for name in &names {
        let route = judge.resolve_route(Some(name)).map_err(|_| {
            let mut known: Vec<&str> = settings.routes.keys().map(String::as_str).collect();
            known.extend(settings.panels.keys().map(String::as_str));
            usage(format!(
                "unknown judge {name:?}: the configured judges are {}",
                known.join(", ")
            ))
        })?;
        if !judges.contains(&route) {
            judges.push(route);
        }
    }
    let store = match &args.data_dir {
        Some(dir) => Some(calibrate::store::RedbRunStore::open(dir).map_err(usage)?),
        None => None,
    };
    if settings.rules_only {
        eprintln!(
            "llm-judge calibrate: no provider API key found: the default route is the built-in \
             `rules` judge"
        );
    }
    let (items, mut invalid, dataset) = calibrate::read_items(kind, in_order(values, &unreadable));
    for e in invalid.iter_mut() {
        if let Some((index, line, message)) = unreadable.iter().find(|u| u.0 == e.index) {
            *e = calibrate::unreadable(*index, *line, message);
        }
    }
    if items.is_empty() {
        return Err(usage(no_valid_item(&invalid)));
    }
    let plan = Plan {
        kind,
        judges,
        items,
        invalid,
        dataset,
        name: args.name.clone(),
        max_concurrent: usize::from(args.concurrency),
        include_items: true,
        budget: None,
    };
    let mut report = calibrate::run(judge, plan).await;
    if let Some(store) = store {
        let kept = calibrate::stored_form(&report);
        match tokio::task::spawn_blocking(move || store.save(&kept)).await {
            Ok(Ok(())) => report.stored = true,
            Ok(Err(e)) => report.store_error = Some(e),
            Err(e) => report.store_error = Some(e.to_string()),
        }
    }
    serde_json::to_value(&report).map_err(|e| (EXIT_FAILED, e.to_string()))
}

fn no_valid_item(invalid: &[InvalidItem]) -> String {
    match invalid.first() {
        Some(first) => format!(
            "no item is valid ({} invalid); the first: {}: {}",
            invalid.len(),
            first.field,
            first.message
        ),
        None => "no items".to_string(),
    }
}

async fn remote(
    args: &CalibrateArgs,
    url: &str,
    kind: JudgeKind,
    values: Vec<(usize, Value)>,
    unreadable: &[Unreadable],
) -> Result<Value, Failure> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err((
            EXIT_USAGE,
            format!("--server {url:?} must be an http:// or https:// URL"),
        ));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| (EXIT_FAILED, format!("cannot build the HTTP client: {e}")))?;
    let mut body = json!({
        "kind": kind.as_str(),
        "items": in_order(values, unreadable),
        "max_concurrent": args.concurrency,
        "include_items": true,
    });
    if !args.judges.is_empty() {
        body["judges"] = json!(args.judges);
    } else {
        let mut req = client.get(format!("{base}/v1/providers"));
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let providers: Value = match req.send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => {
                return Err((
                    EXIT_FAILED,
                    format!(
                        "cannot reach the server at {base}: {}",
                        super::remote::error_chain(&e)
                    ),
                ));
            }
        };
        body["judges"] = json!([providers["default_route"].as_str().unwrap_or("default")]);
    }
    if let Some(n) = &args.name {
        body["name"] = json!(n);
    }
    let mut req = client.post(format!("{base}/v1/calibrate")).json(&body);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| {
        (
            EXIT_FAILED,
            format!(
                "cannot reach the server at {base}: {}",
                super::remote::error_chain(&e)
            ),
        )
    })?;
    let status = resp.status();
    let answer: Value = resp.json().await.map_err(|e| {
        (
            EXIT_FAILED,
            format!("the server sent an unreadable answer: {e}"),
        )
    })?;
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or("no message");
        let code = if status.is_client_error() {
            EXIT_USAGE
        } else {
            EXIT_FAILED
        };
        return Err((code, format!("the server answered {status}: {message}")));
    }
    let mut answer = answer;
    mark_unreadable(&mut answer, unreadable);
    Ok(answer)
}

/// `  (95% low to high)` for an interval, nothing where there is none.
fn interval(v: &Value) -> String {
    match (v[0].as_f64(), v[1].as_f64()) {
        (Some(lo), Some(hi)) => format!("  (95% {lo:.4} to {hi:.4})"),
        _ => String::new(),
    }
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or("n/a".to_string(), |x| format!("{x:.digits$}"))
}

/// The figures a person reads in a CI log.
pub fn table(input: &str, report: &Value) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "calibration: {input}, {} items ({} invalid), kind {}, dataset {}",
        report["items"],
        report["invalid_items"].as_array().map_or(0, Vec::len),
        report["kind"].as_str().unwrap_or("?"),
        report["dataset"].as_str().unwrap_or("?"),
    );
    for e in report["invalid_items"]
        .as_array()
        .into_iter()
        .flatten()
        .take(10)
    {
        let _ = writeln!(
            t,
            "  invalid: {}: {}",
            e["field"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    if !report["base_rate"].is_null() {
        let _ = writeln!(
            t,
            "  labels     base rate {} correct",
            num(&report["base_rate"], 3)
        );
    }
    for j in report["judges"].as_array().into_iter().flatten() {
        let _ = writeln!(t, "judge {}:", j["judge"].as_str().unwrap_or("?"));
        t.push_str(&judge_figures(j));
    }
    if report["stored"] == true {
        let _ = writeln!(
            t,
            "  stored as {}",
            report["run_id"].as_str().unwrap_or("?")
        );
    }
    if let Some(e) = report["store_error"].as_str() {
        let _ = writeln!(t, "  not stored: {e}");
    }
    t
}

/// The rows of one judge's figures, a label and a value each.
#[derive(Default)]
struct Rows(String);

impl Rows {
    fn line(&mut self, label: &str, value: String) {
        let _ = writeln!(self.0, "  {label:<11}{value}");
    }
}

/// One judge's figures: those its kind has, then its panel's, its groups' and its cost.
fn judge_figures(j: &Value) -> String {
    let mut rows = Rows::default();
    rows.line(
        "graded",
        format!(
            "{} of {}  (unscored {}, rate {}; errors {})",
            j["graded"],
            j["items"],
            j["unscored"],
            num(&j["unscored_rate"], 4),
            j["errors"]
        ),
    );
    rows.line(
        "accuracy",
        format!(
            "{}{}",
            num(&j["accuracy"], 4),
            interval(&j["accuracy_interval"])
        ),
    );
    if j.get("cohen_kappa").is_some() || j.get("confusion").is_some() {
        rows.line(
            "kappa",
            format!(
                "{}{}  (Cohen's)",
                num(&j["cohen_kappa"], 4),
                interval(&j["cohen_kappa_interval"])
            ),
        );
    }
    if j.get("base_rate").is_some() {
        rates(&mut rows, j);
    }
    if let Some(c) = j["confusion"].as_object() {
        confusion(&mut rows, c);
    }
    for key in ["spearman", "pearson", "mean_abs_error", "within_one"] {
        if j.get(key).is_some() {
            rows.line(key, num(&j[key], 4));
        }
    }
    if let Some(b) = j["position_bias"].as_object() {
        rows.line(
            "position",
            format!(
                "flip rate {}, first position preferred {}",
                num(&b["flip_rate"], 3),
                num(&b["first_position_rate"], 3)
            ),
        );
    }
    if let Some(p) = j["panel"].as_object() {
        panel(&mut rows, p);
    }
    if let Some(groups) = j["groups"].as_object() {
        for (g, f) in groups {
            rows.line(
                "group",
                format!(
                    "{g}: accuracy {} ({} of {} graded, {} unscored)",
                    num(&f["accuracy"], 4),
                    f["graded"],
                    f["items"],
                    f["unscored"]
                ),
            );
        }
    }
    if let Some(c) = j["cost_usd"].as_f64() {
        rows.line("cost", format!("${c:.4}"));
    }
    rows.0
}

/// Binary labels: how often each side said correct, and precision, recall and F1.
fn rates(rows: &mut Rows, j: &Value) {
    rows.line(
        "rates",
        format!(
            "labelled correct {}, judged correct {}",
            num(&j["base_rate"], 3),
            num(&j["predicted_rate"], 3)
        ),
    );
    rows.line(
        "precision",
        format!(
            "{}  recall {}  f1 {}",
            num(&j["precision"], 4),
            num(&j["recall"], 4),
            num(&j["f1"], 4)
        ),
    );
}

/// The confusion matrix: labels down, the judge's verdicts across.
fn confusion(rows: &mut Rows, c: &serde_json::Map<String, Value>) {
    let labels: Vec<&str> = c["labels"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    rows.line(
        "confusion",
        format!("label \\ judge  {}", labels.join("  ")),
    );
    for (l, r) in labels
        .iter()
        .zip(c["matrix"].as_array().into_iter().flatten())
    {
        let cells: Vec<String> = r
            .as_array()
            .into_iter()
            .flatten()
            .zip(&labels)
            .map(|(n, name)| format!("{:>w$}", n.to_string(), w = name.len()))
            .collect();
        rows.line("", format!("{l:<14} {}", cells.join("  ")));
    }
}

/// A panel's agreement (Fleiss' kappa) and each member's figures.
fn panel(rows: &mut Rows, p: &serde_json::Map<String, Value>) {
    rows.line("fleiss", num(&p["fleiss_kappa"], 4));
    for m in p["members"].as_array().into_iter().flatten() {
        rows.line(
            "member",
            format!(
                "{}: accuracy {}, kappa {}, absent {}",
                m["judge"].as_str().unwrap_or(""),
                num(&m["accuracy"], 4),
                num(&m["cohen_kappa"], 4),
                m["absent"]
            ),
        );
    }
}

/// The exit code: 3 when a gate is not met by some judge.
fn gate(args: &CalibrateArgs, report: &Value) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for j in report["judges"].as_array().into_iter().flatten() {
        let name = j["judge"].as_str().unwrap_or("?");
        for (flag, key, min) in [
            ("--fail-under-kappa", "cohen_kappa", args.fail_under_kappa),
            (
                "--fail-under-accuracy",
                "accuracy",
                args.fail_under_accuracy,
            ),
        ] {
            let Some(min) = min else { continue };
            match j[key].as_f64() {
                None => {
                    eprintln!(
                        "llm-judge calibrate: fail: judge {name} has no {key} (nothing graded, or \
                         one class only), so {flag} {min} cannot be met"
                    );
                    code = ExitCode::from(EXIT_FAIL_UNDER);
                }
                Some(v) if v < min => {
                    eprintln!(
                        "llm-judge calibrate: fail: judge {name}: {key} {v:.4} is below {flag} {min}"
                    );
                    code = ExitCode::from(EXIT_FAIL_UNDER);
                }
                Some(v) => eprintln!(
                    "llm-judge calibrate: ok: judge {name}: {key} {v:.4} meets {flag} {min}"
                ),
            }
        }
    }
    code
}
