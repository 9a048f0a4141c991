//! Why no judgment could be made: an unknown route, or a route none of whose steps answered.

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
}

impl JudgeError {
    pub(crate) fn from_route(route: &str, f: RouteFailed) -> Self {
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
