//! The settings of the pool: retries, routes and their steps, prices.

use std::collections::BTreeMap;

use llm_judge_providers::ProviderSettings;
use serde::Deserialize;

use crate::price::Price;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts per route step, the first included.
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// A provider asking to wait longer than this is not retried (the route moves on).
    pub max_retry_after_s: u64,
    /// Retries allowed as a fraction of first attempts, shared by all requests.
    pub budget_ratio: f64,
    /// Retries per second always allowed, whatever the ratio.
    pub budget_min_per_s: u32,
}

/// One step of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSettings {
    pub provider: String,
    pub model: String,
}

/// What the pool is built from: every provider, every route, the retry policy and the prices,
/// borrowed from the service's settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings<'a> {
    pub providers: &'a BTreeMap<String, ProviderSettings>,
    pub routes: &'a BTreeMap<String, Vec<StepSettings>>,
    pub retry: &'a RetrySettings,
    pub prices: &'a BTreeMap<String, Price>,
    /// The route used when a request names none.
    pub default_route: &'a str,
}
