//! The `[prices]` section: what each model costs, by `"provider:model"` or model name, with its
//! range checks. There are no built-in prices; each is the pool's own [`Price`].

use std::collections::BTreeMap;

use llm_judge_pool::cost::Price;

use super::check::{ConfigError, opt_range, range};

/// Range checks of every price.
pub(super) fn check_ranges(prices: &BTreeMap<String, Price>) -> Result<(), ConfigError> {
    for (name, p) in prices {
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
    Ok(())
}
