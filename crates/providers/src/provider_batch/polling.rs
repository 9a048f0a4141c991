//! How calls to a provider's batch endpoints are retried and its batches polled.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How calls to the batch endpoints are retried and batches polled.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The first wait between two polls; each later one is longer, up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// Tries of one call to a batch endpoint, the first included.
    pub attempts: usize,
    /// The first backoff of a retried call (doubling, up to `max`).
    pub retry_base: Duration,
    /// A `retry-after` longer than this is not waited for: the call fails.
    pub max_retry_after: Duration,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            first: Duration::from_secs(5),
            max: Duration::from_secs(300),
            attempts: 5,
            retry_base: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl Polling {
    /// Waits between polls: exponential from `first` to `max`, with jitter, without end.
    pub fn poll_delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max.max(self.first))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    pub(super) fn retries(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.retry_base)
            .with_max_delay(self.max.max(self.retry_base))
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1))
    }
}
