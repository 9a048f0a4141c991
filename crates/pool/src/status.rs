//! Every provider's state for `GET /v1/providers`: credentials, circuit, calls in flight, limits
//! and recent error rate.

use serde::Serialize;

use crate::pool::Pool;

/// Provider state for `GET /v1/providers`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    pub name: String,
    pub kind: &'static str,
    pub enabled: bool,
    pub circuit: &'static str,
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    /// Failure ratio of recent calls, when there were any.
    pub recent_error_rate: Option<f64>,
}

impl Pool {
    /// The state of every provider.
    pub fn status(&self) -> Vec<ProviderStatus> {
        self.slots
            .values()
            .map(|s| {
                let (rpm, tpm) = s.limiter.limits();
                ProviderStatus {
                    name: s.name.clone(),
                    kind: s.kind.as_str(),
                    enabled: s.has_credentials,
                    circuit: s.breaker.state().as_str(),
                    in_flight: s.max_in_flight - s.semaphore.available_permits(),
                    max_in_flight: s.max_in_flight,
                    requests_per_minute: rpm,
                    tokens_per_minute: tpm,
                    recent_error_rate: s.breaker.recent_error_rate(),
                }
            })
            .collect()
    }
}
