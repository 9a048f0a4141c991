//! When things happen in a batch, the same for both APIs: its timeline from creation, where it
//! is at any moment (its stage and the requests processed), and the moment it was created.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::BatchConfig;

/// When things happen in a batch, from its creation.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Processing starts (OpenAI: validation ends).
    pub start: Duration,
    /// The last request is processed.
    pub processed: Duration,
    /// The batch is done (OpenAI: finalizing ends).
    pub done: Duration,
    /// The whole batch expires then (when before `done`).
    pub expire: Option<Duration>,
    /// A cancel takes this long to finish.
    pub cancel_lag: Duration,
}

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Processing has not started (OpenAI's `validating`).
    Waiting,
    Processing,
    /// Every request processed, the batch not done yet (OpenAI's `finalizing`).
    Finishing,
    /// Cancelled at `since`, not finished cancelling yet.
    Cancelling {
        since: Duration,
    },
    /// Over, at `at`.
    Ended {
        at: Duration,
        how: Ending,
    },
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// The whole batch ran out of time.
    Expired,
    /// Cancelled at `since`.
    Cancelled {
        since: Duration,
    },
}

/// A batch's stage, and how many of its requests have been processed (the first ones of the
/// processing order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub processed: usize,
}

impl Progress {
    pub fn ended(&self) -> bool {
        matches!(self.stage, Stage::Ended { .. })
    }
}

impl Timeline {
    /// A batch that ends `delay` after creation, with `--batch-expire-after-ms`; processing
    /// runs over the part of the delay between `start` and `processed` (fractions of it).
    pub fn new(config: &BatchConfig, start: f64, processed: f64) -> Timeline {
        let delay = config.delay;
        Timeline {
            start: delay.mul_f64(start),
            processed: delay.mul_f64(processed),
            done: delay,
            expire: config.expire_after,
            cancel_lag: delay / 10,
        }
    }

    /// The time the batch expires at, from creation (24 hours unless configured).
    pub fn expires(&self) -> Duration {
        self.expire.unwrap_or(Duration::from_secs(24 * 3600))
    }

    /// How many of `n` requests are processed by `t`.
    pub fn processed_by(&self, n: usize, t: Duration) -> usize {
        if t >= self.processed {
            n
        } else if t < self.start {
            0
        } else {
            let span = (self.processed - self.start).as_nanos();
            let part = (t - self.start).as_nanos();
            (n as u128 * part / span).min(n as u128) as usize
        }
    }

    /// Where a batch of `n` requests is at `t`, cancelled at `cancel` if it was.
    pub fn progress(&self, n: usize, t: Duration, cancel: Option<Duration>) -> Progress {
        if let Some(c) = cancel {
            let processed = self.processed_by(n, c);
            let end = c + self.cancel_lag;
            let stage = if t < end {
                Stage::Cancelling { since: c }
            } else {
                Stage::Ended {
                    at: end,
                    how: Ending::Cancelled { since: c },
                }
            };
            return Progress { stage, processed };
        }
        if let Some(e) = self.expire.filter(|e| *e < self.done)
            && t >= e
        {
            return Progress {
                stage: Stage::Ended {
                    at: e,
                    how: Ending::Expired,
                },
                processed: self.processed_by(n, e),
            };
        }
        let stage = if t >= self.done {
            Stage::Ended {
                at: self.done,
                how: Ending::Completed,
            }
        } else if t >= self.processed {
            Stage::Finishing
        } else if t >= self.start {
            Stage::Processing
        } else {
            Stage::Waiting
        };
        Progress {
            stage,
            processed: self.processed_by(n, t),
        }
    }
}

/// When a batch was created: the clock its timeline runs on, and the wall time of it.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub at: std::time::Instant,
    pub wall: SystemTime,
}

impl Created {
    pub fn now() -> Created {
        Created {
            at: std::time::Instant::now(),
            wall: SystemTime::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.at.elapsed()
    }

    /// Unix seconds of the moment `d` after creation.
    pub fn unix(&self, d: Duration) -> u64 {
        (self.wall + d)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// RFC 3339 (UTC, microseconds) of the moment `d` after creation.
    pub fn rfc3339(&self, d: Duration) -> String {
        humantime::format_rfc3339_micros(self.wall + d).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::config::test_config as config;

    #[test]
    fn progress_follows_the_timeline() {
        let t = Timeline::new(&config(1000, 0.0, 0.0), 0.1, 0.9);
        let ms = Duration::from_millis;
        let at = |m| t.progress(100, ms(m), None);
        assert_eq!(at(0).stage, Stage::Waiting);
        assert_eq!(at(99).processed, 0);
        assert_eq!((at(100).stage, at(100).processed), (Stage::Processing, 0));
        assert_eq!(at(500).processed, 50);
        assert_eq!(at(899).processed, 99);
        assert_eq!((at(900).stage, at(900).processed), (Stage::Finishing, 100));
        let end = Stage::Ended {
            at: ms(1000),
            how: Ending::Completed,
        };
        assert_eq!(at(1000).stage, end);
        assert_eq!(at(5000).stage, end);
        // Cancelled at 300 ms: what was processed by then, over a tenth of the delay later.
        let c = t.progress(100, ms(350), Some(ms(300)));
        assert_eq!(c.stage, Stage::Cancelling { since: ms(300) });
        assert_eq!(c.processed, 25);
        let c = t.progress(100, ms(400), Some(ms(300)));
        assert_eq!(
            c.stage,
            Stage::Ended {
                at: ms(400),
                how: Ending::Cancelled { since: ms(300) }
            }
        );
        assert_eq!(c.processed, 25);
        // Expiring before the end.
        let e = Timeline {
            expire: Some(ms(700)),
            ..t
        };
        assert_eq!(e.progress(100, ms(600), None).stage, Stage::Processing);
        let p = e.progress(100, ms(701), None);
        assert_eq!(
            p.stage,
            Stage::Ended {
                at: ms(700),
                how: Ending::Expired
            }
        );
        assert_eq!(p.processed, 75);
        // An expiry after the end changes nothing.
        let late = Timeline {
            expire: Some(ms(2000)),
            ..t
        };
        assert_eq!(late.progress(100, ms(3000), None).stage, end);
        // No delay: done at once.
        let now = Timeline::new(&config(0, 0.0, 0.0), 0.1, 0.9);
        assert!(now.progress(5, Duration::ZERO, None).ended());
        assert_eq!(now.progress(5, Duration::ZERO, None).processed, 5);
    }
}
