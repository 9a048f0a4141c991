//! The chat counters behind `/stats`, and the guard that counts a call in flight.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::clock::now_us;
use crate::faults::OUTCOMES;

/// Counters behind `/stats`.
#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub in_flight: AtomicI64,
    pub max_in_flight: AtomicI64,
    pub by_outcome: [AtomicU64; 8],
    pub connections: AtomicU64,
    pub open_connections: AtomicI64,
    /// Chat calls answered, and the microseconds they spent from request head to answer.
    pub answered: AtomicU64,
    pub answer_us: AtomicU64,
    /// Pauses between an answer and the next request on the same connection: the client's
    /// own turnaround, the network both ways and this server reading the request.
    pub gaps: AtomicU64,
    pub gap_us: AtomicU64,
    /// When the counters were last zeroed: older answers start no gap.
    pub reset_at_us: AtomicU64,
}

impl Stats {
    pub fn render(&self) -> String {
        let mut by = String::new();
        for (i, o) in OUTCOMES.iter().enumerate() {
            if i > 0 {
                by.push(',');
            }
            by.push_str(&format!(
                "\"{}\":{}",
                o.label(),
                self.by_outcome[i].load(Ordering::Relaxed)
            ));
        }
        let mean_ms = |sum: &AtomicU64, n: &AtomicU64| {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                0.0
            } else {
                sum.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
            }
        };
        format!(
            "{{\"calls\":{},\"max_in_flight\":{},\"in_flight\":{},\"by_outcome\":{{{by}}},\"connections\":{},\"open_connections\":{},\"mean_answer_ms\":{:.3},\"mean_gap_ms\":{:.3},\"gaps\":{}}}",
            self.calls.load(Ordering::Relaxed),
            self.max_in_flight.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.open_connections.load(Ordering::Relaxed),
            mean_ms(&self.answer_us, &self.answered),
            mean_ms(&self.gap_us, &self.gaps),
            self.gaps.load(Ordering::Relaxed),
        )
    }

    pub fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        for c in &self.by_outcome {
            c.store(0, Ordering::Relaxed);
        }
        self.connections.store(0, Ordering::Relaxed);
        for c in [&self.answered, &self.answer_us, &self.gaps, &self.gap_us] {
            c.store(0, Ordering::Relaxed);
        }
        self.reset_at_us.store(now_us(), Ordering::Relaxed);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Counts a call in flight for as long as it lives (also when the client goes away).
pub struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    pub fn new(stats: &'a Stats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
