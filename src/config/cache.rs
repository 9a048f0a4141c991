//! The `[cache]` section: the verdict cache's tiers, with their defaults and range checks.

use serde::Deserialize;

use super::check::{ConfigError, range};

/// The `[cache]` defaults.
pub(super) const DEFAULTS: &str = r#"
[cache]
memory_mb = 256
disk_mb = 0
ttl_hours = 168.0
"#;

/// The verdict cache's tiers (`judge.cache_entries` bounds the in-memory tier's entries; 0
/// turns every tier off).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Bytes the in-memory tier may hold, in MiB.
    pub memory_mb: u64,
    /// Size bound of the embedded tier on disk (`cache.redb` in the data directory), in MiB;
    /// 0 leaves it out.
    pub disk_mb: u64,
    /// How long a verdict is kept in the embedded and Redis tiers.
    pub ttl_hours: f64,
}

/// Range checks of the `[cache]` keys.
pub(super) fn check_ranges(c: &CacheSettings) -> Result<(), ConfigError> {
    range("cache.memory_mb", c.memory_mb, 1, 1 << 20)?;
    range("cache.disk_mb", c.disk_mb, 0, 1 << 24)?;
    range("cache.ttl_hours", c.ttl_hours, 0.001, 87_600.0)?;
    Ok(())
}
