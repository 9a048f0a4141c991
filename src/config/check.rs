//! What every section's checks speak: [`ConfigError`], which names the key to fix, and the range
//! checks every numeric key goes through.

use std::fmt;
use std::time::Duration;

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// A day in seconds: the longest any wait, timeout or interval may be.
pub(super) const DAY_S: f64 = 86_400.0;
/// The shortest timeout, deadline or window (1 ms): zero would fail or spin.
pub(super) const MIN_S: f64 = 0.001;

/// Checks that a numeric key lies in `min..=max` (NaN never does), naming the key and the range
/// when it does not. Every numeric key goes through it, so a new key gets the same treatment.
pub(super) fn range<T: PartialOrd + fmt::Debug>(
    key: &str,
    v: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if v >= min && v <= max {
        Ok(v)
    } else {
        Err(ConfigError(format!(
            "{key} = {v:?} is out of range: it must be from {min:?} to {max:?}"
        )))
    }
}

/// [`range`] for a key that may be left out.
pub(super) fn opt_range<T: PartialOrd + fmt::Debug + Copy>(
    key: &str,
    v: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, ConfigError> {
    v.map(|v| range(key, v, min, max)).transpose()
}

/// A number of seconds in `min..=max` (or `default` when left out), as a duration.
pub(super) fn secs(
    v: Option<f64>,
    default: f64,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    // `max` is at most a day, so the conversion cannot overflow.
    Ok(Duration::from_secs_f64(range(
        key,
        v.unwrap_or(default),
        min,
        max,
    )?))
}
