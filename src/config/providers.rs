//! The `[providers.NAME]` sections: each provider's raw settings, the built-in providers, and
//! their validation into [`ProviderSettings`], which fills in every key left out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use llm_judge_chat::Secret;
use llm_judge_providers::settings::{ModelLimits, ProviderKind, ProviderSettings};

use super::check::{ConfigError, DAY_S, MIN_S, opt_range, secs};

/// Built-in defaults, the lowest layer. Every known provider is present; one is enabled when its
/// key is set (or, for local servers, when it needs none).
pub(super) const DEFAULTS: &str = r#"
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

/// Validates every provider. One that leaves out `max_attempts` takes `retry_attempts`
/// (`retry.max_attempts`).
pub(super) fn validate(
    raw: BTreeMap<String, RawProvider>,
    env: &BTreeMap<String, String>,
    retry_attempts: u32,
) -> Result<BTreeMap<String, ProviderSettings>, ConfigError> {
    let mut providers = BTreeMap::new();
    for (name, p) in raw {
        let settings = validate_one(&name, p, env, retry_attempts)?;
        providers.insert(name, settings);
    }
    Ok(providers)
}

/// One provider: where it is and how to reach it, its limits, its waits, its connections.
fn validate_one(
    name: &str,
    p: RawProvider,
    env: &BTreeMap<String, String>,
    retry_attempts: u32,
) -> Result<ProviderSettings, ConfigError> {
    let key = format!("providers.{name}");
    if name.is_empty() || name.contains(':') {
        return Err(ConfigError(format!(
            "{key}: a provider name may not contain ':'"
        )));
    }
    let endpoint = Endpoint::validate(&key, &p, env)?;
    let limits = Limits::validate(&key, &p, retry_attempts)?;
    let timing = Timing::validate(&key, &p)?;
    let transport = Transport::validate(&key, &p)?;
    Ok(ProviderSettings {
        name: name.to_string(),
        kind: p.kind,
        base_url: endpoint.base_url,
        api_key: endpoint.api_key,
        api_version: p.api_version.unwrap_or_else(|| "2024-10-21".into()),
        default_model: p.default_model,
        max_in_flight: limits.max_in_flight,
        requests_per_minute: limits.requests_per_minute,
        tokens_per_minute: limits.tokens_per_minute,
        rate_window: timing.rate_window,
        permit_wait: timing.permit_wait,
        timeout: timing.timeout,
        deadline: timing.deadline,
        max_attempts: limits.max_attempts,
        breaker_failures: limits.breaker_failures,
        breaker_cooldown: timing.breaker_cooldown,
        headers: p.headers.into_iter().collect(),
        http2_prior_knowledge: transport.http2_prior_knowledge,
        http1_only: transport.http1_only,
        connect_timeout: transport.connect_timeout,
        pool_idle_timeout: transport.pool_idle_timeout,
        ca_file: transport.ca_file,
        proxy: transport.proxy,
        model_limits: p.model_limits,
        prompt_cache: p.prompt_cache.unwrap_or(p.kind == ProviderKind::Anthropic),
        batch_poll: timing.batch_poll,
        batch_poll_max: timing.batch_poll_max,
    })
}

/// Where a provider is and what it is sent: its base URL, its key and its extra headers.
struct Endpoint {
    base_url: String,
    api_key: Option<Secret>,
}

impl Endpoint {
    fn validate(
        key: &str,
        p: &RawProvider,
        env: &BTreeMap<String, String>,
    ) -> Result<Endpoint, ConfigError> {
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
        let base_url = match &p.base_url {
            Some(u) => u.trim().trim_end_matches('/').to_string(),
            None => default_base_url(p.kind).to_string(),
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
        check_headers(key, &p.headers)?;
        if p.kind == ProviderKind::Azure && base_url.is_empty() && api_key.is_some() {
            return Err(ConfigError(format!(
                "{key}.base_url is not set: set AZURE_ENDPOINT (https://<resource>.openai.azure.com)"
            )));
        }
        Ok(Endpoint { base_url, api_key })
    }
}

/// The base URL of a provider of `kind` that sets none (an Azure resource has no default).
fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Rules => "",
        ProviderKind::Azure => "",
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Together => "https://api.together.xyz/v1",
        ProviderKind::Anthropic => "https://api.anthropic.com",
        ProviderKind::Cohere => "https://api.cohere.com",
        ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
    }
}

/// Every extra header is a valid HTTP header name and value.
fn check_headers(key: &str, headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (h, v) in headers {
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
    Ok(())
}

/// How much a provider is asked at once and how often, and when its breaker opens.
struct Limits {
    max_in_flight: usize,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
    max_attempts: u32,
    breaker_failures: u32,
}

impl Limits {
    fn validate(key: &str, p: &RawProvider, retry_attempts: u32) -> Result<Limits, ConfigError> {
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
        Ok(Limits {
            max_in_flight: max_in_flight.unwrap_or(256),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            max_attempts: max_attempts.unwrap_or(retry_attempts),
            breaker_failures: breaker_failures.unwrap_or(5),
        })
    }
}

/// How long a provider's calls may wait and take: the rate window, the permit wait, the attempt
/// timeout, the step deadline, the breaker's cooldown and the polls of a provider batch.
struct Timing {
    rate_window: Duration,
    permit_wait: Duration,
    timeout: Duration,
    deadline: Duration,
    breaker_cooldown: Duration,
    batch_poll: Duration,
    batch_poll_max: Duration,
}

impl Timing {
    fn validate(key: &str, p: &RawProvider) -> Result<Timing, ConfigError> {
        let k = |name: &str| format!("{key}.{name}");
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
        Ok(Timing {
            rate_window,
            permit_wait,
            timeout,
            deadline,
            breaker_cooldown: cooldown,
            batch_poll,
            batch_poll_max,
        })
    }
}

/// How a provider's connections are made: the HTTP version, the connect and idle timeouts, the
/// extra trusted roots and the proxy.
struct Transport {
    http2_prior_knowledge: bool,
    http1_only: bool,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    ca_file: Option<PathBuf>,
    proxy: Option<Secret>,
}

impl Transport {
    fn validate(key: &str, p: &RawProvider) -> Result<Transport, ConfigError> {
        let k = |name: &str| format!("{key}.{name}");
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
                let path = PathBuf::from(f);
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
        Ok(Transport {
            http2_prior_knowledge,
            http1_only,
            connect_timeout,
            pool_idle_timeout,
            ca_file,
            proxy,
        })
    }
}
