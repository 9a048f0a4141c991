//! Per-provider admission: a concurrency cap and sliding-window limits on requests and tokens
//! per window, so a provider never sees more than its quota in any window.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A sliding-window log: at most `limit` units granted in any `window`.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: u64,
    window: Duration,
    log: Mutex<WindowLog>,
}

#[derive(Debug, Default)]
struct WindowLog {
    entries: VecDeque<(Instant, u64)>,
    used: u64,
}

impl WindowLog {
    fn evict(&mut self, now: Instant, window: Duration) {
        while let Some(&(t, n)) = self.entries.front() {
            if now.duration_since(t) >= window {
                self.entries.pop_front();
                self.used -= n;
            } else {
                break;
            }
        }
    }
}

impl SlidingWindow {
    /// The window is kept a little longer than asked (5%, at most 1 s more), so that scheduling
    /// and network delays between our grant and the provider's arrival never put `limit + 1`
    /// requests into one of the provider's windows. The cost: a saturated provider sees about
    /// 95% of its limit.
    pub fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window + (window / 20).min(Duration::from_secs(1)),
            log: Mutex::new(WindowLog::default()),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `n` units now, or says how long to wait before asking again.
    pub fn try_take(&self, n: u64) -> Result<(), Duration> {
        // A request larger than the whole window still goes through, alone, when the window is empty.
        let n = n.min(self.limit);
        let now = Instant::now();
        let mut log = self.log.lock().unwrap();
        log.evict(now, self.window);
        if log.used + n <= self.limit {
            log.used += n;
            log.entries.push_back((now, n));
            return Ok(());
        }
        // Wait until enough old entries leave the window.
        let mut freed = 0;
        let need = log.used + n - self.limit;
        for &(t, k) in &log.entries {
            freed += k;
            if freed >= need {
                return Err(
                    (t + self.window).saturating_duration_since(now) + Duration::from_millis(1)
                );
            }
        }
        Err(self.window)
    }

    /// Corrects the units taken at the last grant by `delta` (real usage minus the estimate).
    pub fn adjust(&self, delta: i64) {
        if delta == 0 {
            return;
        }
        let mut log = self.log.lock().unwrap();
        if delta > 0 {
            let d = delta as u64;
            log.used += d;
            log.entries.push_back((Instant::now(), d));
        } else {
            // Give back from the newest entries.
            let mut give = delta.unsigned_abs();
            while give > 0 {
                let Some(last) = log.entries.back_mut() else {
                    break;
                };
                let k = last.1.min(give);
                last.1 -= k;
                give -= k;
                let empty = last.1 == 0;
                log.used -= k;
                if empty {
                    log.entries.pop_back();
                }
            }
        }
    }

    /// Units used in the current window.
    pub fn used(&self) -> u64 {
        let mut log = self.log.lock().unwrap();
        log.evict(Instant::now(), self.window);
        log.used
    }
}

/// Concurrency cap plus optional request and token windows for one provider.
#[derive(Debug)]
pub struct Limits {
    pub max_in_flight: usize,
    semaphore: Arc<Semaphore>,
    pub requests: Option<SlidingWindow>,
    pub tokens: Option<SlidingWindow>,
}

/// Why no permit was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitError {
    /// The wait would pass the permit-wait budget.
    WaitExceeded,
}

/// Held for the duration of one attempt; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    pub estimated_tokens: u64,
}

impl Limits {
    pub fn new(max_in_flight: usize, rpm: Option<u32>, tpm: Option<u64>, window: Duration) -> Self {
        Self {
            max_in_flight,
            semaphore: Arc::new(Semaphore::new(max_in_flight)),
            requests: rpm.map(|r| SlidingWindow::new(u64::from(r), window)),
            tokens: tpm.map(|t| SlidingWindow::new(t, window)),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.semaphore.available_permits()
    }

    /// Waits for a rate-limit grant and a concurrency slot, at most until `until`.
    pub async fn acquire(
        &self,
        estimated_tokens: u64,
        until: Instant,
    ) -> Result<Permit, PermitError> {
        // Rate first: a request waiting on its window must not sit on a concurrency slot.
        loop {
            let wait = self.requests.as_ref().and_then(|w| w.try_take(1).err());
            let wait = match (wait, &self.tokens) {
                (None, Some(t)) => match t.try_take(estimated_tokens) {
                    Ok(()) => None,
                    Err(d) => {
                        // Hand the request grant back; we will ask for both again.
                        if let Some(r) = &self.requests {
                            r.adjust(-1);
                        }
                        Some(d)
                    }
                },
                (w, _) => w,
            };
            match wait {
                None => break,
                Some(d) => {
                    let now = Instant::now();
                    if now + d > until {
                        return Err(PermitError::WaitExceeded);
                    }
                    tokio::time::sleep(d).await;
                }
            }
        }
        let slot =
            match tokio::time::timeout_at(until.into(), self.semaphore.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => {
                    // Give the window grants back: this request is not being sent.
                    if let Some(r) = &self.requests {
                        r.adjust(-1);
                    }
                    if let Some(t) = &self.tokens {
                        t.adjust(-(estimated_tokens.min(t.limit()) as i64));
                    }
                    return Err(PermitError::WaitExceeded);
                }
            };
        Ok(Permit {
            _slot: slot,
            estimated_tokens: estimated_tokens
                .min(self.tokens.as_ref().map_or(u64::MAX, |t| t.limit())),
        })
    }

    /// Corrects the token window with the real usage once known.
    pub fn settle(&self, permit: &Permit, actual_tokens: u64) {
        if let Some(t) = &self.tokens {
            t.adjust(actual_tokens as i64 - permit.estimated_tokens as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_limit_in_a_window() {
        let w = SlidingWindow::new(3, Duration::from_millis(100));
        assert!(w.try_take(1).is_ok());
        assert!(w.try_take(1).is_ok());
        assert!(w.try_take(1).is_ok());
        let wait = w.try_take(1).unwrap_err();
        assert!(
            wait <= Duration::from_millis(106) && wait > Duration::from_millis(50),
            "{wait:?}"
        );
        std::thread::sleep(wait);
        assert!(w.try_take(1).is_ok());
    }

    #[test]
    fn adjust_corrects_token_estimates() {
        let w = SlidingWindow::new(1000, Duration::from_secs(60));
        w.try_take(600).unwrap();
        w.adjust(-500);
        assert_eq!(w.used(), 100);
        w.adjust(50);
        assert_eq!(w.used(), 150);
        assert!(w.try_take(850).is_ok());
        assert!(w.try_take(1).is_err());
    }

    #[tokio::test]
    async fn acquire_gives_up_past_its_budget() {
        let l = Limits::new(1, Some(1), None, Duration::from_secs(60));
        let p = l
            .acquire(10, Instant::now() + Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(l.in_flight(), 1);
        let e = l
            .acquire(10, Instant::now() + Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e, PermitError::WaitExceeded);
        drop(p);
        assert_eq!(l.in_flight(), 0);
    }
}
