//! Why no judgment could be made: an unknown route, a route none of whose steps answered, or a
//! call kept to be made later.

use llm_judge_pool::{Attempt, RouteFailed};

/// Why no judgment could be made.
#[derive(Debug, Clone)]
pub enum JudgeError {
    UnknownRoute(String),
    /// No step of the route produced an answer.
    Failed {
        code: &'static str,
        message: String,
        attempts: Vec<Attempt>,
        /// Every step failed for a transient reason (see `RouteFailed::outage`): asked again
        /// later, the route may answer.
        outage: bool,
    },
    /// No judgment yet: the call was kept to be made later (an item of a job's provider batch;
    /// see `RouteFailed::parked`). Only a deliverer that parks calls gives this.
    Parked,
}

impl JudgeError {
    pub(crate) fn from_route(route: &str, f: RouteFailed) -> Self {
        if f.parked {
            return JudgeError::Parked;
        }
        JudgeError::Failed {
            code: if f.client_error {
                "provider_rejected_request"
            } else {
                "all_providers_failed"
            },
            message: format!(
                "no provider in route {route:?} produced an answer; last error: {}",
                f.last_error
            ),
            attempts: f.attempts,
            outage: f.outage,
        }
    }
}
