//! Settings: built-in defaults < TOML file (`--config`) < `LLM_JUDGE__SECTION__KEY` environment
//! variables < the shortcuts an lmms-eval user already has set (`API_TYPE`, `OPENAI_API_KEY` ...).
//!
//! Raw settings are read with unknown keys refused, then validated into [`Settings`] with messages
//! that name the key to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer};

pub use llm_judge_chat::Secret;
pub use llm_judge_fleet::settings::{OnRedisError, RedisSettings};
pub use llm_judge_judge::settings::{
    Aggregate, ConfidenceMode, JudgeSettings, MAX_PANEL_JUDGES, OnTie, PanelSettings, RouteOptions,
};
pub use llm_judge_pool::cost::{DEFAULT_BATCH_DISCOUNT, DEFAULT_CACHE_WRITE_FACTOR, Price};
pub use llm_judge_pool::settings::{PoolSettings, RetrySettings, StepSettings};
pub use llm_judge_providers::settings::{ModelLimits, ProviderKind, ProviderSettings};

/// Built-in defaults, the lowest layer. Every known provider is present; one is enabled when its
/// key is set (or, for local servers, when it needs none).
const DEFAULTS: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_body_bytes = 16777216
max_batch_items = 10000
batch_max_concurrent = 64
batch_max_concurrent_limit = 10000
shutdown_grace_s = 30
threads = 0
header_read_timeout_s = 10
idle_timeout_s = 75
body_read_timeout_s = 60
max_connections = 10000
allowed_origins = []

[judge]
default_route = "default"
rules_precheck = false
temperature = 0.0
max_tokens = 512
cache_entries = 100000

[jobs]
data_dir = "llm-judge-data"
retention_hours = 168.0
janitor_interval_s = 60.0
commit_interval_ms = 50
max_items = 10000000
cache_mb = 16

[cache]
memory_mb = 256
disk_mb = 0
ttl_hours = 168.0

[redis]
url = ""
key_prefix = "llm-judge"
timeout_ms = 250
connect_timeout_ms = 1000
on_redis_error = "local"
expected_replicas = 1
claim_idle_s = 30.0

[retry]
max_attempts = 3
base_delay_ms = 500
max_delay_ms = 8000
max_retry_after_s = 60
budget_ratio = 0.5
budget_min_per_s = 10

[providers.rules]
kind = "rules"

[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
default_model = "gpt-4o-2024-08-06"

[providers.azure]
kind = "azure"
api_key_env = "AZURE_API_KEY"
api_version = "2024-10-21"
default_model = "gpt-4o"

[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"
default_model = "claude-3-5-sonnet-latest"

[providers.cohere]
kind = "cohere"
base_url = "https://api.cohere.com"
api_key_env = "COHERE_API_KEY"
default_model = "command-r-plus"

[providers.together]
kind = "together"
base_url = "https://api.together.xyz/v1"
api_key_env = "TOGETHER_API_KEY"
default_model = "meta-llama/Llama-3.3-70B-Instruct-Turbo"

[providers.gemini]
kind = "gemini"
base_url = "https://generativelanguage.googleapis.com"
api_key_env = "GEMINI_API_KEY"
default_model = "gemini-2.0-flash"
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Most items in one batch.
    pub max_batch_items: usize,
    /// Batch concurrency when the request does not say.
    pub batch_max_concurrent: usize,
    /// The highest `max_concurrent` a request may ask for.
    pub batch_max_concurrent_limit: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before the process exits.
    pub shutdown_grace_s: f64,
    /// Worker threads of the runtime that serves connections, batches and jobs (0: one per CPU
    /// the process may use).
    pub threads: usize,
    /// How long a client may take to send a request's headers, from its first byte.
    pub header_read_timeout_s: f64,
    /// How long a kept-alive connection may sit idle (no request in flight, none arriving)
    /// before the server closes it.
    pub idle_timeout_s: f64,
    /// How long a request body may take to arrive (a JSON body in all; an NDJSON job upload
    /// between two chunks).
    pub body_read_timeout_s: f64,
    /// Open connections at most; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Web origins (`https://host[:port]`) whose pages may call the API; a request carrying any
    /// other `Origin` is refused (403). A list, or (for environment variables) a
    /// comma-separated string.
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
}

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub api_key_env: Option<String>,
    /// Azure: the API version sent as `api-version`.
    pub api_version: Option<String>,
    /// The model used when a route names this provider without a model.
    pub default_model: Option<String>,
    pub max_in_flight: Option<usize>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    /// Length of the rate-limit window in seconds (60 unless testing).
    pub rate_window_s: Option<f64>,
    /// Longest wait for a rate-limit or concurrency permit before the route moves on.
    pub permit_wait_s: Option<f64>,
    /// Per-attempt timeout.
    pub timeout_s: Option<f64>,
    /// Overall time one route step may take, retries included.
    pub deadline_s: Option<f64>,
    pub max_attempts: Option<u32>,
    /// Circuit breaker: consecutive failures that open it.
    pub breaker_failures: Option<u32>,
    /// Circuit breaker: seconds it stays open before a probe.
    pub breaker_cooldown_s: Option<f64>,
    /// Extra headers sent with every request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Speak HTTP/2 to an `http://` base URL from the first byte (h2c with prior knowledge),
    /// for servers and gateways that accept it. `https://` providers negotiate HTTP/2 anyway.
    pub http2_prior_knowledge: Option<bool>,
    /// HTTP/1.1 only (one connection per call in flight), even where the server offers HTTP/2.
    pub http1_only: Option<bool>,
    /// Seconds to set up a connection (TCP and TLS), apart from `timeout_s`.
    pub connect_timeout_s: Option<f64>,
    /// Seconds an idle connection is kept for reuse.
    pub pool_idle_timeout_s: Option<f64>,
    /// A PEM file of extra trusted root certificates (a private CA), added to the platform's.
    pub ca_file: Option<String>,
    /// A proxy for this provider's calls (`http://`, `https://`, `socks5://`), instead of
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` from the environment (`NO_PROXY` still applies).
    pub proxy: Option<Secret>,
    /// Mark the fixed instructions of built-in templates for the provider's prompt cache where
    /// caching is explicit (Anthropic; default true there). OpenAI and Gemini cache a repeated
    /// prefix by themselves, so it changes nothing they are sent.
    pub prompt_cache: Option<bool>,
    /// Provider batches (OpenAI, Azure, Anthropic): seconds between the first two polls of a
    /// batch (5 by default); later waits double, up to `batch_poll_max_s`.
    pub batch_poll_s: Option<f64>,
    /// Provider batches: the longest wait between two polls, in seconds (300 by default).
    pub batch_poll_max_s: Option<f64>,
    /// Limits of one model of this provider, on top of the provider's own:
    /// `[providers.NAME.model_limits."MODEL"] requests_per_minute = N, tokens_per_minute = N`.
    #[serde(default)]
    pub model_limits: BTreeMap<String, ModelLimits>,
}

/// The verdict cache's tiers (`judge.cache_entries` bounds the in-memory tier's entries; 0
/// turns every tier off).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Bytes the in-memory tier may hold, in MiB.
    pub memory_mb: u64,
    /// Size bound of the embedded tier on disk (`cache.redb` in the data directory), in MiB;
    /// 0 leaves it out.
    pub disk_mb: u64,
    /// How long a verdict is kept in the embedded and Redis tiers.
    pub ttl_hours: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    server: ServerSettings,
    judge: JudgeSettings,
    jobs: JobsConfig,
    retry: RetrySettings,
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    routes: BTreeMap<String, RawRoute>,
    #[serde(default)]
    panels: BTreeMap<String, RawPanel>,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    #[serde(default)]
    auth: AuthSettings,
    cache: CacheSettings,
    redis: RedisSettings,
}

/// Client bearer tokens. Empty: no authentication.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// A list, or (for environment variables) a comma-separated string.
    #[serde(default, deserialize_with = "secret_list")]
    pub tokens: Vec<Secret>,
    /// What each client token may spend per UTC day, in US dollars (shared by the fleet and
    /// kept across restarts with `[redis]`, else in memory by each replica). Needs a price for
    /// every model a request may reach.
    #[serde(default)]
    pub daily_budget_usd: Option<f64>,
    /// What each client token may spend per UTC day, in tokens.
    #[serde(default)]
    pub daily_budget_tokens: Option<u64>,
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(RouteSpec::deserialize(d)?
        .0
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect())
}

fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    Ok(RouteSpec::deserialize(d)?
        .0
        .into_iter()
        .map(|t| Secret::new(t.trim()))
        .collect())
}

/// A route as written: a list of `"provider:model"` (or a comma-separated string, for env vars).
#[derive(Debug, Clone)]
struct RouteSpec(Vec<String>);

impl<'de> Deserialize<'de> for RouteSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(RouteSpec(match Either::deserialize(d)? {
            Either::One(s) => split_list(&s),
            Either::Many(v) => v,
        }))
    }
}

/// A route as written: a list of steps (or a comma-separated string), or a table with `steps`
/// and the route's options (`structured`, `confidence`).
#[derive(Debug, Clone)]
struct RawRoute {
    steps: Vec<String>,
    options: RouteOptions,
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawRoute;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of \"provider:model\" steps, or a table with `steps` and optionally \
                     `structured` and `confidence`",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRoute, E> {
                Ok(RawRoute {
                    steps: split_list(v),
                    options: RouteOptions::default(),
                })
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawRoute, A::Error> {
                let steps =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(RawRoute {
                    steps,
                    options: RouteOptions::default(),
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawRoute, A::Error> {
                let mut route = RawRoute {
                    steps: Vec::new(),
                    options: RouteOptions::default(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "steps" => route.steps = map.next_value::<RouteSpec>()?.0,
                        "structured" => route.options.structured = map.next_value()?,
                        "confidence" => route.options.confidence = map.next_value()?,
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["steps", "structured", "confidence"],
                            ));
                        }
                    }
                }
                Ok(route)
            }
        }
        d.deserialize_any(V)
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(|p| p.trim().to_string()).collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPanel {
    judges: RouteSpec,
    #[serde(default)]
    aggregate: Aggregate,
    quorum: Option<usize>,
    #[serde(default)]
    on_tie: OnTie,
    #[serde(default)]
    escalate: bool,
}

/// Checks every panel: its judges are routes (configured or ad hoc), not panels, each named
/// once; its quorum fits; escalation has a third judge to ask.
fn validate_panels(
    raw: &BTreeMap<String, RawPanel>,
    routes: &BTreeMap<String, Vec<StepSettings>>,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<BTreeMap<String, PanelSettings>, ConfigError> {
    let mut panels = BTreeMap::new();
    for (name, p) in raw {
        let key = format!("panels.{name}");
        let err = |m: String| ConfigError(format!("{key}: {m}"));
        if name.is_empty() || name.contains([':', ',']) {
            return Err(err("a panel name may not contain ':' or ','".into()));
        }
        if routes.contains_key(name) {
            return Err(err(format!(
                "a route is also named {name:?}; give the panel or the route another name"
            )));
        }
        let judges: Vec<String> = p.judges.0.iter().map(|j| j.trim().to_string()).collect();
        if judges.len() < 2 || judges.len() > MAX_PANEL_JUDGES {
            return Err(err(format!(
                "judges lists {} judges; a panel has from 2 to {MAX_PANEL_JUDGES}",
                judges.len()
            )));
        }
        for (i, j) in judges.iter().enumerate() {
            let at = format!("judges[{i}] = {j:?}");
            if judges[..i].contains(j) {
                return Err(err(format!("{at} is listed twice")));
            }
            if raw.contains_key(j) {
                return Err(err(format!(
                    "{at} is a panel; a panel's judges are routes (list its judges instead)"
                )));
            }
            if !routes.contains_key(j) {
                for step in j.split(',') {
                    parse_step(step, providers).map_err(|m| {
                        err(format!(
                            "{at} is neither a route in [routes] nor an ad-hoc route: {m}"
                        ))
                    })?;
                }
            }
        }
        let quorum = p.quorum.unwrap_or(judges.len() / 2 + 1);
        range(&format!("{key}.quorum"), quorum, 1, judges.len())?;
        if p.escalate {
            if p.aggregate != Aggregate::Majority {
                return Err(err(
                    "escalate asks a third judge to break a disagreement, so it needs \
                     aggregate = \"majority\""
                        .into(),
                ));
            }
            if judges.len() < 3 {
                return Err(err("escalate needs at least 3 judges".into()));
            }
            if quorum > 2 {
                return Err(err(format!(
                    "escalate stops after two judges that agree, so quorum = {quorum} could \
                     never be met that way; use quorum = 2 or turn escalate off"
                )));
            }
        }
        panels.insert(
            name.clone(),
            PanelSettings {
                judges,
                aggregate: p.aggregate,
                quorum,
                on_tie: p.on_tie,
                escalate: p.escalate,
            },
        );
    }
    Ok(panels)
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub server: ServerSettings,
    pub judge: JudgeSettings,
    pub jobs: JobsConfig,
    pub retry: RetrySettings,
    pub providers: BTreeMap<String, ProviderSettings>,
    pub routes: BTreeMap<String, Vec<StepSettings>>,
    /// What a route asks of its judge beyond the prompt (structured answers, confidence); routes
    /// not listed use the defaults.
    pub route_options: BTreeMap<String, RouteOptions>,
    /// Panels of judges, by name: usable wherever a route name is.
    pub panels: BTreeMap<String, PanelSettings>,
    pub prices: BTreeMap<String, Price>,
    pub auth: AuthSettings,
    pub cache: CacheSettings,
    pub redis: RedisSettings,
    /// True when the default route was chosen automatically and is the rules judge.
    pub rules_only: bool,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Where settings come from; tests pass their own environment.
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// TOML text read after the file (tests and embedding programs).
    pub toml: Option<&'a str>,
    /// The environment (`std::env::vars()` in production).
    pub env: Vec<(String, String)>,
}

impl Settings {
    /// Loads settings from the process environment and an optional file.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::from_sources(Sources {
            file,
            toml: None,
            env: std::env::vars().collect(),
        })
    }

    /// Settings with defaults only (no file, no environment): the rules judge.
    pub fn defaults() -> Settings {
        Self::from_sources(Sources {
            file: None,
            toml: None,
            env: Vec::new(),
        })
        .expect("built-in defaults are valid")
    }

    pub fn from_sources(src: Sources<'_>) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = src
            .env
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let mut b = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = src.file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            b = b.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        if let Some(text) = src.toml {
            b = b.add_source(File::from_str(text, FileFormat::Toml));
        }
        let prefixed: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("LLM_JUDGE__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        b = b.add_source(
            Environment::with_prefix("LLM_JUDGE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .ignore_empty(true)
                .source(Some(prefixed)),
        );
        b = apply_shortcuts(b, &env).map_err(|e| ConfigError(e.to_string()))?;
        let raw: RawSettings = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        validate(raw, &env)
    }

    /// The price of `provider:model`, or of `model` alone.
    /// What the pool is built from.
    pub fn pool(&self) -> PoolSettings<'_> {
        PoolSettings {
            providers: &self.providers,
            routes: &self.routes,
            retry: &self.retry,
            prices: &self.prices,
            default_route: &self.judge.default_route,
        }
    }

    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        self.prices
            .get(&format!("{provider}:{model}"))
            .or_else(|| self.prices.get(model))
            .copied()
    }
}

/// The lmms-eval shortcuts: the keys a user already has in the shell.
fn apply_shortcuts(
    mut b: config::ConfigBuilder<config::builder::DefaultState>,
    env: &BTreeMap<String, String>,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, config::ConfigError> {
    let keys = [
        ("OPENAI_API_KEY", "providers.openai.api_key"),
        ("AZURE_API_KEY", "providers.azure.api_key"),
        ("AZURE_ENDPOINT", "providers.azure.base_url"),
        ("API_VERSION", "providers.azure.api_version"),
        ("ANTHROPIC_API_KEY", "providers.anthropic.api_key"),
        ("COHERE_API_KEY", "providers.cohere.api_key"),
        ("TOGETHER_API_KEY", "providers.together.api_key"),
        ("GEMINI_API_KEY", "providers.gemini.api_key"),
    ];
    for (var, key) in keys {
        if let Some(v) = env.get(var) {
            b = b.set_override(key, v.trim().to_string())?;
        }
    }
    if let Some(url) = env.get("OPENAI_API_URL") {
        // lmms-eval users set the full endpoint; the adapter wants the base.
        let base = url.trim().trim_end_matches('/');
        let base = base.strip_suffix("/chat/completions").unwrap_or(base);
        b = b.set_override("providers.openai.base_url", base.to_string())?;
    }
    Ok(b)
}

/// Checks that a numeric key lies in `min..=max` (NaN never does), naming the key and the range
/// when it does not. Every numeric key goes through it, so a new key gets the same treatment.
fn range<T: PartialOrd + fmt::Debug>(key: &str, v: T, min: T, max: T) -> Result<T, ConfigError> {
    if v >= min && v <= max {
        Ok(v)
    } else {
        Err(ConfigError(format!(
            "{key} = {v:?} is out of range: it must be from {min:?} to {max:?}"
        )))
    }
}

/// [`range`] for a key that may be left out.
fn opt_range<T: PartialOrd + fmt::Debug + Copy>(
    key: &str,
    v: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, ConfigError> {
    v.map(|v| range(key, v, min, max)).transpose()
}

/// A number of seconds in `min..=max` (or `default` when left out), as a duration.
fn secs(
    v: Option<f64>,
    default: f64,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    // `max` is at most a day, so the conversion cannot overflow.
    Ok(Duration::from_secs_f64(range(
        key,
        v.unwrap_or(default),
        min,
        max,
    )?))
}

/// A day in seconds: the longest any wait, timeout or interval may be.
const DAY_S: f64 = 86_400.0;
/// The shortest timeout, deadline or window (1 ms): zero would fail or spin.
const MIN_S: f64 = 0.001;

/// Range checks of every numeric key outside `[providers]`.
fn check_ranges(raw: &RawSettings) -> Result<(), ConfigError> {
    let s = &raw.server;
    range("server.max_body_bytes", s.max_body_bytes, 1024, 1 << 32)?;
    range("server.max_batch_items", s.max_batch_items, 1, 10_000_000)?;
    range(
        "server.batch_max_concurrent",
        s.batch_max_concurrent,
        1,
        1_000_000,
    )?;
    range(
        "server.batch_max_concurrent_limit",
        s.batch_max_concurrent_limit,
        1,
        1_000_000,
    )?;
    range("server.shutdown_grace_s", s.shutdown_grace_s, 0.0, DAY_S)?;
    range("server.threads", s.threads, 0, MAX_THREADS)?;
    let j = &raw.judge;
    range("judge.temperature", j.temperature, 0.0, 2.0)?;
    range("judge.max_tokens", j.max_tokens, 1, 1_000_000)?;
    range("judge.cache_entries", j.cache_entries, 0, 100_000_000)?;
    let j = &raw.jobs;
    range("jobs.retention_hours", j.retention_hours, 0.0001, 87_600.0)?;
    range("jobs.janitor_interval_s", j.janitor_interval_s, 0.1, DAY_S)?;
    range("jobs.commit_interval_ms", j.commit_interval_ms, 0, 60_000)?;
    range("jobs.max_items", j.max_items, 1, 1_000_000_000)?;
    range("jobs.cache_mb", j.cache_mb, 1, 1 << 20)?;
    let r = &raw.retry;
    range("retry.max_attempts", r.max_attempts, 1, 100)?;
    range("retry.base_delay_ms", r.base_delay_ms, 0, 3_600_000)?;
    range("retry.max_delay_ms", r.max_delay_ms, 0, 3_600_000)?;
    range("retry.max_retry_after_s", r.max_retry_after_s, 0, 86_400)?;
    range("retry.budget_ratio", r.budget_ratio, 0.0, 100.0)?;
    range("retry.budget_min_per_s", r.budget_min_per_s, 0, 1_000_000)?;
    for (name, p) in &raw.prices {
        let key = format!("prices.{name:?}");
        range(
            &format!("{key}.prompt_per_mtok"),
            p.prompt_per_mtok,
            0.0,
            1e6,
        )?;
        range(
            &format!("{key}.completion_per_mtok"),
            p.completion_per_mtok,
            0.0,
            1e6,
        )?;
        opt_range(
            &format!("{key}.cached_prompt_per_mtok"),
            p.cached_prompt_per_mtok,
            0.0,
            1e6,
        )?;
        opt_range(
            &format!("{key}.cache_write_per_mtok"),
            p.cache_write_per_mtok,
            0.0,
            1e6,
        )?;
        opt_range(&format!("{key}.batch_discount"), p.batch_discount, 0.0, 1.0)?;
    }
    opt_range("auth.daily_budget_usd", raw.auth.daily_budget_usd, 0.0, 1e9)?;
    opt_range(
        "auth.daily_budget_tokens",
        raw.auth.daily_budget_tokens,
        1,
        u64::MAX,
    )?;
    let daily = raw.auth.daily_budget_usd.is_some() || raw.auth.daily_budget_tokens.is_some();
    if daily && raw.auth.tokens.is_empty() {
        return Err(ConfigError(
            "auth.daily_budget_usd and auth.daily_budget_tokens are per client token: set \
             auth.tokens too (with no tokens there is no client to give a budget to)"
                .into(),
        ));
    }
    let c = &raw.cache;
    range("cache.memory_mb", c.memory_mb, 1, 1 << 20)?;
    range("cache.disk_mb", c.disk_mb, 0, 1 << 24)?;
    range("cache.ttl_hours", c.ttl_hours, 0.001, 87_600.0)?;
    let r = &raw.redis;
    range("redis.timeout_ms", r.timeout_ms, 1, 60_000)?;
    range("redis.connect_timeout_ms", r.connect_timeout_ms, 1, 60_000)?;
    range("redis.expected_replicas", r.expected_replicas, 1, 10_000)?;
    range("redis.claim_idle_s", r.claim_idle_s, 0.1, DAY_S)?;
    if let Some(url) = r.url() {
        // The URL is not echoed: it may carry a password.
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some());
        if !ok {
            return Err(ConfigError(
                "redis.url is not a URL such as redis://host:6379/0 (or rediss:// for TLS)".into(),
            ));
        }
    }
    if r.key_prefix.is_empty() || r.key_prefix.chars().any(|c| c.is_whitespace()) {
        return Err(ConfigError(
            "redis.key_prefix must be a non-empty word with no spaces".into(),
        ));
    }
    for (i, t) in raw.auth.tokens.iter().enumerate() {
        if t.expose().is_empty() {
            return Err(ConfigError(format!(
                "auth.tokens[{i}] is empty: remove it (no tokens at all turns authentication off)"
            )));
        }
    }
    Ok(())
}

/// The most threads `server.threads` may ask for.
const MAX_THREADS: usize = 1024;
/// The most connections `server.max_connections` may allow.
const MAX_CONNECTIONS: usize = 1_000_000;

/// The `[server]` keys about serving connections: threads, timeouts, the connection cap and
/// the allowed origins.
fn validate_server(s: &ServerSettings) -> Result<(), ConfigError> {
    range(
        "server.header_read_timeout_s",
        s.header_read_timeout_s,
        0.1,
        3600.0,
    )?;
    range("server.idle_timeout_s", s.idle_timeout_s, 0.1, DAY_S)?;
    range(
        "server.body_read_timeout_s",
        s.body_read_timeout_s,
        0.1,
        DAY_S,
    )?;
    range(
        "server.max_connections",
        s.max_connections,
        1,
        MAX_CONNECTIONS,
    )?;
    for origin in &s.allowed_origins {
        let ok = reqwest::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.origin().ascii_serialization() == *origin
        });
        if !ok {
            return Err(ConfigError(format!(
                "server.allowed_origins: {origin:?} is not an origin; write it as a browser sends \
                 it in the Origin header, scheme://host[:port] with no path or trailing slash \
                 (such as \"https://dashboard.example.com\")"
            )));
        }
    }
    Ok(())
}

fn validate(raw: RawSettings, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
        ConfigError(format!(
            "server.listen = {:?} is not an address such as 127.0.0.1:8080",
            raw.server.listen
        ))
    })?;
    check_ranges(&raw)?;
    validate_server(&raw.server)?;
    if raw.jobs.data_dir.trim().is_empty() {
        return Err(ConfigError("jobs.data_dir must not be empty".into()));
    }

    let mut providers = BTreeMap::new();
    for (name, p) in raw.providers {
        let key = format!("providers.{name}");
        if name.is_empty() || name.contains(':') {
            return Err(ConfigError(format!(
                "{key}: a provider name may not contain ':'"
            )));
        }
        let api_key = p
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
            .or_else(|| {
                p.api_key_env
                    .as_ref()
                    .and_then(|var| env.get(var))
                    .map(|v| Secret::new(v.trim()))
            });
        let base_url = match (&p.base_url, p.kind) {
            (Some(u), _) => u.trim().trim_end_matches('/').to_string(),
            (None, ProviderKind::Rules) => String::new(),
            (None, ProviderKind::Azure) => String::new(),
            (None, ProviderKind::Openai) => "https://api.openai.com/v1".into(),
            (None, ProviderKind::Together) => "https://api.together.xyz/v1".into(),
            (None, ProviderKind::Anthropic) => "https://api.anthropic.com".into(),
            (None, ProviderKind::Cohere) => "https://api.cohere.com".into(),
            (None, ProviderKind::Gemini) => "https://generativelanguage.googleapis.com".into(),
        };
        if p.kind != ProviderKind::Rules
            && !base_url.is_empty()
            && !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return Err(ConfigError(format!(
                "{key}.base_url = {base_url:?} must start with http:// or https://"
            )));
        }
        if !base_url.is_empty()
            && let Err(e) = reqwest::Url::parse(&base_url)
        {
            // The URL is not echoed: a misplaced key could sit in it.
            return Err(ConfigError(format!(
                "{key}.base_url is not a valid URL: {e}"
            )));
        }
        for (h, v) in &p.headers {
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ConfigError(format!(
                    "{key}.headers: {h:?} is not a valid HTTP header name"
                )));
            }
            if reqwest::header::HeaderValue::from_str(v).is_err() {
                return Err(ConfigError(format!(
                    "{key}.headers.{h}: the value is not a valid HTTP header value"
                )));
            }
        }
        if p.kind == ProviderKind::Azure && base_url.is_empty() && api_key.is_some() {
            return Err(ConfigError(format!(
                "{key}.base_url is not set: set AZURE_ENDPOINT (https://<resource>.openai.azure.com)"
            )));
        }
        let k = |name: &str| format!("{key}.{name}");
        let max_in_flight = opt_range(&k("max_in_flight"), p.max_in_flight, 1, 1_000_000)?;
        let rpm = opt_range(
            &k("requests_per_minute"),
            p.requests_per_minute,
            1,
            100_000_000,
        )?;
        let tpm = opt_range(
            &k("tokens_per_minute"),
            p.tokens_per_minute,
            1,
            1_000_000_000_000,
        )?;
        for (model, l) in &p.model_limits {
            let mk = |name: &str| format!("{key}.model_limits.{model:?}.{name}");
            opt_range(
                &mk("requests_per_minute"),
                l.requests_per_minute,
                1,
                100_000_000,
            )?;
            opt_range(
                &mk("tokens_per_minute"),
                l.tokens_per_minute,
                1,
                1_000_000_000_000,
            )?;
        }
        let max_attempts = opt_range(&k("max_attempts"), p.max_attempts, 1, 100)?;
        let breaker_failures = opt_range(&k("breaker_failures"), p.breaker_failures, 1, 1 << 30)?;
        let rate_window = secs(p.rate_window_s, 60.0, &k("rate_window_s"), MIN_S, DAY_S)?;
        let permit_wait = secs(p.permit_wait_s, 30.0, &k("permit_wait_s"), 0.0, DAY_S)?;
        let timeout = secs(p.timeout_s, 60.0, &k("timeout_s"), MIN_S, DAY_S)?;
        let deadline = secs(p.deadline_s, 180.0, &k("deadline_s"), MIN_S, DAY_S)?;
        let cooldown = secs(
            p.breaker_cooldown_s,
            10.0,
            &k("breaker_cooldown_s"),
            0.0,
            DAY_S,
        )?;
        // Unset, the permit wait is 30 s or the attempt timeout, whichever is shorter.
        let permit_wait = if p.permit_wait_s.is_none() {
            permit_wait.min(timeout)
        } else {
            permit_wait
        };
        if permit_wait > timeout {
            // The attempt timeout runs from the moment an attempt asks for a permit.
            return Err(ConfigError(format!(
                "{key}.permit_wait_s ({}) must not be above {key}.timeout_s ({}): an attempt's timeout includes its wait for a permit",
                permit_wait.as_secs_f64(),
                timeout.as_secs_f64()
            )));
        }
        let batch_poll = secs(p.batch_poll_s, 5.0, &k("batch_poll_s"), MIN_S, DAY_S)?;
        let batch_poll_max = secs(
            p.batch_poll_max_s,
            300.0_f64.max(batch_poll.as_secs_f64()),
            &k("batch_poll_max_s"),
            MIN_S,
            DAY_S,
        )?;
        if batch_poll_max < batch_poll {
            return Err(ConfigError(format!(
                "{key}.batch_poll_max_s ({}) must not be below {key}.batch_poll_s ({})",
                batch_poll_max.as_secs_f64(),
                batch_poll.as_secs_f64()
            )));
        }
        let http2_prior_knowledge = p.http2_prior_knowledge.unwrap_or(false);
        let http1_only = p.http1_only.unwrap_or(false);
        if http2_prior_knowledge && http1_only {
            return Err(ConfigError(format!(
                "{key}: http2_prior_knowledge and http1_only cannot both be set"
            )));
        }
        let connect_timeout = secs(
            p.connect_timeout_s,
            10.0,
            &k("connect_timeout_s"),
            MIN_S,
            DAY_S,
        )?;
        let pool_idle_timeout = secs(
            p.pool_idle_timeout_s,
            30.0,
            &k("pool_idle_timeout_s"),
            0.0,
            DAY_S,
        )?;
        let ca_file = match p.ca_file.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => {
                let path = std::path::PathBuf::from(f);
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "{key}.ca_file = {f:?} is not a readable file"
                    )));
                }
                Some(path)
            }
        };
        let proxy = p.proxy.clone().filter(|x| !x.expose().trim().is_empty());
        if let Some(x) = &proxy
            && reqwest::Url::parse(x.expose().trim()).is_err()
        {
            // The value is not echoed: a proxy URL may carry credentials.
            return Err(ConfigError(format!(
                "{key}.proxy is not a URL such as http://proxy.internal:3128"
            )));
        }
        providers.insert(
            name.clone(),
            ProviderSettings {
                name: name.clone(),
                kind: p.kind,
                base_url,
                api_key,
                api_version: p.api_version.unwrap_or_else(|| "2024-10-21".into()),
                default_model: p.default_model,
                max_in_flight: max_in_flight.unwrap_or(256),
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                rate_window,
                permit_wait,
                timeout,
                deadline,
                max_attempts: max_attempts.unwrap_or(raw.retry.max_attempts),
                breaker_failures: breaker_failures.unwrap_or(5),
                breaker_cooldown: cooldown,
                headers: p.headers.into_iter().collect(),
                http2_prior_knowledge,
                http1_only,
                connect_timeout,
                pool_idle_timeout,
                ca_file,
                proxy,
                model_limits: p.model_limits,
                prompt_cache: p.prompt_cache.unwrap_or(p.kind == ProviderKind::Anthropic),
                batch_poll,
                batch_poll_max,
            },
        );
    }

    let mut routes = BTreeMap::new();
    let mut route_options = BTreeMap::new();
    for (name, route) in &raw.routes {
        let key = format!("routes.{name}");
        if route.steps.is_empty() {
            return Err(ConfigError(format!("{key} has no steps")));
        }
        let mut steps = Vec::new();
        for s in &route.steps {
            steps.push(parse_step(s, &providers).map_err(|m| ConfigError(format!("{key}: {m}")))?);
        }
        routes.insert(name.clone(), steps);
        if route.options != RouteOptions::default() {
            route_options.insert(name.clone(), route.options);
        }
    }

    let mut rules_only = false;
    let default_name = raw.judge.default_route.clone();
    // API_TYPE / MODEL_VERSION choose the default route, as they do for lmms-eval.
    if let Some(api_type) = env.get("API_TYPE").map(|s| s.trim().to_ascii_lowercase()) {
        let p = providers.get(&api_type).ok_or_else(|| {
            ConfigError(format!(
                "API_TYPE = {api_type:?} names no provider (known: {})",
                providers.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let model = env
            .get("MODEL_VERSION")
            .map(|m| m.trim().to_string())
            .or_else(|| p.default_model.clone())
            .unwrap_or_else(|| "rules".into());
        routes.insert(
            default_name.clone(),
            vec![StepSettings {
                provider: api_type,
                model,
            }],
        );
    } else if !routes.contains_key(&default_name) && !raw.panels.contains_key(&default_name) {
        // No default route configured: the first provider with credentials, else the rules judge.
        let order = [
            "openai",
            "azure",
            "anthropic",
            "gemini",
            "cohere",
            "together",
        ];
        let chosen = order.iter().find_map(|n| {
            let p = providers.get(*n)?;
            let model = if *n == "openai" {
                env.get("MODEL_VERSION")
                    .cloned()
                    .or(p.default_model.clone())
            } else {
                p.default_model.clone()
            };
            (p.api_key.is_some() && !(p.kind == ProviderKind::Azure && p.base_url.is_empty())).then(
                || StepSettings {
                    provider: n.to_string(),
                    model: model.unwrap_or_default(),
                },
            )
        });
        let step = chosen.unwrap_or_else(|| {
            rules_only = true;
            StepSettings {
                provider: "rules".into(),
                model: "rules".into(),
            }
        });
        routes.insert(default_name.clone(), vec![step]);
    }
    routes.entry("rules".into()).or_insert_with(|| {
        vec![StepSettings {
            provider: "rules".into(),
            model: "rules".into(),
        }]
    });
    if !providers.contains_key("rules") {
        return Err(ConfigError("providers.rules may not be removed".into()));
    }
    let panels = validate_panels(&raw.panels, &routes, &providers)?;

    Ok(Settings {
        listen,
        server: raw.server,
        judge: raw.judge,
        jobs: raw.jobs,
        retry: raw.retry,
        providers,
        routes,
        route_options,
        panels,
        prices: raw.prices,
        auth: raw.auth,
        cache: raw.cache,
        redis: raw.redis,
        rules_only,
    })
}

/// Parses `"provider:model"`, split at the first ':' (model names may contain ':').
fn parse_step(
    s: &str,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<StepSettings, String> {
    let s = s.trim();
    let (provider, model) = match s.split_once(':') {
        Some((p, m)) => (p.trim(), m.trim().to_string()),
        None => (s, String::new()),
    };
    let p = providers.get(provider).ok_or_else(|| {
        format!(
            "step {s:?} names the provider {provider:?}, which is not configured (known: {})",
            providers.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let model = if model.is_empty() {
        p.default_model
            .clone()
            .or_else(|| (p.kind == ProviderKind::Rules).then(|| "rules".to_string()))
            .ok_or_else(|| {
                format!("step {s:?} names no model and {provider} has no default_model")
            })?
    } else {
        model
    };
    Ok(StepSettings {
        provider: provider.to_string(),
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
        let tmp = file.map(|text| {
            let mut f = tempfile::NamedTempFile::with_suffix(".toml").unwrap();
            f.write_all(text.as_bytes()).unwrap();
            f
        });
        Settings::from_sources(Sources {
            file: tmp.as_ref().map(|f| f.path()),
            toml: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn no_keys_means_the_rules_judge() {
        let s = load(&[], None).unwrap();
        assert!(s.rules_only);
        assert_eq!(
            s.routes["default"],
            vec![StepSettings {
                provider: "rules".into(),
                model: "rules".into()
            }]
        );
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn bad_base_urls_and_header_names_fail_at_start_up() {
        let bad_url = r#"
            [providers.local]
            kind = "openai"
            base_url = "http://exa mple.com/v1"
        "#;
        let e = load(&[], Some(bad_url)).unwrap_err().to_string();
        assert!(
            e.contains("providers.local.base_url is not a valid URL"),
            "{e}"
        );
        let bad_header = r#"
            [providers.local]
            kind = "openai"
            base_url = "http://127.0.0.1:9/v1"
            [providers.local.headers]
            "bad header" = "x"
        "#;
        let e = load(&[], Some(bad_header)).unwrap_err().to_string();
        assert!(e.contains("is not a valid HTTP header name"), "{e}");
        let bad_value = r#"
            [providers.local]
            kind = "openai"
            base_url = "http://127.0.0.1:9/v1"
            [providers.local.headers]
            x-team = "a\nb"
        "#;
        let e = load(&[], Some(bad_value)).unwrap_err().to_string();
        assert!(
            e.contains("headers.x-team: the value is not a valid"),
            "{e}"
        );
    }

    #[test]
    fn lmms_eval_shortcuts_choose_the_default_route() {
        let s = load(
            &[
                ("API_TYPE", "openai"),
                ("MODEL_VERSION", "gpt-4o-mini"),
                ("OPENAI_API_KEY", "sk-test"),
                (
                    "OPENAI_API_URL",
                    "http://127.0.0.1:9000/v1/chat/completions",
                ),
            ],
            None,
        )
        .unwrap();
        assert!(!s.rules_only);
        assert_eq!(s.routes["default"][0].model, "gpt-4o-mini");
        assert_eq!(s.providers["openai"].base_url, "http://127.0.0.1:9000/v1");
        assert_eq!(
            s.providers["openai"].api_key.as_ref().unwrap().expose(),
            "sk-test"
        );
        // a key alone enables the provider as the default
        let s = load(&[("ANTHROPIC_API_KEY", "k")], None).unwrap();
        assert_eq!(s.routes["default"][0].provider, "anthropic");
    }

    #[test]
    fn layering_file_then_env() {
        let file = r#"
            [providers.local]
            kind = "openai"
            base_url = "http://127.0.0.1:11434/v1"
            [routes]
            default = ["local:llama3.1:8b", "rules"]
        "#;
        let s = load(
            &[(
                "LLM_JUDGE__PROVIDERS__LOCAL__BASE_URL",
                "http://127.0.0.1:9000/v1",
            )],
            Some(file),
        )
        .unwrap();
        assert_eq!(s.providers["local"].base_url, "http://127.0.0.1:9000/v1");
        assert_eq!(
            s.routes["default"][0],
            StepSettings {
                provider: "local".into(),
                model: "llama3.1:8b".into()
            }
        );
        assert_eq!(s.routes["default"][1].provider, "rules");
        let s = load(
            &[("LLM_JUDGE__ROUTES__DEFAULT", "openai:gpt-4o, rules")],
            None,
        )
        .unwrap();
        assert_eq!(s.routes["default"].len(), 2);
    }

    #[test]
    fn invalid_files_name_the_key() {
        let e = load(&[], Some("[server]\nlisten = \"nope\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
        let e = load(&[], Some("[providers.x]\nkind = \"openai\"\nbogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = load(&[], Some("[routes]\ndefault = [\"nobody:m\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("routes.default") && e.contains("nobody"), "{e}");
        let e = load(&[], Some("[providers.x]\nkind = \"telepathy\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("telepathy"), "{e}");
        let e = load(&[("API_TYPE", "nobody")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("API_TYPE"), "{e}");
    }

    #[test]
    fn client_tokens_come_from_a_list_or_a_comma_separated_variable() {
        let s = load(&[("LLM_JUDGE__AUTH__TOKENS", "abc, def")], None).unwrap();
        let t: Vec<&str> = s.auth.tokens.iter().map(Secret::expose).collect();
        assert_eq!(t, ["abc", "def"]);
        let s = load(&[], Some("[auth]\ntokens = [\"x\"]\n")).unwrap();
        assert_eq!(s.auth.tokens.len(), 1);
    }

    #[test]
    fn server_timeouts_and_cap_have_defaults_and_out_of_range_values_name_the_key() {
        let s = load(&[], None).unwrap().server;
        assert_eq!(
            (
                s.header_read_timeout_s,
                s.idle_timeout_s,
                s.body_read_timeout_s
            ),
            (10.0, 75.0, 60.0)
        );
        assert_eq!(s.max_connections, 10_000);
        assert!(s.allowed_origins.is_empty());
        for (var, value, says) in [
            (
                "HEADER_READ_TIMEOUT_S",
                "0",
                "server.header_read_timeout_s = 0 is out of range",
            ),
            (
                "IDLE_TIMEOUT_S",
                "-1",
                "server.idle_timeout_s = -1 is out of range",
            ),
            (
                "BODY_READ_TIMEOUT_S",
                "1e9",
                "server.body_read_timeout_s = 1000000000 is out of range",
            ),
            (
                "SHUTDOWN_GRACE_S",
                "-5",
                "server.shutdown_grace_s = -5 is out of range",
            ),
            (
                "MAX_CONNECTIONS",
                "0",
                "server.max_connections = 0 is out of range",
            ),
        ] {
            let key = format!("LLM_JUDGE__SERVER__{var}");
            let e = load(&[(&key, value)], None).unwrap_err().to_string();
            let (name, _) = says.split_once(" = ").unwrap();
            assert!(
                e.contains(name) && e.contains("is out of range"),
                "{var}={value}: {e}"
            );
        }
        let s = load(
            &[],
            Some(
                "[server]\nallowed_origins = [\"https://a.example\", \"http://127.0.0.1:3000\"]\n",
            ),
        )
        .unwrap();
        assert_eq!(s.server.allowed_origins.len(), 2);
        for bad in [
            "https://a.example/",
            "a.example",
            "https://a.example/path",
            "ftp://a.example",
        ] {
            let toml = format!("[server]\nallowed_origins = [{bad:?}]\n");
            let e = load(&[], Some(&toml)).unwrap_err().to_string();
            assert!(
                e.contains("server.allowed_origins") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn serving_threads_default_to_one_per_cpu_and_are_bounded() {
        assert_eq!(load(&[], None).unwrap().server.threads, 0);
        let s = load(&[("LLM_JUDGE__SERVER__THREADS", "3")], None).unwrap();
        assert_eq!(s.server.threads, 3);
        let e = load(&[("LLM_JUDGE__SERVER__THREADS", "5000")], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.threads = 5000 is out of range: it must be from 0 to 1024"),
            "{e}"
        );
    }

    /// Every numeric key, with values that used to panic at start-up (`inf`, `1e300`) or were
    /// silently accepted (`0`, `nan`, a busy-looping interval): each is refused naming the key.
    #[test]
    fn every_numeric_key_is_range_checked_naming_it() {
        let provider = |key: &str, v: &str| {
            format!(
                "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n{key} = {v}\n"
            )
        };
        let section = |section: &str, key: &str, v: &str| format!("[{section}]\n{key} = {v}\n");
        let mut cases: Vec<(String, String)> = Vec::new();
        let mut add = |key: &str, toml: String| cases.push((key.to_string(), toml));
        for (key, bad) in [
            ("server.max_body_bytes", "0"),
            ("server.max_batch_items", "0"),
            ("server.batch_max_concurrent", "0"),
            ("server.batch_max_concurrent_limit", "0"),
            ("server.shutdown_grace_s", "inf"),
            ("server.shutdown_grace_s", "1e300"),
            ("server.shutdown_grace_s", "-1.0"),
            ("server.shutdown_grace_s", "nan"),
            ("server.threads", "5000"),
            ("judge.temperature", "2.5"),
            ("judge.temperature", "nan"),
            ("judge.max_tokens", "0"),
            ("judge.cache_entries", "1000000000"),
            ("jobs.retention_hours", "inf"),
            ("jobs.retention_hours", "1e300"),
            ("jobs.retention_hours", "0.0"),
            ("jobs.retention_hours", "nan"),
            ("jobs.janitor_interval_s", "inf"),
            ("jobs.janitor_interval_s", "1e300"),
            ("jobs.janitor_interval_s", "1e-9"),
            ("jobs.commit_interval_ms", "3600000"),
            ("jobs.max_items", "0"),
            ("jobs.cache_mb", "0"),
            ("retry.max_attempts", "0"),
            ("retry.base_delay_ms", "100000000"),
            ("retry.max_delay_ms", "100000000"),
            ("retry.max_retry_after_s", "10000000"),
            ("retry.budget_ratio", "nan"),
            ("retry.budget_ratio", "-0.5"),
            ("retry.budget_ratio", "inf"),
            ("retry.budget_min_per_s", "100000000"),
        ] {
            let (sec, k) = key.split_once('.').unwrap();
            add(key, section(sec, k, bad));
        }
        for (key, bad) in [
            ("timeout_s", "0"),
            ("timeout_s", "inf"),
            ("timeout_s", "1e300"),
            ("timeout_s", "nan"),
            ("deadline_s", "0"),
            ("deadline_s", "1e300"),
            ("permit_wait_s", "-1"),
            ("permit_wait_s", "1e300"),
            ("rate_window_s", "0"),
            ("rate_window_s", "inf"),
            ("breaker_cooldown_s", "1e300"),
            ("breaker_cooldown_s", "-1"),
            ("breaker_failures", "0"),
            ("max_in_flight", "0"),
            ("max_attempts", "0"),
            ("requests_per_minute", "0"),
            ("tokens_per_minute", "0"),
        ] {
            add(&format!("providers.local.{key}"), provider(key, bad));
        }
        add(
            "prices.\"m\".prompt_per_mtok",
            "[prices]\nm = { prompt_per_mtok = nan, completion_per_mtok = 1.0 }\n".into(),
        );
        add(
            "prices.\"m\".completion_per_mtok",
            "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = -1.0 }\n".into(),
        );
        add(
            "prices.\"m\".cached_prompt_per_mtok",
            "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, cached_prompt_per_mtok = -0.1 }\n".into(),
        );
        add(
            "prices.\"m\".cache_write_per_mtok",
            "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, cache_write_per_mtok = inf }\n".into(),
        );
        add(
            "prices.\"m\".batch_discount",
            "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, batch_discount = 1.5 }\n".into(),
        );
        for (key, toml) in &cases {
            let e = match load(&[], Some(toml)) {
                Ok(_) => panic!("accepted:\n{toml}"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains(&format!("{key} = ")) && e.contains("out of range"),
                "{toml}\n-> {e}"
            );
        }
        // The same keys through environment variables.
        for (var, key) in [
            ("LLM_JUDGE__JOBS__RETENTION_HOURS", "jobs.retention_hours"),
            (
                "LLM_JUDGE__SERVER__SHUTDOWN_GRACE_S",
                "server.shutdown_grace_s",
            ),
            (
                "LLM_JUDGE__PROVIDERS__OPENAI__TIMEOUT_S",
                "providers.openai.timeout_s",
            ),
        ] {
            let e = load(&[(var, "inf")], None).unwrap_err().to_string();
            assert!(e.contains(&format!("{key} = inf")), "{e}");
        }
        // The edges of each range are valid.
        let edges = "[server]\nshutdown_grace_s = 0.0\nmax_body_bytes = 1024\n\
                     [jobs]\njanitor_interval_s = 0.1\nretention_hours = 87600.0\ncommit_interval_ms = 0\n\
                     [retry]\nbudget_ratio = 0.0\n\
                     [providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
                     timeout_s = 86400\nbreaker_cooldown_s = 0\npermit_wait_s = 0\nrate_window_s = 0.001\n";
        let s = load(&[], Some(edges)).unwrap();
        assert_eq!(s.providers["local"].timeout, Duration::from_secs(86_400));
        assert_eq!(s.providers["local"].permit_wait, Duration::ZERO);
    }

    #[test]
    fn an_empty_client_token_is_refused_instead_of_turning_auth_off() {
        for toml in [
            "[auth]\ntokens = [\"\"]\n",
            "[auth]\ntokens = [\"abc\", \"  \"]\n",
        ] {
            let e = load(&[], Some(toml)).unwrap_err().to_string();
            assert!(e.contains("auth.tokens[") && e.contains("is empty"), "{e}");
        }
        let e = load(&[("LLM_JUDGE__AUTH__TOKENS", "abc,")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.tokens[1] is empty"), "{e}");
        // No tokens at all is still the explicit way to turn auth off.
        assert!(
            load(&[], Some("[auth]\ntokens = []\n"))
                .unwrap()
                .auth
                .tokens
                .is_empty()
        );
    }

    #[test]
    fn redis_is_off_by_default_and_its_url_is_checked_without_being_echoed() {
        let s = load(&[], None).unwrap();
        assert!(s.redis.url().is_none());
        assert_eq!(s.redis.on_redis_error, OnRedisError::Local);
        let s = load(
            &[
                (
                    "LLM_JUDGE__REDIS__URL",
                    "rediss://:hunter2@cache.internal:6380/2",
                ),
                ("LLM_JUDGE__REDIS__ON_REDIS_ERROR", "fail"),
                ("LLM_JUDGE__REDIS__EXPECTED_REPLICAS", "4"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            s.redis.url(),
            Some("rediss://:hunter2@cache.internal:6380/2")
        );
        assert_eq!(s.redis.on_redis_error, OnRedisError::Fail);
        assert_eq!(s.redis.expected_replicas, 4);
        assert!(!format!("{s:?}").contains("hunter2"));
        let e = load(&[("LLM_JUDGE__REDIS__URL", "http://:hunter2@h:1")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("redis.url") && !e.contains("hunter2"), "{e}");
        let e = load(&[("LLM_JUDGE__REDIS__EXPECTED_REPLICAS", "0")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("redis.expected_replicas = 0"), "{e}");
        let e = load(&[("LLM_JUDGE__REDIS__ON_REDIS_ERROR", "panic")], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("panic"), "{e}");
        let limits = "[providers.openai.model_limits.\"gpt-4o-mini\"]\nrequests_per_minute = 0\n";
        let e = load(&[], Some(limits)).unwrap_err().to_string();
        assert!(
            e.contains("model_limits.\"gpt-4o-mini\".requests_per_minute = 0"),
            "{e}"
        );
    }

    #[test]
    fn the_permit_wait_fits_inside_the_attempt_timeout() {
        let s = load(&[("LLM_JUDGE__PROVIDERS__OPENAI__TIMEOUT_S", "5")], None).unwrap();
        assert_eq!(s.providers["openai"].permit_wait, Duration::from_secs(5));
        let e = load(
            &[
                ("LLM_JUDGE__PROVIDERS__OPENAI__TIMEOUT_S", "5"),
                ("LLM_JUDGE__PROVIDERS__OPENAI__PERMIT_WAIT_S", "10"),
            ],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("providers.openai.permit_wait_s") && e.contains("timeout_s"),
            "{e}"
        );
    }

    #[test]
    fn cache_and_batch_prices_default_so_nothing_is_under_counted() {
        let toml = r#"
            [prices]
            plain = { prompt_per_mtok = 3.0, completion_per_mtok = 15.0 }
            full = { prompt_per_mtok = 3.0, completion_per_mtok = 15.0, cached_prompt_per_mtok = 0.3, cache_write_per_mtok = 3.75, batch_discount = 0.4 }
        "#;
        let s = load(&[], Some(toml)).unwrap();
        let plain = s.price("anthropic", "plain").unwrap();
        assert_eq!(
            (
                plain.cached_prompt(),
                plain.cache_write(),
                plain.batch_discount()
            ),
            (3.0, 3.75, 0.5)
        );
        let full = s.price("anthropic", "full").unwrap();
        assert_eq!(
            (
                full.cached_prompt(),
                full.cache_write(),
                full.batch_discount()
            ),
            (0.3, 3.75, 0.4)
        );
        let e = load(
            &[],
            Some(
                "[prices]\nm = { prompt_per_mtok = 1.0, completion_per_mtok = 1.0, cached = 1 }\n",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cached"), "{e}");
    }

    #[test]
    fn the_prompt_cache_switch_is_on_for_anthropic_and_per_provider() {
        let s = load(&[], None).unwrap();
        assert!(s.providers["anthropic"].prompt_cache);
        assert!(!s.providers["openai"].prompt_cache);
        let s = load(
            &[("LLM_JUDGE__PROVIDERS__ANTHROPIC__PROMPT_CACHE", "false")],
            None,
        )
        .unwrap();
        assert!(!s.providers["anthropic"].prompt_cache);
    }

    #[test]
    fn a_daily_budget_needs_client_tokens_and_a_sane_amount() {
        let s = load(
            &[],
            Some("[auth]\ntokens = [\"t\"]\ndaily_budget_usd = 5.0\ndaily_budget_tokens = 1000\n"),
        )
        .unwrap();
        assert_eq!(
            (s.auth.daily_budget_usd, s.auth.daily_budget_tokens),
            (Some(5.0), Some(1000))
        );
        let e = load(&[], Some("[auth]\ndaily_budget_usd = 5.0\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.tokens"), "{e}");
        let e = load(
            &[],
            Some("[auth]\ntokens = [\"t\"]\ndaily_budget_usd = -1.0\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("auth.daily_budget_usd = -1") && e.contains("out of range"),
            "{e}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = load(&[("OPENAI_API_KEY", "sk-very-secret")], None).unwrap();
        assert!(!format!("{s:?}").contains("sk-very-secret"));
    }
}
