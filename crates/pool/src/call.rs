//! The call that travels a provider's stack: one route step's request, its deadline and token
//! estimate, and the trail the layers record its attempts in.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::time::Instant;

use crate::outcome::Attempt;
use llm_judge_chat::ChatRequest;

/// One route step's request inside a provider's stack: the chat request (its model set for the
/// step) and what the layers share about it. Cloning is cheap: every field is shared.
#[derive(Clone)]
pub struct Call {
    pub chat: Arc<ChatRequest>,
    /// When the step must be over, retries included.
    pub deadline: Instant,
    /// Tokens reserved from a tokens-per-minute limit before the call (settled after it).
    pub estimate: u64,
    /// Every attempt of the step, and why its retries ended.
    pub trail: Arc<Trail>,
    /// When the current attempt was admitted by the limits; set anew for each attempt.
    pub admitted: Arc<OnceLock<Instant>>,
}

impl Call {
    pub fn new(chat: Arc<ChatRequest>, deadline: Instant) -> Call {
        Call {
            estimate: chat.estimated_tokens(),
            chat,
            deadline,
            trail: Arc::default(),
            admitted: Arc::default(),
        }
    }
}

/// What the layers record of one route step.
#[derive(Default)]
pub struct Trail {
    attempts: Mutex<Vec<Attempt>>,
    /// Why the retry policy stopped retrying a retryable failure (`attempts`, `budget`,
    /// `deadline`, `retry_after_too_long`).
    stopped: Mutex<Option<&'static str>>,
}

impl Trail {
    pub fn push(&self, a: Attempt) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(a);
    }

    pub fn stop(&self, why: &'static str) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    pub fn stopped(&self) -> Option<&'static str> {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take(&self) -> Vec<Attempt> {
        std::mem::take(&mut *self.attempts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
