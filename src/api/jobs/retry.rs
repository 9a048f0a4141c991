//! `POST /v1/jobs/{id}/retry`: a finished job's errored items sent again.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::follow::{JobId, no_such_job};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::error_docs::JobLookupErrors;
use crate::api::state::AppState;
use crate::api::tenant::Tenant;
use llm_judge_work::jobs::{JobView, Retried};

/// The answer to a retry: the job, queued again, and how many errored items go again.
#[derive(Serialize, ToSchema)]
pub struct JobRetried {
    /// Errored results removed: their items are sent again (with any item the job never
    /// judged, if it was cancelled or failed before it had judged them all).
    pub requeued: u64,
    pub job: JobView,
}

/// Sends a finished (completed, failed or cancelled) job's errored items again, and any items
/// it never judged: their error results are removed, the job is queued and runs again, and its
/// summary and progress are counted anew when it ends. The results that were not errors stay.
/// Sent twice, the second finds the job running and changes nothing (409).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "The job is queued again", body = JobRetried),
        (status = 409, description = "The job has not finished (retry once it has), or cannot run again (an upload that broke off)", body = ErrorBody),
        JobLookupErrors))]
pub async fn retry(
    State(app): State<AppState>,
    tenant: Tenant,
    JobId(id): JobId,
) -> Result<(StatusCode, Json<JobRetried>), ApiError> {
    match app.jobs.retry(&id, tenant.sees()).await? {
        Retried::NotFound => Err(no_such_job(&id)),
        Retried::Refused(_, why) => Err(ApiError::JobNotFinished(why)),
        Retried::Queued { view, requeued } => Ok((
            StatusCode::ACCEPTED,
            Json(JobRetried {
                requeued,
                job: *view,
            }),
        )),
    }
}
