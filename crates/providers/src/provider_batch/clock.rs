//! Time as the providers' lists of batches see it: now in unix seconds, and how far a provider's
//! clock may be behind ours.

/// How far a provider's clock may be behind ours, for lists of batches made "since" a time.
pub const CLOCK_SLACK_S: u64 = 300;

/// Now, in unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
