//! Job endpoints: submit a batch as a persistent job, follow its progress, read its results
//! (resumable), stream its events, cancel it, list jobs.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::batch::{BatchRequest, prepare_values};
use super::error::{ApiError, ErrorBody, JsonBody};
use crate::AppState;
use crate::jobs::{JobStatus, JobView, StoreError};

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "job store failure");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the job store failed; retry later",
        )
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "job_not_found",
        format!("no job {id:?} (it may have expired)"),
    )
    .field("id")
}

/// The answer to a job submission.
#[derive(Serialize, ToSchema)]
pub struct JobAccepted {
    pub id: String,
    pub status: JobStatus,
    /// False when the idempotency key returned an earlier job.
    pub created: bool,
}

/// Submits a batch as a persistent job: its items are stored before the answer, then judged in
/// the background; results survive restarts.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = BatchRequest,
    responses(
        (status = 202, description = "Accepted; the same idempotency key returns the same job", body = JobAccepted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong client token", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 422, description = "Invalid batch", body = ErrorBody),
        (status = 503, description = "Shutting down, or the job store failed", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    let key = req.idempotency_key.clone().filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > 256) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "idempotency_key is longer than 256 characters",
        )
        .field("idempotency_key"));
    }
    let (route, kind, values, max_concurrent) = prepare_values(&app, req)?;
    let (view, created) = app
        .jobs
        .submit(kind, route, max_concurrent, values, key)
        .await?;
    let body = JobAccepted {
        id: view.id.clone(),
        status: view.status,
        created,
    };
    // An idempotent repeat answers 202 too, so clients need not care which they got.
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = format!("/v1/jobs/{}", view.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[derive(Deserialize, IntoParams)]
pub struct ListParams {
    /// Most jobs to list (default 100).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = JobList), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    Ok(Json(JobList {
        jobs: app.jobs.list(p.limit.unwrap_or(100).min(10_000)).await?,
    }))
}

/// A job's status and progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    app.jobs
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// Cancels a job; its finished results stay readable. A finished job is left as it is.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn cancel(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    app.jobs
        .cancel(&id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

#[derive(Deserialize, IntoParams)]
pub struct ResultParams {
    /// Only results after this index (`order=index`) or this sequence number (`order=completion`).
    pub after: Option<u64>,
    /// `index` (default) or `completion`; in completion order each line carries `seq`.
    pub order: Option<String>,
}

/// The finished results as NDJSON, in index order (or completion order), resumable with `after`.
#[utoipa::path(get, path = "/v1/jobs/{id}/results", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), ResultParams),
    responses(
        (status = 200, description = "One JSON line per finished item", content_type = "application/x-ndjson", body = String),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn results(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<ResultParams>,
) -> Result<Response, ApiError> {
    let by_completion = match p.order.as_deref() {
        None | Some("index") => false,
        Some("completion") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("order must be index or completion, not {other:?}"),
            )
            .field("order"));
        }
    };
    if app.jobs.get(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    let jobs = app.jobs.clone();
    // Pages of results, read as the client consumes them.
    let stream = futures::stream::unfold(Some(p.after), move |after| {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            let after = after?;
            let page = jobs.results(&id, after, by_completion, 1000).await.ok()?;
            if page.is_empty() {
                return None;
            }
            let next = page.last().map(|(k, _)| Some(*k));
            let mut out = Vec::new();
            for (key, bytes) in page {
                if by_completion {
                    // prepend the sequence number
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&bytes).unwrap_or_default();
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("seq".into(), key.into());
                    }
                    out.extend(serde_json::to_vec(&v).unwrap_or_default());
                } else {
                    out.extend(bytes);
                }
                out.push(b'\n');
            }
            Some((Ok::<_, Infallible>(bytes::Bytes::from(out)), next))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Server-Sent Events: `progress` events while the job runs, then one `summary` event.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if app.jobs.get(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    let jobs = app.jobs.clone();
    let stream = futures::stream::unfold((false, true), move |(done, first)| {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            if done {
                return None;
            }
            if !first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let view = jobs.get(&id).await.ok().flatten()?;
            let finished = view.status.is_finished();
            let event = if finished {
                Event::default().event("summary").json_data(&view).ok()?
            } else {
                Event::default()
                    .event("progress")
                    .json_data(&view.progress)
                    .ok()?
            };
            Some((Ok::<_, Infallible>(event), (finished, false)))
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
