//! `POST /v1/jobs`: a batch submitted as a persistent job, from a JSON body here or from an
//! NDJSON upload ([`super::upload`]).

use axum::extract::{Request, State};
use axum::response::Response;

use super::accept::{
    JobAccepted, UploadParams, accepted, check_key, digest, job_options, key_conflict, max_wait,
};
use super::upload::upload;
use crate::api::batch::{BatchRequest, Checked, named_judge, prepare_values};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::error_docs::{DailyBudgetError, UnauthorizedError};
use crate::api::extract::{QueryParams, parse_json, read_body};
use crate::api::state::AppState;
use crate::api::tenant::Caller;

/// Submits a batch as a persistent job: its items are stored before the answer, then judged in
/// the background; results survive restarts. The body is the batch JSON, or (for very large
/// jobs, streamed to disk as it arrives) NDJSON with one item per line and `Content-Type:
/// application/x-ndjson`, the batch fields then going in the query string.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(UploadParams),
    request_body(content((BatchRequest = "application/json"), (String = "application/x-ndjson"))),
    responses(
        (status = 202, description = "Accepted; the same idempotency key with the same request returns the same job", body = JobAccepted),
        (status = 400, description = "Malformed JSON or an unreadable upload", body = ErrorBody),
        UnauthorizedError,
        (status = 409, description = "The idempotency key was used for a different request, or its upload is still arriving", body = ErrorBody),
        (status = 413, description = "Body over the limit, or too many items", body = ErrorBody),
        (status = 422, description = "Invalid batch; a budget in dollars (the job's, or its client token's day) and a model without a price", body = ErrorBody),
        DailyBudgetError,
        (status = 503, description = "Shutting down, or the job store failed", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<UploadParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = Caller::of(req.extensions());
    if crate::api::extract::is_job_upload(&req) {
        return upload(app, &caller, q, req).await;
    }
    let bytes = read_body(req).await?;
    let body: BatchRequest = parse_json(&bytes)?;
    let key = check_key(body.idempotency_key.clone())?;
    let budget = body.limits()?;
    let (provider_batch, deadline_s) = (body.provider_batch, body.provider_batch_deadline_s);
    let max_wait_s = max_wait(body.max_wait_s)?;
    let Checked {
        route,
        kind,
        items: values,
        max_concurrent,
    } = prepare_values(&app, body)?;
    let judges = values.iter().filter_map(|v| named_judge(v.get())).collect();
    let mut options = job_options(
        &app,
        &caller,
        &route,
        judges,
        provider_batch,
        deadline_s,
        budget,
    )?;
    options.max_wait_s = max_wait_s;
    // A key comes back with the digest of its request, to tell a retry from a different job.
    let key = key.map(|k| (k, digest(&bytes)));
    let (view, created) = app
        .jobs
        .submit(kind, route, max_concurrent, values, key, &options)
        .await?
        .map_err(key_conflict)?;
    Ok(accepted(&view, created))
}
