//! Settings: built-in defaults < TOML file (`--config`) < `LLM_JUDGE__SECTION__KEY` environment
//! variables < the shortcuts an lmms-eval user already has set (`API_TYPE`, `OPENAI_API_KEY` ...).
//!
//! Raw settings are read with unknown keys refused, then validated into [`Settings`] with messages
//! that name the key to fix. Each section (`[server]`, `[providers.NAME]` ...) has its own module
//! holding its raw settings, its defaults and its checks; this one composes them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

mod auth;
mod cache;
mod check;
mod jobs;
mod judge;
mod lists;
mod panels;
mod prices;
mod providers;
mod redis;
mod retry;
mod routes;
mod server;
#[cfg(test)]
mod tests;

pub use auth::AuthSettings;
pub use cache::CacheSettings;
pub use check::ConfigError;
pub use jobs::{JobsConfig, MAX_WAIT_S};
pub use llm_judge_chat::Secret;
pub use llm_judge_fleet::settings::{OnRedisError, RedisSettings};
pub use llm_judge_judge::settings::{
    Aggregate, ConfidenceMode, JudgeSettings, MAX_PANEL_JUDGES, OnTie, PanelSettings, RouteOptions,
};
pub use llm_judge_pool::cost::{DEFAULT_BATCH_DISCOUNT, DEFAULT_CACHE_WRITE_FACTOR, Price};
pub use llm_judge_pool::settings::{PoolSettings, RetrySettings, StepSettings};
pub use llm_judge_providers::settings::{ModelLimits, ProviderKind, ProviderSettings};
pub use providers::RawProvider;
pub use server::ServerSettings;

/// Built-in defaults, the lowest layer: each section's own (`[auth]`, `[routes]`, `[panels]` and
/// `[prices]` have none).
const DEFAULTS: [&str; 7] = [
    server::DEFAULTS,
    judge::DEFAULTS,
    jobs::DEFAULTS,
    cache::DEFAULTS,
    redis::DEFAULTS,
    retry::DEFAULTS,
    providers::DEFAULTS,
];

/// Every section as written, unknown keys refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    server: ServerSettings,
    judge: JudgeSettings,
    jobs: JobsConfig,
    retry: RetrySettings,
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    routes: BTreeMap<String, routes::RawRoute>,
    #[serde(default)]
    panels: BTreeMap<String, panels::RawPanel>,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    #[serde(default)]
    auth: AuthSettings,
    cache: CacheSettings,
    redis: RedisSettings,
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

    /// Loads settings from `src`, each layer over the one before: the built-in defaults, the
    /// file, the TOML text, the `LLM_JUDGE__` variables, the lmms-eval shortcuts.
    pub fn from_sources(src: Sources<'_>) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = src
            .env
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let mut b = DEFAULTS.iter().fold(Config::builder(), |b, defaults| {
            b.add_source(File::from_str(defaults, FileFormat::Toml))
        });
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
            .map_err(|e| read_error(&e.to_string(), src.file))?;
        validate(raw, &env)
    }

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

    /// The price of `provider:model`, or of `model` alone.
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

/// Validates every section, then the routes and panels that stand on the providers.
fn validate(raw: RawSettings, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let listen = server::listen(&raw.server)?;
    check_sections(&raw)?;
    let providers = providers::validate(raw.providers, env, raw.retry.max_attempts)?;
    let routes::Routes {
        steps: mut routes,
        options: route_options,
    } = routes::validate(&raw.routes, &providers)?;
    let default_name = &raw.judge.default_route;
    let is_panel = raw.panels.contains_key(default_name);
    let rules_only = routes::set_default(&mut routes, default_name, is_panel, &providers, env)?;
    routes::add_rules(&mut routes);
    if !providers.contains_key("rules") {
        return Err(ConfigError("providers.rules may not be removed".into()));
    }
    let panels = panels::validate(&raw.panels, &routes, &providers)?;

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

/// The checks of the sections that need nothing from another, in a fixed order: the first
/// problem found is the one reported.
fn check_sections(raw: &RawSettings) -> Result<(), ConfigError> {
    server::check_ranges(&raw.server)?;
    judge::check_ranges(&raw.judge)?;
    jobs::check_ranges(&raw.jobs)?;
    retry::check_ranges(&raw.retry)?;
    prices::check_ranges(&raw.prices)?;
    auth::check_budgets(&raw.auth)?;
    cache::check_ranges(&raw.cache)?;
    redis::check(&raw.redis)?;
    auth::check_tokens(&raw.auth)?;
    server::check_serving(&raw.server)?;
    jobs::check_data_dir(&raw.jobs)
}

/// A file or variable that could not be read, as a [`ConfigError`]: the parser's excerpt of the
/// offending line keeps its key but never its value (which may be a key, a token or a URL with a
/// password), and the file is named.
fn read_error(message: &str, file: Option<&Path>) -> ConfigError {
    let mut out: Vec<String> = Vec::new();
    for line in message.lines() {
        let excerpt = line.trim_start();
        let numbered = excerpt
            .split_once(" | ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if let Some((n, text)) = numbered {
            let shown = match text.split_once('=') {
                Some((key, _)) => format!("{}= (value not shown)", key),
                None => "(line not shown)".to_string(),
            };
            out.push(format!("{n} | {shown}"));
        } else if excerpt.starts_with('|') {
            // The excerpt's frame and its caret under the value: left out with the value.
            continue;
        } else {
            out.push(line.to_string());
        }
    }
    let mut text = out.join("\n");
    if let Some(file) = file {
        let name = file.display().to_string();
        let short = file.file_name().map(|n| n.to_string_lossy().to_string());
        if !text.contains(&name) && !short.is_some_and(|n| text.contains(&n)) {
            text.push_str(&format!(
                " (reading {name} and the LLM_JUDGE__ environment variables)"
            ));
        }
    }
    ConfigError(text)
}
