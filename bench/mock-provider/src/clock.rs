//! The stand-in's clocks: microseconds since it started, and each connection's time of its last
//! chat answer.

use std::sync::atomic::AtomicU64;

/// Microseconds since the mock started.
pub fn now_us() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

/// One connection's clock: when its last chat answer was ready (0: none yet).
#[derive(Default)]
pub struct ConnClock {
    pub answered_at_us: AtomicU64,
}
