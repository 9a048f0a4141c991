//! What the batch endpoints count, per API, for `/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the batch endpoints count, per API, for `/stats`.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    FilesUploaded,
    BatchesCreated,
    Polls,
    Lists,
    Cancels,
    ResultsFetched,
    Refused,
}

const OPS: [(Op, &str); 7] = [
    (Op::FilesUploaded, "files_uploaded"),
    (Op::BatchesCreated, "batches_created"),
    (Op::Polls, "polls"),
    (Op::Lists, "lists"),
    (Op::Cancels, "cancels"),
    (Op::ResultsFetched, "results_fetched"),
    (Op::Refused, "refused"),
];

/// Counters of batch operations, per API.
#[derive(Default)]
pub struct BatchStats {
    openai: [AtomicU64; OPS.len()],
    anthropic: [AtomicU64; OPS.len()],
}

/// Which API a counter belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    OpenAi,
    Anthropic,
}

impl BatchStats {
    pub fn count(&self, side: Side, op: Op) {
        let counters = match side {
            Side::OpenAi => &self.openai,
            Side::Anthropic => &self.anthropic,
        };
        counters[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `{"openai":{...},"anthropic":{...}}`.
    pub fn render(&self) -> String {
        let side = |counters: &[AtomicU64; OPS.len()], skip_files: bool| {
            let fields: Vec<String> = OPS
                .iter()
                .filter(|(op, _)| !(skip_files && matches!(op, Op::FilesUploaded)))
                .map(|(op, name)| {
                    format!(
                        "\"{name}\":{}",
                        counters[*op as usize].load(Ordering::Relaxed)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        format!(
            "{{\"openai\":{},\"anthropic\":{}}}",
            side(&self.openai, false),
            side(&self.anthropic, true)
        )
    }

    pub fn reset(&self) {
        for c in self.openai.iter().chain(&self.anthropic) {
            c.store(0, Ordering::Relaxed);
        }
    }
}
