//! Spend budgets at the HTTP edge: a batch request's own `max_cost_usd` / `max_tokens`, and
//! each client token's daily budget (`[auth] daily_budget_usd`, `daily_budget_tokens`): the
//! refusals they answer and the hold a single judgment takes on its client's day.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use llm_judge_pool::cost::Estimate;
use llm_judge_pool::{Pool, Step};
use llm_judge_work::budget::daily::{ClientId, DailyBudgets};

/// The 429 of a client token whose daily budget has no room, with `Retry-After` at midnight UTC.
pub fn daily_refusal(detail: &str) -> Response {
    let secs = llm_judge_work::budget::daily::seconds_to_midnight();
    let mut resp = ApiError::DailyBudgetExhausted(format!(
        "{detail}. The budget ([auth] daily_budget_usd / daily_budget_tokens) starts again at \
         00:00 UTC, in {secs} s"
    ))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    // The official OpenAI SDKs retry a 429 unless told not to: this one lasts until midnight.
    resp.headers_mut().insert(
        header::HeaderName::from_static("x-should-retry"),
        HeaderValue::from_static("false"),
    );
    resp
}

/// The steps of `routes` that a budget in dollars cannot cover (no price), as one 422 naming
/// them and the field that asked for the budget.
pub fn refuse_unpriced<'a>(
    pool: &Pool,
    routes: impl IntoIterator<Item = &'a str>,
    field: &str,
) -> Result<(), ApiError> {
    let mut unpriced: Vec<Step> = Vec::new();
    for r in routes {
        for st in pool.unpriced_steps(r) {
            if !unpriced.contains(&st) {
                unpriced.push(st);
            }
        }
    }
    if unpriced.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unpriced
        .iter()
        .map(|s| format!("{}:{}", s.provider, s.model))
        .collect();
    let first = &names[0];
    Err(ApiError::UnpricedModel {
        field: field.to_string(),
        message: format!(
            "{field} is a budget in dollars, and {} no price: add {} to [prices] (such as \
             \"{first}\" = {{ prompt_per_mtok = 2.5, completion_per_mtok = 10.0 }}), or \
             budget in tokens only",
            match names.len() {
                1 => format!("the model {first} that this request may call has"),
                _ => format!(
                    "the models {} that this request may call have",
                    names.join(", ")
                ),
            },
            if names.len() == 1 { "it" } else { "them" },
        ),
    })
}

/// A single judgment's share of its client's daily budget, taken before it is sent.
pub struct Held(Option<llm_judge_work::budget::Reservation>);

impl Held {
    /// Settles with what the judgment cost (nothing, when it failed).
    pub fn settle(self, cost_usd: Option<f64>, tokens: u64) {
        if let Some(r) = self.0 {
            r.settle(cost_usd, tokens);
        }
    }
}

/// Takes `estimate` from the client's daily budget before a single judgment along `route`: a
/// 422 when the budget is in dollars and the route has an unpriced model, a 429 when it does
/// not fit.
// The refusal is a whole response, as the layers' are.
#[allow(clippy::result_large_err)]
pub fn hold(
    daily: Option<&DailyBudgets>,
    client: Option<ClientId>,
    pool: &Pool,
    route: &str,
    estimate: Estimate,
) -> Result<Held, Response> {
    let (Some(daily), Some(client)) = (daily, client) else {
        return Ok(Held(None));
    };
    if daily.limits().max_cost_usd.is_some() {
        refuse_unpriced(pool, [route], "auth.daily_budget_usd").map_err(|e| e.into_response())?;
    }
    daily
        .today(client)
        .reserve(estimate)
        .map(|r| Held(Some(r)))
        .map_err(|e| daily_refusal(e.message.trim_end_matches("; the item was not sent")))
}
