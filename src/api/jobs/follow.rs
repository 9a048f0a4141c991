//! Following jobs: list them, read one's status and progress, cancel it, read its results
//! (resumable) and stream its events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::error_docs::JobLookupErrors;
use crate::api::extract::{PathParam, QueryParams};
use crate::api::state::AppState;
use crate::api::tenant::Tenant;
use llm_judge_work::jobs::{JobView, StoreError};

/// The answer when no job has the id.
pub(super) fn no_such_job(id: &str) -> ApiError {
    ApiError::JobNotFound(format!("no job {id:?} (it may have expired)"))
}

/// A job id from the path, checked for the form of a job's id before any store sees it: any
/// other text names no job (404).
pub struct JobId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let PathParam(id) = PathParam::<String>::from_request_parts(parts, state).await?;
        if !llm_judge_work::jobs::is_job_id(&id) {
            return Err(no_such_job(&id));
        }
        Ok(JobId(id))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
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
    responses((status = 200, body = JobList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    tenant: Tenant,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    let limit = p.limit.unwrap_or(100).min(10_000);
    Ok(Json(JobList {
        jobs: app.jobs.list(limit, tenant.sees()).await?,
    }))
}

/// A job's status and progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), JobLookupErrors))]
pub async fn get(
    State(app): State<AppState>,
    tenant: Tenant,
    JobId(id): JobId,
) -> Result<Json<JobView>, ApiError> {
    app.jobs
        .get(&id, tenant.sees())
        .await?
        .map(Json)
        .ok_or_else(|| no_such_job(&id))
}

/// Cancels a job; its finished results stay readable. The answer is the job: `cancelled` when it
/// had not started, `cancelling` while its calls in flight stop (then `cancelled`). A finished
/// job is left as it is.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), JobLookupErrors))]
pub async fn cancel(
    State(app): State<AppState>,
    tenant: Tenant,
    JobId(id): JobId,
) -> Result<Json<JobView>, ApiError> {
    app.jobs
        .cancel(&id, tenant.sees())
        .await?
        .map(Json)
        .ok_or_else(|| no_such_job(&id))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
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
        JobLookupErrors,
        (status = 422, body = ErrorBody),
    ))]
pub async fn results(
    State(app): State<AppState>,
    tenant: Tenant,
    JobId(id): JobId,
    QueryParams(p): QueryParams<ResultParams>,
) -> Result<Response, ApiError> {
    let by_completion = match p.order.as_deref() {
        None | Some("index") => false,
        Some("completion") => true,
        Some(other) => {
            return Err(ApiError::InvalidField {
                field: "order".into(),
                message: format!("order must be index or completion, not {other:?}"),
            });
        }
    };
    if app.jobs.get(&id, tenant.sees()).await?.is_none() {
        return Err(no_such_job(&id));
    }
    let jobs = app.jobs.clone();
    // Pages of results, read as the client consumes them. A page the store cannot give is
    // asked for again for a while; past that, the body ends without its last chunk, so that the
    // client sees an incomplete answer (never a short list that looks whole).
    let stream = futures::stream::unfold(Some(p.after), move |after| {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            let after = after?;
            let read = || jobs.results(&id, after, by_completion, 1000);
            let page = match patiently(&id, "results", read).await {
                Ok(page) => page,
                Err(e) => {
                    let failed = std::io::Error::other(format!("the job store failed: {e}"));
                    return Some((Err(failed), None));
                }
            };
            if page.is_empty() {
                return None;
            }
            let next = page.last().map(|(k, _)| Some(*k));
            Some((Ok(results_lines(page, by_completion)), next))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// How long a streamed answer asks again for what the store could not give before it ends
/// incomplete.
const STREAM_PATIENCE: Duration = Duration::from_secs(5);

/// Runs a store read, and again (backing off) while it fails, for [`STREAM_PATIENCE`] at most;
/// a stream that gives up is logged as incomplete.
async fn patiently<T, F, Fut>(id: &str, what: &str, mut read: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        match read().await {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() + wait < STREAM_PATIENCE => {
                tracing::debug!(job = id, stream = what, error = %e, "a store read failed; asking again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(job = id, stream = what, error = %e, "the job store did not answer: the stream ends incomplete");
                return Err(e);
            }
        }
    }
}

/// One page of results as NDJSON lines; in completion order each carries its `seq`.
fn results_lines(page: Vec<(u64, Vec<u8>)>, by_completion: bool) -> bytes::Bytes {
    let mut out = Vec::new();
    for (key, bytes) in page {
        if by_completion {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("seq".into(), key.into());
            }
            out.extend(serde_json::to_vec(&v).unwrap_or_default());
        } else {
            out.extend(bytes);
        }
        out.push(b'\n');
    }
    bytes::Bytes::from(out)
}

/// One Server-Sent Event.
#[derive(Serialize, ToSchema)]
pub struct SseEvent {
    /// `progress`, `summary` or `error`.
    pub event: String,
    /// JSON text.
    pub data: String,
}

/// Server-Sent Events: `progress` events while the job runs, then one `summary` event; an `error`
/// event ends the stream when the job store cannot be read for a while (the job goes on).
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "An event stream: `progress` events (data: the progress object) while the job runs, then one `summary` event (data: the job); an `error` event (data: the error body) when the job store cannot be read for a while, the job going on", content_type = "text/event-stream", body = SseEvent),
        JobLookupErrors))]
pub async fn events(
    State(app): State<AppState>,
    tenant: Tenant,
    JobId(id): JobId,
) -> Result<Response, ApiError> {
    if app.jobs.get(&id, tenant.sees()).await?.is_none() {
        return Err(no_such_job(&id));
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
            // A store that cannot answer for a while ends the stream with an `error` event,
            // never as if the job had ended.
            let view = match patiently(&id, "events", || jobs.get(&id, None)).await {
                Ok(Some(view)) => view,
                Ok(None) => return None,
                Err(e) => {
                    let body = serde_json::json!({"error": {"code": "store_unavailable",
                        "message": format!("the job store cannot be read: {e}; read the job again to go on")}});
                    let event = Event::default().event("error").json_data(&body).ok()?;
                    return Some((Ok::<_, Infallible>(event), (true, false)));
                }
            };
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
