//! What one batch API's handlers work with: that API's own files and batches, the batch settings
//! and counters both APIs share, and the answers that online calls get too.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::config::{BatchConfig, Limits};
use super::stats::BatchStats;
use crate::answers::Answers;

/// One batch API's view of the stand-in; `S` is that API's state.
pub struct Env<'a, S> {
    state: &'a Mutex<S>,
    pub config: &'a BatchConfig,
    pub limits: &'a Limits,
    pub stats: &'a BatchStats,
    pub answers: &'a Answers,
}

impl<'a, S> Env<'a, S> {
    pub fn new(
        state: &'a Mutex<S>,
        config: &'a BatchConfig,
        limits: &'a Limits,
        stats: &'a BatchStats,
        answers: &'a Answers,
    ) -> Env<'a, S> {
        Env {
            state,
            config,
            limits,
            stats,
            answers,
        }
    }

    /// The API's state, locked (still usable after a panic elsewhere held the lock).
    pub fn lock(&self) -> MutexGuard<'a, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
