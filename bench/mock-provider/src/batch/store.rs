//! Everything the batch endpoints keep, and the view of it that each API's handlers get.

use std::sync::Mutex;

use super::config::{BatchConfig, Limits};
use super::env::Env;
use super::stats::BatchStats;
use super::{anthropic, openai};
use crate::answers::Answers;

/// Everything the batch endpoints keep.
pub struct Store {
    pub config: BatchConfig,
    limits: Limits,
    openai: Mutex<openai::State>,
    anthropic: Mutex<anthropic::State>,
    pub stats: BatchStats,
}

impl Store {
    pub fn new(config: BatchConfig, limits: Limits) -> Store {
        Store {
            config,
            limits,
            openai: Default::default(),
            anthropic: Default::default(),
            stats: BatchStats::default(),
        }
    }

    /// What OpenAI's Files and Batch API works with.
    pub fn openai<'a>(&'a self, answers: &'a Answers) -> Env<'a, openai::State> {
        self.env(&self.openai, answers)
    }

    /// What Anthropic's Message Batches work with.
    pub fn anthropic<'a>(&'a self, answers: &'a Answers) -> Env<'a, anthropic::State> {
        self.env(&self.anthropic, answers)
    }

    fn env<'a, S>(&'a self, state: &'a Mutex<S>, answers: &'a Answers) -> Env<'a, S> {
        Env::new(state, &self.config, &self.limits, &self.stats, answers)
    }
}
