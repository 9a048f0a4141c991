//! The calibration endpoints: judges measured against labelled items, and the runs kept.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::error_docs::{NewWorkErrors, UnauthorizedError};
use super::extract::{JsonBody, QueryParams};
use super::state::AppState;
use super::tenant::Tenant;
use llm_judge_judge::{JudgeError, JudgeKind};
use llm_judge_work::budget::daily::ClientId;
use llm_judge_work::calibrate::store::{OWNER, RunQuery};
use llm_judge_work::calibrate::{self, MAX_JUDGES, Plan, Report};

/// Labelled items and the judges to measure on them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrateRequest {
    /// `binary` (default), `score` or `compare`.
    #[serde(default = "binary_kind")]
    pub kind: JudgeKind,
    /// Routes or panels to measure (1 to 16), each judging every item.
    #[schema(min_items = 1, max_items = 16, example = json!(["default"]))]
    pub judges: Vec<String>,
    /// Items with the fields of the kind's single endpoint plus `label` (binary: `correct` or
    /// `incorrect`; score: a number on the item's scale; compare: `a`, `b` or `tie`), and
    /// optionally `id` (echoed in per-item results) and `group` (the figures are also given per
    /// group). An item that fails validation is listed in `invalid_items` and left out.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub items: Vec<Value>,
    /// Judge calls at once (default from the configuration).
    #[schema(minimum = 1)]
    pub max_concurrent: Option<usize>,
    /// A name for the run (a gold set's version, a prompt variant).
    pub name: Option<String>,
    /// Keep the run for `GET /v1/calibrate/runs` (default true).
    #[serde(default = "yes")]
    pub store: bool,
    /// Return every item's label and verdicts in `results` (default false).
    #[serde(default)]
    pub include_items: bool,
}

fn binary_kind() -> JudgeKind {
    JudgeKind::Binary
}

fn yes() -> bool {
    true
}

/// Longest run name.
const MAX_NAME: usize = 200;

/// Measures each judge against labelled items: accuracy, Cohen's kappa, base rates and the
/// confusion matrix (binary, pairwise), Spearman, Pearson and MAE (scores), the unscored rate,
/// and for pairwise the flip rate and first-position preference. The run is kept unless
/// `store` is false.
#[utoipa::path(post, path = "/v1/calibrate", tag = "judge", request_body = CalibrateRequest,
    responses(
        (status = 200, description = "Each judge's figures", body = Report),
        NewWorkErrors,
        (status = 422, description = "No judges or items, an unknown judge, too many items, or no valid item; a daily budget in dollars and a model without a price", body = ErrorBody),
    ))]
pub async fn calibrate(
    State(app): State<AppState>,
    client: Option<Extension<ClientId>>,
    tenant: Tenant,
    JsonBody(req): JsonBody<CalibrateRequest>,
) -> Result<Json<Report>, ApiError> {
    let store = req.store;
    let mut plan = plan(&app, req)?;
    // Under the client token's daily budget: the run stops where the day runs out.
    if let (Some(daily), Some(Extension(c))) = (&app.daily_budgets, client) {
        let (first, rest) = plan.judges.split_first().expect("at least one judge");
        super::batch::refuse_unpriced_budget(
            &app,
            llm_judge_work::batch::Limits::default(),
            Some(&**daily),
            first,
            rest.iter().cloned().collect(),
        )?;
        plan.budget = Some(llm_judge_work::batch::Budget::under(
            llm_judge_work::batch::Limits::default(),
            "the calibration run's budget",
            daily.today(c),
        ));
    }
    let mut report = calibrate::run(app.judge.clone(), plan).await;
    if store {
        let mut kept = calibrate::stored_form(&report);
        if let (Some(owner), Some(fields)) = (tenant.owner(), kept.as_object_mut()) {
            fields.insert(OWNER.into(), owner.into());
        }
        // A run that was asked to be kept and could not be is not answered as a success: its
        // judgments are in the verdict cache, so sending it again costs little.
        save_run(&app, kept).await.map_err(|e| {
            ApiError::StoreUnavailable(format!(
                "the calibration run could not be kept ({e}); its judgments are cached: send it \
                 again, or with \"store\": false"
            ))
        })?;
        report.stored = true;
    }
    Ok(Json(report))
}

/// Keeps a run, asking the store again for a few seconds while it fails (it reopens itself after
/// an I/O error).
async fn save_run(app: &AppState, kept: serde_json::Value) -> Result<(), String> {
    let started = std::time::Instant::now();
    loop {
        let (runs, run) = (app.runs.clone(), kept.clone());
        let saved = tokio::task::spawn_blocking(move || runs.save(&run))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match saved {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() < std::time::Duration::from_secs(3) => {
                tracing::debug!(error = %e, "a calibration run was not kept; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a calibration run could not be kept");
                return Err(e);
            }
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Checks the request and reads its items.
fn plan(app: &AppState, req: CalibrateRequest) -> Result<Plan, ApiError> {
    if req.judges.is_empty() || req.judges.len() > MAX_JUDGES {
        return Err(invalid(
            "judges",
            format!("judges must name 1 to {MAX_JUDGES} routes or panels"),
        ));
    }
    let mut judges = Vec::with_capacity(req.judges.len());
    for (i, name) in req.judges.iter().enumerate() {
        let route = app.judge.resolve_route(Some(name)).map_err(|e| match e {
            JudgeError::UnknownRoute(name) => {
                ApiError::unknown_judge(&name, format!("judges[{i}]"))
            }
            failed => ApiError::from(failed),
        })?;
        if judges.contains(&route) {
            return Err(invalid(
                &format!("judges[{i}]"),
                format!("{name:?} is named twice"),
            ));
        }
        judges.push(route);
    }
    if req
        .name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME)
    {
        return Err(invalid(
            "name",
            format!("name is longer than {MAX_NAME} characters"),
        ));
    }
    let limits = &app.settings.server;
    if req.items.is_empty() {
        return Err(invalid("items", "items must not be empty"));
    }
    if req.items.len() > limits.max_batch_items {
        return Err(ApiError::TooManyItems(format!(
            "{} items is over the limit of {} (server.max_batch_items); split the set",
            req.items.len(),
            limits.max_batch_items
        )));
    }
    let max_concurrent = super::batch::max_concurrent(limits, req.max_concurrent)?;
    let (items, invalid_items, dataset) = calibrate::read_items(req.kind, req.items);
    if items.is_empty() {
        let first = &invalid_items[0];
        return Err(invalid(
            &first.field,
            format!(
                "no item is valid ({} invalid); the first: {}: {}",
                invalid_items.len(),
                first.field,
                first.message
            ),
        ));
    }
    Ok(Plan {
        kind: req.kind,
        judges,
        items,
        invalid: invalid_items,
        dataset,
        name: req.name,
        max_concurrent,
        include_items: req.include_items,
        budget: None,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsParams {
    /// Only runs that measured this judge, with only its figures: its drift over time.
    pub judge: Option<String>,
    /// Only runs on this gold set (the `dataset` digest of a report).
    pub dataset: Option<String>,
    /// Most runs to list (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// Kept calibration runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    /// Each run's report without per-item results; `invalid_items` is a count.
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<Value>,
}

/// Kept calibration runs, newest first; with `judge`, one judge's figures run after run.
#[utoipa::path(get, path = "/v1/calibrate/runs", tag = "judge", params(RunsParams),
    responses(
        (status = 200, body = RunList),
        UnauthorizedError,
        (status = 422, description = "A query parameter is not valid", body = ErrorBody),
        (status = 503, description = "The run store cannot be read", body = ErrorBody),
    ))]
pub async fn runs(
    State(app): State<AppState>,
    tenant: Tenant,
    QueryParams(p): QueryParams<RunsParams>,
) -> Result<Json<RunList>, ApiError> {
    let query = RunQuery {
        judge: p.judge,
        dataset: p.dataset,
        limit: p.limit.unwrap_or(50).clamp(1, 1000),
        owner: tenant.sees().map(str::to_string),
    };
    let store = app.runs.clone();
    let runs = tokio::task::spawn_blocking(move || store.list(&query))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| {
            ApiError::StoreUnavailable(format!("the calibration run store cannot be read: {e}"))
        })?;
    Ok(Json(RunList { runs }))
}
