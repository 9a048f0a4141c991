//! The `[judge]` section: the default route, the rules precheck, what a judge is asked with and
//! the verdict cache's size, with its defaults and range checks. Its settings are the judging
//! layer's own [`JudgeSettings`].

use llm_judge_judge::settings::JudgeSettings;

use super::check::{ConfigError, range};

/// The `[judge]` defaults.
pub(super) const DEFAULTS: &str = r#"
[judge]
default_route = "default"
rules_precheck = false
temperature = 0.0
seed = 0
max_tokens = 512
cache_entries = 100000
"#;

/// Range checks of the `[judge]` keys.
pub(super) fn check_ranges(j: &JudgeSettings) -> Result<(), ConfigError> {
    range("judge.temperature", j.temperature, 0.0, 2.0)?;
    range("judge.max_tokens", j.max_tokens, 1, 1_000_000)?;
    range("judge.cache_entries", j.cache_entries, 0, 100_000_000)?;
    Ok(())
}
