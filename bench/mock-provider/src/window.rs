//! The `--limit-requests` rate limit: a provider's request limit over a sliding window, and what
//! the window saw.

use crate::clock::now_us;

/// A provider's request limit over a sliding window, and what the window saw.
pub struct WindowLimit {
    limit: u64,
    window_us: u64,
    state: std::sync::Mutex<WindowState>,
}

#[derive(Default)]
struct WindowState {
    /// Arrival times (µs) of the calls in the current window, refused ones included.
    arrivals: std::collections::VecDeque<u64>,
    /// The most calls that arrived in any one window since the last reset.
    busiest: u64,
    /// Calls refused for being over the limit.
    over: u64,
    first_us: u64,
    last_us: u64,
}

impl WindowLimit {
    /// At most `limit` calls in any window of `window_us` microseconds.
    pub fn new(limit: u64, window_us: u64) -> WindowLimit {
        WindowLimit {
            limit,
            window_us,
            state: Default::default(),
        }
    }

    /// Notes a call arriving now; true when it is over the limit.
    pub fn arrive(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        // Read under the lock: arrivals are in order.
        let now_us = now_us();
        while s
            .arrivals
            .front()
            .is_some_and(|t| now_us.saturating_sub(*t) >= self.window_us)
        {
            s.arrivals.pop_front();
        }
        s.arrivals.push_back(now_us);
        s.busiest = s.busiest.max(s.arrivals.len() as u64);
        if s.first_us == 0 {
            s.first_us = now_us.max(1);
        }
        s.last_us = now_us;
        let over = s.arrivals.len() as u64 > self.limit;
        if over {
            s.over += 1;
        }
        over
    }

    pub fn render(&self) -> String {
        let s = self.state.lock().unwrap();
        format!(
            "{{\"limit\":{},\"window_ms\":{},\"busiest\":{},\"over_limit\":{},\"first_call_ms\":{:.3},\"last_call_ms\":{:.3}}}",
            self.limit,
            self.window_us / 1000,
            s.busiest,
            s.over,
            s.first_us as f64 / 1000.0,
            s.last_us as f64 / 1000.0
        )
    }

    pub fn reset(&self) {
        *self.state.lock().unwrap() = WindowState::default();
    }
}
