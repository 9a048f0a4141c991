//! The batch endpoint: many items of one kind, results in input order, one summary.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, ErrorDetail, JsonBody};
use crate::AppState;
use crate::batch::{self, BatchItem, Summary};
use crate::judge::JudgeKind;

/// A batch: `items` of one kind, or (binary only) the parallel arrays `questions`, `answers`,
/// `predictions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// `binary` (default), `score` or `compare`.
    #[serde(default = "binary_kind")]
    pub kind: JudgeKind,
    /// The judge (route) for every item that names none.
    pub judge: Option<String>,
    /// Items judged at once (default from the configuration).
    #[schema(minimum = 1)]
    pub max_concurrent: Option<usize>,
    /// Items with the fields of the matching single endpoint. A bad item becomes an error entry.
    #[schema(value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Box<RawValue>>>,
    pub questions: Option<Vec<String>>,
    pub answers: Option<Vec<String>>,
    pub predictions: Option<Vec<String>>,
    /// Streaming (`Accept: application/x-ndjson`): least time between progress lines (default 1000).
    #[schema(minimum = 50)]
    pub progress_interval_ms: Option<u64>,
    /// Jobs only: the same key with the same body returns the same job (another body: 409).
    pub idempotency_key: Option<String>,
}

fn binary_kind() -> JudgeKind {
    JudgeKind::Binary
}

/// One item's result: `status` `ok` with the fields of the single endpoint's answer, or `error`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The item's position in the request.
    pub index: usize,
    /// `ok` or `error`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The batch answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One entry per item, in input order.
    #[schema(value_type = Vec<BatchResult>)]
    pub results: Vec<Box<serde_json::value::RawValue>>,
    pub summary: Summary,
}

/// The concurrency a batch or job asked for (or the configured default), checked against
/// `server.batch_max_concurrent_limit`.
pub fn max_concurrent(
    limits: &crate::config::ServerSettings,
    asked: Option<usize>,
) -> Result<usize, ApiError> {
    let n = asked.unwrap_or(
        limits
            .batch_max_concurrent
            .min(limits.batch_max_concurrent_limit),
    );
    if n == 0 || n > limits.batch_max_concurrent_limit {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!(
                "max_concurrent must be between 1 and {}",
                limits.batch_max_concurrent_limit
            ),
        )
        .field("max_concurrent"));
    }
    Ok(n)
}

/// A checked batch request.
pub struct Checked<T> {
    pub route: String,
    pub kind: JudgeKind,
    pub items: Vec<T>,
    pub max_concurrent: usize,
}

/// Reads and checks a batch request into its items; body-level problems are 4xx, item-level
/// problems become error entries.
pub fn prepare_values(
    app: &AppState,
    req: BatchRequest,
) -> Result<Checked<Box<RawValue>>, ApiError> {
    let limits = &app.settings.server;
    let route = app.judge.resolve_route(req.judge.as_deref())?;
    let max_concurrent = max_concurrent(limits, req.max_concurrent)?;
    let arrays = req.questions.is_some() || req.answers.is_some() || req.predictions.is_some();
    let values: Vec<Box<RawValue>> = match (req.items, arrays) {
        (Some(_), true) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "send either items or the arrays questions/answers/predictions, not both",
            )
            .field("items"));
        }
        (Some(items), false) => items,
        (None, true) => {
            if req.kind != JudgeKind::Binary {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    "the arrays questions/answers/predictions are for kind binary; send items",
                )
                .field("kind"));
            }
            let (Some(q), Some(a), Some(p)) = (req.questions, req.answers, req.predictions) else {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    "questions, answers and predictions must all be given",
                )
                .field("predictions"));
            };
            if q.len() != a.len() || q.len() != p.len() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    format!("questions ({}), answers ({}) and predictions ({}) must have the same length", q.len(), a.len(), p.len()),
                )
                .field("answers"));
            }
            q.into_iter()
                .zip(a)
                .zip(p)
                .map(|((q, a), p)| {
                    let item = serde_json::json!({"question": q, "answer": a, "prediction": p});
                    serde_json::value::to_raw_value(&item).expect("strings serialise")
                })
                .collect()
        }
        (None, false) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "items is required",
            )
            .field("items"));
        }
    };
    if values.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "items must not be empty",
        )
        .field("items"));
    }
    if values.len() > limits.max_batch_items {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_items",
            format!(
                "{} items is over the limit of {} per batch (server.max_batch_items); split the batch",
                values.len(),
                limits.max_batch_items
            ),
        )
        .field("items"));
    }
    Ok(Checked {
        route,
        kind: req.kind,
        items: values,
        max_concurrent,
    })
}

/// [`prepare_values`], then each item parsed and validated (a bad item becomes an error entry).
pub fn prepare(app: &AppState, req: BatchRequest) -> Result<Checked<BatchItem>, ApiError> {
    let checked = prepare_values(app, req)?;
    let kind = checked.kind;
    // Each item is read in its own task, so judging starts without waiting for them all.
    let items = checked
        .items
        .into_iter()
        .map(|json| BatchItem::Unread(kind, json))
        .collect();
    Ok(Checked {
        route: checked.route,
        kind,
        items,
        max_concurrent: checked.max_concurrent,
    })
}

/// Judges many items; a failing item is an `error` entry, never a failed batch.
#[utoipa::path(post, path = "/v1/judge/batch", tag = "judge", request_body = BatchRequest,
    responses(
        (status = 200, description = "Results in input order and a summary; with `Accept: application/x-ndjson`, one JSON line per item as it completes (`{\"index\",\"status\",...}`), progress lines (`{\"progress\":{...}}`) and the summary last (`{\"summary\":{...}}`)",
            content((BatchResponse = "application/json"), (String = "application/x-ndjson"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong client token", body = ErrorBody),
        (status = 403, description = "Sent from a web page whose origin is not in server.allowed_origins", body = ErrorBody),
        (status = 408, description = "The body took longer than server.body_read_timeout_s", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "The body is declared as something other than JSON", body = ErrorBody),
        (status = 422, description = "Invalid batch (too many items, unknown judge, ...)", body = ErrorBody),
        (status = 503, description = "Shutting down: new work is refused", body = ErrorBody),
    ))]
pub async fn batch(
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    let interval = Duration::from_millis(req.progress_interval_ms.unwrap_or(1000).max(50));
    let Checked {
        route,
        kind,
        items,
        max_concurrent,
    } = prepare(&app, req)?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    if wants_stream {
        let lines = batch::stream(
            app.judge.clone(),
            route,
            kind,
            items,
            max_concurrent,
            interval,
            app.stop.clone(),
        );
        let body = Body::from_stream(lines.map(Ok::<_, std::convert::Infallible>));
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    let body = batch::json(
        app.judge.clone(),
        route,
        kind,
        items,
        max_concurrent,
        app.stop.clone(),
    );
    let body = Body::from_stream(body.map(Ok::<_, std::convert::Infallible>));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
