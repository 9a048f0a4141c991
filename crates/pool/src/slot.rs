//! One provider with everything that guards it: its two stacks over one breaker, limiter, set
//! of concurrency slots and metrics, built from its settings at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::retry::budget::TpsBudget;

use crate::breaker::{Breaker, BreakerConfig};
use crate::price::Price;
use crate::rate_limit::Limiter;
use crate::retry::RetryConfig;
use crate::settings::PoolSettings;
use crate::slot_metrics::SlotMetrics;
use crate::stack::{self, Stack, StackParts, StreamStack};
use llm_judge_chat::Grader;
use llm_judge_providers::provider_batch::BatchClient;
use llm_judge_providers::{ProviderKind, ProviderSettings};

/// One provider with everything that guards it.
pub struct ProviderSlot {
    pub name: String,
    pub kind: ProviderKind,
    pub(crate) has_credentials: bool,
    pub(crate) default_model: Option<String>,
    pub(crate) stack: Stack,
    pub(crate) stream_stack: StreamStack,
    pub(crate) breaker: Arc<Breaker>,
    pub(crate) limiter: Arc<dyn Limiter>,
    pub(crate) semaphore: Arc<Semaphore>,
    pub(crate) max_in_flight: usize,
    pub(crate) deadline: Duration,
    pub(crate) metrics: Arc<SlotMetrics>,
    /// The provider's batch API, where it has one.
    pub(crate) batch: Option<BatchClient>,
}

/// What every provider's slot is built with besides its own settings.
pub(crate) struct Shared<'a> {
    pub settings: &'a PoolSettings<'a>,
    pub grader: Arc<dyn Grader>,
    /// The retry budget every provider draws on.
    pub budget: Arc<TpsBudget>,
    pub prices: Arc<BTreeMap<String, Price>>,
}

impl ProviderSlot {
    /// Builds provider `name`'s client and both its stacks; `limiter` makes its limiter.
    pub(crate) fn build(
        name: &str,
        p: &ProviderSettings,
        shared: &Shared<'_>,
        limiter: &dyn Fn(&ProviderSettings) -> Arc<dyn Limiter>,
    ) -> anyhow::Result<ProviderSlot> {
        let adapter = llm_judge_providers::build(p, shared.grader.clone())
            .map_err(|e| anyhow::anyhow!("provider {name}: {e}"))?;
        let metrics = Arc::new(SlotMetrics::new(
            name,
            shared
                .settings
                .routes
                .values()
                .flatten()
                .filter(|st| st.provider == name)
                .map(|st| st.model.clone()),
            shared.prices.clone(),
        ));
        let breaker = Arc::new(Breaker::new(BreakerConfig {
            consecutive_failures: p.breaker_failures,
            cooldown: p.breaker_cooldown,
            failure_ratio: 0.5,
            window: Duration::from_secs(10),
            min_calls: 20,
        }));
        let limiter = limiter(p);
        let semaphore = Arc::new(Semaphore::new(p.max_in_flight));
        let retry = &shared.settings.retry;
        let parts = StackParts {
            name: name.into(),
            local: adapter.kind == "rules",
            retry: RetryConfig {
                max_attempts: p.max_attempts,
                base: Duration::from_millis(retry.base_delay_ms),
                cap: Duration::from_millis(retry.max_delay_ms),
                max_retry_after: Duration::from_secs(retry.max_retry_after_s),
            },
            budget: shared.budget.clone(),
            breaker: breaker.clone(),
            timeout: p.timeout,
            limiter: limiter.clone(),
            permit_wait: p.permit_wait,
            semaphore: semaphore.clone(),
            metrics: metrics.clone(),
        };
        Ok(ProviderSlot {
            name: name.to_string(),
            kind: p.kind,
            has_credentials: adapter.has_credentials,
            default_model: p.default_model.clone(),
            stack: stack::build(parts.clone(), adapter.service),
            stream_stack: stack::build(parts, adapter.stream),
            breaker,
            limiter,
            semaphore,
            max_in_flight: p.max_in_flight,
            deadline: p.deadline,
            metrics,
            batch: adapter.batch,
        })
    }
}
