//! The single-item judge endpoints: binary, score and compare.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ErrorBody, JsonBody};
use crate::AppState;
use crate::judge::{BinaryItem, CompareItem, CompareJudgment, Judgment, ScoreItem, ScoreJudgment};

/// Judges whether a prediction is correct, given the question and the reference answer.
#[utoipa::path(post, path = "/v1/judge/binary", tag = "judge", request_body = BinaryItem,
    responses(
        (status = 200, description = "The verdict", body = Judgment),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong client token", body = ErrorBody),
        (status = 403, description = "Sent from a web page whose origin is not in server.allowed_origins", body = ErrorBody),
        (status = 408, description = "The body took longer than server.body_read_timeout_s", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "The body is declared as something other than JSON", body = ErrorBody),
        (status = 422, description = "A field is missing, empty or of the wrong type; unknown judge or placeholder", body = ErrorBody),
        (status = 503, description = "Shutting down: new work is refused", body = ErrorBody),
        (status = 502, description = "No provider in the route produced an answer; every attempt is listed", body = ErrorBody),
    ))]
pub async fn binary(
    State(app): State<AppState>,
    JsonBody(item): JsonBody<BinaryItem>,
) -> Result<Json<Judgment>, ApiError> {
    item.validate().map_err(ApiError::invalid)?;
    let route = app.judge.resolve_route(item.judge.as_deref())?;
    Ok(Json(app.judge.binary(&route, &item).await?))
}

/// Grades a response on a scale (default 1 to 10), with an optional rubric.
#[utoipa::path(post, path = "/v1/judge/score", tag = "judge", request_body = ScoreItem,
    responses(
        (status = 200, description = "The score", body = ScoreJudgment),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong client token", body = ErrorBody),
        (status = 403, description = "Sent from a web page whose origin is not in server.allowed_origins", body = ErrorBody),
        (status = 408, description = "The body took longer than server.body_read_timeout_s", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "The body is declared as something other than JSON", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "Shutting down: new work is refused", body = ErrorBody),
        (status = 502, description = "No provider in the route produced an answer", body = ErrorBody),
    ))]
pub async fn score(
    State(app): State<AppState>,
    JsonBody(item): JsonBody<ScoreItem>,
) -> Result<Json<ScoreJudgment>, ApiError> {
    item.validate().map_err(ApiError::invalid)?;
    let route = app.judge.resolve_route(item.judge.as_deref())?;
    Ok(Json(app.judge.score(&route, &item).await?))
}

/// Decides which of two responses is better (with `swap`, asks in both orders).
#[utoipa::path(post, path = "/v1/judge/compare", tag = "judge", request_body = CompareItem,
    responses(
        (status = 200, description = "The winner", body = CompareJudgment),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong client token", body = ErrorBody),
        (status = 403, description = "Sent from a web page whose origin is not in server.allowed_origins", body = ErrorBody),
        (status = 408, description = "The body took longer than server.body_read_timeout_s", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "The body is declared as something other than JSON", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "Shutting down: new work is refused", body = ErrorBody),
        (status = 502, description = "No provider in the route produced an answer", body = ErrorBody),
    ))]
pub async fn compare(
    State(app): State<AppState>,
    JsonBody(item): JsonBody<CompareItem>,
) -> Result<Json<CompareJudgment>, ApiError> {
    item.validate().map_err(ApiError::invalid)?;
    let route = app.judge.resolve_route(item.judge.as_deref())?;
    Ok(Json(app.judge.compare(&route, &item).await?))
}
