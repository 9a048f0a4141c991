//! An OpenAI batch as the stand-in keeps it, and where it is at any moment: its status and the
//! results known of its requests.

use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::batch::plan::{Fate, Plan};
use crate::batch::timeline::{Created, Ending, Progress, Stage, Timeline};
use crate::cache::CacheUse;

/// The endpoints OpenAI runs batches for; the stand-in runs the first.
pub const ENDPOINTS: [&str; 8] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
];

/// One request of a batch's input file.
#[derive(Debug)]
pub struct Line {
    pub custom_id: String,
    pub body: Box<RawValue>,
    /// The online API's 400 for this body, when it would refuse it.
    pub refusal: Option<Value>,
}

/// A validation error of an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    pub line: Option<usize>,
}

impl InputError {
    pub fn render(&self) -> Value {
        json!({"code": self.code, "message": self.message, "param": self.param, "line": self.line})
    }
}

/// A batch's requests, or why its input file was refused.
pub enum Input {
    Valid {
        lines: Vec<Line>,
        plan: Plan,
        /// By input position: what the prompt cache does for each request that succeeds.
        cache: Vec<CacheUse>,
    },
    Invalid(Vec<InputError>),
}

pub struct Batch {
    pub id: String,
    pub input_file_id: String,
    pub metadata: Value,
    pub model: Option<String>,
    pub created: Created,
    pub timeline: Timeline,
    pub cancel: Option<Duration>,
    pub input: Input,
    /// The output and error file ids, once the batch is over and they are written.
    pub written: Option<(Option<String>, Option<String>)>,
}

/// Where an OpenAI batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed => "failed",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn over(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Completed | Status::Expired | Status::Cancelled
        )
    }
}

/// What happened to one request, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Answered with an error status (in the error file with a response).
    Failed,
    /// Not run before the batch expired (in the error file with `batch_expired`).
    Expired,
}

impl Batch {
    pub fn len(&self) -> usize {
        match &self.input {
            Input::Valid { lines, .. } => lines.len(),
            Input::Invalid(_) => 0,
        }
    }

    pub fn progress(&self, t: Duration) -> Progress {
        self.timeline.progress(self.len(), t, self.cancel)
    }

    /// The batch's status at `t`.
    pub fn status(&self, t: Duration) -> Status {
        let p = self.progress(t);
        if matches!(self.input, Input::Invalid(_))
            && t >= self.timeline.start
            && self.cancel.is_none_or(|c| c >= self.timeline.start)
        {
            return Status::Failed;
        }
        match p.stage {
            Stage::Waiting => Status::Validating,
            Stage::Processing => Status::InProgress,
            Stage::Finishing => Status::Finalizing,
            Stage::Cancelling { .. } => Status::Cancelling,
            Stage::Ended {
                how: Ending::Cancelled { .. },
                ..
            } => Status::Cancelled,
            Stage::Ended {
                how: Ending::Expired,
                ..
            } => Status::Expired,
            Stage::Ended {
                how: Ending::Completed,
                ..
            } if self.has_expired_requests() => Status::Expired,
            Stage::Ended { .. } => Status::Completed,
        }
    }

    /// True when a request is drawn to expire (its body not refused first).
    fn has_expired_requests(&self) -> bool {
        match &self.input {
            Input::Valid { lines, plan, .. } => plan
                .fates
                .iter()
                .zip(lines)
                .any(|(f, l)| *f == Fate::Expire && l.refusal.is_none()),
            Input::Invalid(_) => false,
        }
    }

    /// The result of each request known at `t`, in processing order (input positions).
    pub fn results(&self, t: Duration) -> Vec<(usize, Outcome)> {
        let Input::Valid { lines, plan, .. } = &self.input else {
            return Vec::new();
        };
        let p = self.progress(t);
        let cancelled = matches!(
            p.stage,
            Stage::Cancelling { .. }
                | Stage::Ended {
                    how: Ending::Cancelled { .. },
                    ..
                }
        );
        let ended = p.ended();
        let mut out = Vec::with_capacity(p.processed);
        for &i in &plan.processing[..p.processed] {
            let r = if lines[i].refusal.is_some() {
                Some(Outcome::Failed)
            } else {
                match plan.fates[i] {
                    Fate::Succeed => Some(Outcome::Succeeded),
                    Fate::Fail => Some(Outcome::Failed),
                    // A request that was to expire is reported when its batch is over.
                    Fate::Expire => (ended && !cancelled).then_some(Outcome::Expired),
                }
            };
            if let Some(r) = r {
                out.push((i, r));
            }
        }
        if let Stage::Ended {
            how: Ending::Expired,
            ..
        } = p.stage
        {
            out.extend(
                plan.processing[p.processed..]
                    .iter()
                    .map(|&i| (i, Outcome::Expired)),
            );
        }
        out
    }
}
