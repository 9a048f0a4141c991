//! The batch endpoint: many items of one kind, results in input order, one summary.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::budget::refuse_unpriced;
use super::error::{ApiError, ErrorBody, ErrorDetail};
use super::error_docs::NewWorkErrors;
use super::extract::JsonBody;
use super::state::AppState;
use llm_judge_judge::JudgeKind;
use llm_judge_work::batch::{self, BatchItem, Budget, Limits, Summary};
use llm_judge_work::budget::daily::{ClientId, DailyBudgets};

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
    /// The most the batch (or job) may spend, in US dollars. An item is sent only while what is
    /// spent, what is in flight and the item's estimate (its prompt at the input price and its
    /// whole `max_tokens` at the output price; at the batch price for an item a job sends as a
    /// provider batch) stay within it; the others are `budget_exhausted` error entries. Every
    /// model the batch may call needs a price (else 422).
    #[schema(exclusive_minimum = 0.0)]
    pub max_cost_usd: Option<f64>,
    /// The most tokens (prompt and completion) the batch (or job) may use, with the same rule;
    /// needs no prices.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u64>,
    /// Jobs only: send the items whose route's first step has a provider batch API (OpenAI,
    /// Azure OpenAI, Anthropic) as provider batches, at the batch price; items of other
    /// providers go online as usual. Items a provider batch does not answer go online.
    pub provider_batch: Option<bool>,
    /// Jobs with `provider_batch`: seconds after the job's creation when what its provider
    /// batches have not answered goes online (the batches are cancelled); 1 to 86400, default
    /// 86400 (the providers' own 24-hour window).
    #[schema(minimum = 1, maximum = 86400)]
    pub provider_batch_deadline_s: Option<u64>,
    /// Jobs only: how long the job waits for its route's providers to answer again (an
    /// outage, rate limits, timeouts) before it fails, in seconds; 1 to 2592000 (30 days),
    /// default the `jobs.max_wait_s` setting (6 hours). While it waits, its items are not
    /// failed: they are sent again once the route answers.
    #[schema(minimum = 1, maximum = 2592000)]
    pub max_wait_s: Option<u64>,
}

impl BatchRequest {
    /// The budget the request asks for, checked (a 422 names the field).
    pub fn limits(&self) -> Result<Limits, ApiError> {
        budget_limits(self.max_cost_usd, self.max_tokens)
    }
}

/// A budget's limits, checked (a 422 names the field).
pub fn budget_limits(
    max_cost_usd: Option<f64>,
    max_tokens: Option<u64>,
) -> Result<Limits, ApiError> {
    {
        if let Some(c) = max_cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            return Err(ApiError::InvalidField {
                field: "max_cost_usd".into(),
                message: "max_cost_usd must be a number of dollars above 0".into(),
            });
        }
        if max_tokens == Some(0) {
            return Err(ApiError::InvalidField {
                field: "max_tokens".into(),
                message: "max_tokens must be 1 or more".into(),
            });
        }
        Ok(Limits {
            max_cost_usd,
            max_tokens,
        })
    }
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
        return Err(ApiError::InvalidField {
            field: "max_concurrent".into(),
            message: format!(
                "max_concurrent must be between 1 and {}",
                limits.batch_max_concurrent_limit
            ),
        });
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
            return Err(ApiError::InvalidField {
                field: "items".into(),
                message: "send either items or the arrays questions/answers/predictions, not both"
                    .into(),
            });
        }
        (Some(items), false) => items,
        (None, true) => {
            if req.kind != JudgeKind::Binary {
                return Err(ApiError::InvalidField {
                    field: "kind".into(),
                    message:
                        "the arrays questions/answers/predictions are for kind binary; send items"
                            .into(),
                });
            }
            let (Some(q), Some(a), Some(p)) = (req.questions, req.answers, req.predictions) else {
                return Err(ApiError::InvalidField {
                    field: "predictions".into(),
                    message: "questions, answers and predictions must all be given".into(),
                });
            };
            if q.len() != a.len() || q.len() != p.len() {
                return Err(ApiError::InvalidField {
                    field: "answers".into(),
                    message: format!(
                        "questions ({}), answers ({}) and predictions ({}) must have the same length",
                        q.len(),
                        a.len(),
                        p.len()
                    ),
                });
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
            return Err(ApiError::InvalidField {
                field: "items".into(),
                message: "items is required".into(),
            });
        }
    };
    if values.is_empty() {
        return Err(ApiError::InvalidField {
            field: "items".into(),
            message: "items must not be empty".into(),
        });
    }
    if values.len() > limits.max_batch_items {
        return Err(ApiError::TooManyItems(format!(
            "{} items is over the limit of {} per batch (server.max_batch_items); split the batch",
            values.len(),
            limits.max_batch_items
        )));
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
        NewWorkErrors,
        (status = 422, description = "Invalid batch (too many items, unknown judge, a budget in dollars with a model that has no price ...)", body = ErrorBody),
    ))]
pub async fn batch(
    State(app): State<AppState>,
    client: Option<axum::Extension<ClientId>>,
    headers: HeaderMap,
    JsonBody(mut req): JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    let interval = Duration::from_millis(req.progress_interval_ms.unwrap_or(1000).max(50));
    if let Some(field) = [
        ("provider_batch", req.provider_batch.is_some()),
        (
            "provider_batch_deadline_s",
            req.provider_batch_deadline_s.is_some(),
        ),
        ("max_wait_s", req.max_wait_s.is_some()),
    ]
    .iter()
    .find_map(|(f, set)| set.then_some(*f))
    {
        return Err(ApiError::UnsupportedField {
            field: field.to_string(),
            message: format!(
                "{field} is taken by POST /v1/jobs: a provider batch, or waiting out an outage, may take hours, so it runs as a job"
            ),
        });
    }
    let own = req.limits()?;
    (req.max_cost_usd, req.max_tokens) = (None, None);
    let Checked {
        route,
        kind,
        items,
        max_concurrent,
    } = prepare(&app, req)?;
    let budget = batch_budget(&app, client.map(|c| c.0), own, &route, &items)?;
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
            budget,
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
        budget,
        app.stop.clone(),
    );
    let body = Body::from_stream(body.map(Ok::<_, std::convert::Infallible>));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The batch's budget: its own limits, under its client token's daily budget when `[auth]` sets
/// one; `None` with neither. A budget in dollars needs a price for every model the batch may
/// call (its route and the judges its items name): else 422, before anything is sent.
fn batch_budget(
    app: &AppState,
    client: Option<ClientId>,
    own: Limits,
    route: &str,
    items: &[BatchItem],
) -> Result<Option<std::sync::Arc<Budget>>, ApiError> {
    let daily = app.daily_budgets.as_ref().filter(|_| client.is_some());
    refuse_unpriced_budget(app, own, daily.map(|d| &**d), route, item_judges(items))?;
    Ok(match daily.zip(client) {
        Some((d, c)) => Some(Budget::under(own, "the batch's budget", d.today(c))),
        None if !own.is_empty() => Some(Budget::new(own, "the batch's budget")),
        None => None,
    })
}

/// Refuses (422) a budget in dollars, the work's own (`max_cost_usd`) or else its client token's
/// day (`auth.daily_budget_usd`), when a model the items may call, along `route` or the judges
/// they name, has no price.
pub fn refuse_unpriced_budget(
    app: &AppState,
    own: Limits,
    daily: Option<&DailyBudgets>,
    route: &str,
    judges: std::collections::BTreeSet<String>,
) -> Result<(), ApiError> {
    let field = if own.max_cost_usd.is_some() {
        "max_cost_usd"
    } else if daily.is_some_and(|d| d.limits().max_cost_usd.is_some()) {
        "auth.daily_budget_usd"
    } else {
        return Ok(());
    };
    refuse_unpriced_items(app, route, judges, field)
}

/// Refuses (422 naming `field`) a budget in dollars when a model the items may call, along
/// `route` or the judges they name, has no price.
fn refuse_unpriced_items(
    app: &AppState,
    route: &str,
    judges: std::collections::BTreeSet<String>,
    field: &str,
) -> Result<(), ApiError> {
    let mut routes = vec![route.to_string()];
    for name in judges {
        if let Ok(r) = app.judge.resolve_route(Some(&name))
            && !routes.contains(&r)
        {
            routes.push(r);
        }
    }
    refuse_unpriced(app.judge.pool(), routes.iter().map(String::as_str), field)
}

/// The judge an unread item names itself, if it can be read.
pub fn named_judge(json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        judge: Option<String>,
    }
    serde_json::from_str::<Named>(json).ok()?.judge
}

/// The judges the items name themselves (items that cannot be read name none).
fn item_judges(items: &[BatchItem]) -> std::collections::BTreeSet<String> {
    items
        .iter()
        .filter_map(|item| match item {
            BatchItem::Unread(_, json) => named_judge(json.get()),
            other => other.judge().map(str::to_string),
        })
        .collect()
}
