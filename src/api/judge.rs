//! The single-item judge endpoints: binary, score and compare.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::budget;
use super::error::{ApiError, ErrorBody};
use super::error_docs::NewWorkErrors;
use super::extract::JsonBody;
use super::state::AppState;
use llm_judge_judge::{
    BinaryItem, CompareItem, CompareJudgment, FieldError, JudgeError, Judgment, ScoreItem,
    ScoreJudgment,
};
use llm_judge_pool::Via;
use llm_judge_pool::cost::Estimate;
use llm_judge_work::budget::daily::ClientId;

/// What the three endpoints share of an item.
trait Item {
    fn validate(&self) -> Result<(), FieldError>;
    fn judge(&self) -> Option<&str>;
}

macro_rules! item {
    ($t:ty) => {
        impl Item for $t {
            fn validate(&self) -> Result<(), FieldError> {
                <$t>::validate(self)
            }
            fn judge(&self) -> Option<&str> {
                self.judge.as_deref()
            }
        }
    };
}
item!(BinaryItem);
item!(ScoreItem);
item!(CompareItem);

/// Checks an item, picks its route and, under a client token's daily budget, takes the item's
/// estimate from it (429 when it does not fit).
// Refusals are whole responses (a 429 carries Retry-After); they are made once per request.
#[allow(clippy::result_large_err)]
fn begin(
    app: &AppState,
    client: Option<Extension<ClientId>>,
    item: &impl Item,
    estimate: impl FnOnce(&str) -> Estimate,
) -> Result<(String, Option<budget::Held>), Response> {
    item.validate()
        .map_err(|e| ApiError::invalid(e).into_response())?;
    let route = app
        .judge
        .resolve_route(item.judge())
        .map_err(|e| ApiError::from(e).into_response())?;
    let held = match (&app.daily_budgets, client) {
        (Some(daily), Some(Extension(c))) => Some(budget::hold(
            Some(daily),
            Some(c),
            app.judge.pool(),
            &route,
            estimate(&route),
        )?),
        _ => None,
    };
    Ok((route, held))
}

/// Counts what the judgment cost against the daily budget, and answers.
#[allow(clippy::result_large_err)]
fn finish<T>(
    held: Option<budget::Held>,
    result: Result<T, JudgeError>,
    judgment: impl FnOnce(&T) -> &Judgment,
) -> Result<Json<T>, Response> {
    if let Some(h) = held {
        match &result {
            Ok(t) => {
                let j = judgment(t);
                h.settle(j.cost_usd, j.usage.total());
            }
            Err(_) => h.settle(Some(0.0), 0),
        }
    }
    result
        .map(Json)
        .map_err(|e| ApiError::from(e).into_response())
}

/// Judges whether a prediction is correct, given the question and the reference answer.
#[utoipa::path(post, path = "/v1/judge/binary", tag = "judge", request_body = BinaryItem,
    responses(
        (status = 200, description = "The verdict", body = Judgment),
        NewWorkErrors,
        (status = 422, description = "A field is missing, empty or of the wrong type; unknown judge or placeholder; a daily budget in dollars and a model without a price", body = ErrorBody),
        (status = 502, description = "No provider in the route produced an answer; every attempt is listed", body = ErrorBody),
    ))]
pub async fn binary(
    State(app): State<AppState>,
    client: Option<Extension<ClientId>>,
    JsonBody(item): JsonBody<BinaryItem>,
) -> Result<Json<Judgment>, Response> {
    let (route, held) = begin(&app, client, &item, |r| app.judge.estimate_binary(r, &item))?;
    finish(
        held,
        app.judge.binary(&route, &item, &Via::Online).await,
        |j| j,
    )
}

/// Grades a response on a scale (default 1 to 10), with an optional rubric.
#[utoipa::path(post, path = "/v1/judge/score", tag = "judge", request_body = ScoreItem,
    responses(
        (status = 200, description = "The score", body = ScoreJudgment),
        NewWorkErrors,
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 502, description = "No provider in the route produced an answer", body = ErrorBody),
    ))]
pub async fn score(
    State(app): State<AppState>,
    client: Option<Extension<ClientId>>,
    JsonBody(item): JsonBody<ScoreItem>,
) -> Result<Json<ScoreJudgment>, Response> {
    let (route, held) = begin(&app, client, &item, |r| app.judge.estimate_score(r, &item))?;
    finish(
        held,
        app.judge.score(&route, &item, &Via::Online).await,
        |j| &j.judgment,
    )
}

/// Decides which of two responses is better (with `swap`, asks in both orders).
#[utoipa::path(post, path = "/v1/judge/compare", tag = "judge", request_body = CompareItem,
    responses(
        (status = 200, description = "The winner", body = CompareJudgment),
        NewWorkErrors,
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 502, description = "No provider in the route produced an answer", body = ErrorBody),
    ))]
pub async fn compare(
    State(app): State<AppState>,
    client: Option<Extension<ClientId>>,
    JsonBody(item): JsonBody<CompareItem>,
) -> Result<Json<CompareJudgment>, Response> {
    let (route, held) = begin(&app, client, &item, |r| {
        app.judge.estimate_compare(r, &item)
    })?;
    finish(
        held,
        app.judge.compare(&route, &item, &Via::Online).await,
        |j| &j.judgment,
    )
}
