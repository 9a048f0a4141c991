//! The settings of one provider, validated: what the service's configuration hands this layer.

use std::collections::BTreeMap;
use std::time::Duration;

use llm_judge_chat::Secret;
use serde::Deserialize;

/// The wire format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Azure,
    Anthropic,
    Cohere,
    Together,
    Gemini,
    Rules,
}

impl ProviderKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Cohere => "cohere",
            ProviderKind::Together => "together",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Rules => "rules",
        }
    }
}

/// The request and token limits of one model, in the provider's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

/// One provider, validated.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub api_version: String,
    pub default_model: Option<String>,
    pub max_in_flight: usize,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub rate_window: Duration,
    pub permit_wait: Duration,
    pub timeout: Duration,
    pub deadline: Duration,
    pub max_attempts: u32,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub headers: Vec<(String, String)>,
    pub http2_prior_knowledge: bool,
    pub http1_only: bool,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
    pub proxy: Option<Secret>,
    /// Limits of single models, on top of the provider's.
    pub model_limits: BTreeMap<String, ModelLimits>,
    /// Mark built-in templates' instructions for an explicit prompt cache (Anthropic).
    pub prompt_cache: bool,
    /// Provider batches: the first and the longest wait between two polls.
    pub batch_poll: Duration,
    pub batch_poll_max: Duration,
}
