//! The Batch object an OpenAI batch is answered as: its status, timestamps, request counts,
//! usage and files, at any moment since its creation.

use std::time::Duration;

use serde_json::{Value, json};

use super::batch::{Batch, Input, InputError, Outcome, Status};
use crate::answers::Answers;
use crate::batch::timeline::Stage;
use crate::cache::CacheUse;

impl Batch {
    /// The Batch object at `t`; `fresh` for the answer to its creation (still `validating`).
    pub fn render(&self, t: Duration, fresh: bool, answers: &Answers) -> Value {
        let status = if fresh {
            Status::Validating
        } else {
            self.status(t)
        };
        let results = if fresh { Vec::new() } else { self.results(t) };
        let at = |d: Duration| Some(self.created.unix(d));
        let tl = &self.timeline;
        // Processing stopped at the cancel or the expiry, if one came first.
        let stop = [Some(t), self.cancel, tl.expire.filter(|e| *e < tl.done)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(t);
        let valid = matches!(self.input, Input::Valid { .. });
        let reached = |d: Duration| (!fresh && valid && stop >= d).then(|| at(d)).flatten();
        let (mut completed_at, mut expired_at, mut cancelled_at) = (None, None, None);
        let mut failed_at = None;
        if let Stage::Ended { at: end, .. } = self.progress(t).stage {
            match status {
                Status::Completed => completed_at = at(end),
                Status::Expired => expired_at = at(end),
                Status::Cancelled => cancelled_at = at(end),
                _ => {}
            }
        }
        if status == Status::Failed {
            failed_at = at(tl.start);
        }
        let counted = |r: Outcome| results.iter().filter(|(_, x)| *x == r).count();
        let succeeded = counted(Outcome::Succeeded);
        let failed = results.len() - succeeded;
        let total = match status {
            Status::Validating | Status::Failed => 0,
            _ => self.len(),
        };
        let cached: u64 = match &self.input {
            Input::Valid { cache, .. } => results
                .iter()
                .filter(|(i, r)| *r == Outcome::Succeeded && cache[*i] == CacheUse::Read)
                .map(|_| answers.cache.tokens())
                .sum(),
            Input::Invalid(_) => 0,
        };
        let (input_tokens, output_tokens) = (
            succeeded as u64 * answers.prompt_tokens,
            succeeded as u64 * answers.completion_tokens,
        );
        let errors = match &self.input {
            Input::Invalid(errors) if status == Status::Failed => json!({
                "object": "list",
                "data": errors.iter().map(InputError::render).collect::<Vec<_>>(),
            }),
            _ => Value::Null,
        };
        let (output_file_id, error_file_id) = self.written.clone().unwrap_or_default();
        let mut batch = json!({
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": status.name(),
            "output_file_id": output_file_id,
            "error_file_id": error_file_id,
            "created_at": self.created.unix(Duration::ZERO),
            "in_progress_at": reached(tl.start),
            "expires_at": self.created.unix(tl.expires()),
            "finalizing_at": reached(tl.processed),
            "completed_at": completed_at,
            "failed_at": failed_at,
            "expired_at": expired_at,
            "cancelling_at": self.cancel.and_then(at),
            "cancelled_at": cancelled_at,
            "request_counts": {"total": total, "completed": succeeded, "failed": failed},
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "metadata": self.metadata,
        });
        if let Some(model) = &self.model {
            batch["model"] = Value::String(model.clone());
        }
        batch
    }
}
