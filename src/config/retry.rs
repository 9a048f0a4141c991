//! The `[retry]` section: how often and how patiently a failed call is tried again, with its
//! defaults and range checks. Its settings are the pool's own [`RetrySettings`].

use llm_judge_pool::settings::RetrySettings;

use super::check::{ConfigError, range};

/// The `[retry]` defaults.
pub(super) const DEFAULTS: &str = r#"
[retry]
max_attempts = 3
base_delay_ms = 500
max_delay_ms = 8000
max_retry_after_s = 60
budget_ratio = 0.5
budget_min_per_s = 10
"#;

/// Range checks of the `[retry]` keys.
pub(super) fn check_ranges(r: &RetrySettings) -> Result<(), ConfigError> {
    range("retry.max_attempts", r.max_attempts, 1, 100)?;
    range("retry.base_delay_ms", r.base_delay_ms, 0, 3_600_000)?;
    range("retry.max_delay_ms", r.max_delay_ms, 0, 3_600_000)?;
    range("retry.max_retry_after_s", r.max_retry_after_s, 0, 86_400)?;
    range("retry.budget_ratio", r.budget_ratio, 0.0, 100.0)?;
    range("retry.budget_min_per_s", r.budget_min_per_s, 0, 1_000_000)?;
    Ok(())
}
