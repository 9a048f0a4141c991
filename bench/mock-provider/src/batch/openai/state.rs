//! What the stand-in keeps of OpenAI's Files and Batch API: its files and batches, and the view
//! of the stand-in its handlers work with.

use std::collections::HashMap;

use super::batch::Batch;
use super::file::Files;

/// Files and batches.
#[derive(Default)]
pub struct State {
    pub files: Files,
    /// Batches in creation order.
    pub batches: Vec<Batch>,
    pub by_id: HashMap<String, usize>,
}

/// What the handlers work with: the state above, the batch settings and counters, the answers.
pub type Env<'a> = crate::batch::env::Env<'a, State>;
