//! Warnings said once per period however often their cause recurs, with how many were held
//! back meanwhile: a store failing every call writes a line a minute, not a line a call.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of warning, rate-limited.
pub struct Warnings {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the last one was said.
    said: Option<Instant>,
    /// Held back since.
    held: u64,
}

impl Warnings {
    /// At most one warning per `every`.
    pub fn every(every: Duration) -> Warnings {
        Warnings {
            every,
            state: Mutex::new(State::default()),
        }
    }

    /// Calls `say` with how many were held back before this one, unless one was said less than
    /// a period ago (then this one is counted, and held back). Answers whether it was said.
    pub fn warn(&self, say: impl FnOnce(u64)) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.said.is_some_and(|t| t.elapsed() < self.every) {
            s.held += 1;
            return false;
        }
        let held = std::mem::take(&mut s.held);
        s.said = Some(Instant::now());
        drop(s);
        say(held);
        true
    }

    /// The cause is gone: the next warning is said at once.
    pub fn reset(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::default();
    }
}
