//! What every job submission shares, whichever way its items come (a JSON body or an NDJSON
//! upload): its options and budget checked, its idempotency key and request digest, and the
//! answer that accepts it.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};

use crate::api::batch::refuse_unpriced_budget;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::tenant::Caller;
use llm_judge_judge::JudgeKind;
use llm_judge_work::jobs::{JobOptions, JobStatus, JobView, KeyConflict};

/// The answer to a job submission.
#[derive(Serialize, ToSchema)]
pub struct JobAccepted {
    pub id: String,
    pub status: JobStatus,
    /// False when the idempotency key returned an earlier job.
    pub created: bool,
}

/// Query parameters of an NDJSON upload (a JSON body carries these fields itself).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// `binary` (default), `score` or `compare`.
    pub kind: Option<JudgeKind>,
    /// The judge (route) for items that name none.
    pub judge: Option<String>,
    pub max_concurrent: Option<usize>,
    /// The same key with the same upload (and parameters) returns the same job; another upload
    /// under it is a 409, and so is any upload while the first one is still arriving.
    pub idempotency_key: Option<String>,
    /// As in the JSON body: the job's spend budget in dollars.
    pub max_cost_usd: Option<f64>,
    /// As in the JSON body: the job's budget of tokens.
    pub max_tokens: Option<u64>,
    /// As in the JSON body: send items as provider batches where the route's first step has a
    /// batch API.
    pub provider_batch: Option<bool>,
    /// As in the JSON body: seconds after creation when what provider batches have not
    /// answered goes online (1 to 86400, default 86400).
    pub provider_batch_deadline_s: Option<u64>,
    /// As in the JSON body: seconds the job waits for its route's providers to answer again
    /// before it fails (1 to 2592000, default the `jobs.max_wait_s` setting).
    pub max_wait_s: Option<u64>,
}

/// A job's own `max_wait_s`, checked (a 422 names the field).
pub fn max_wait(v: Option<u64>) -> Result<Option<u64>, ApiError> {
    use crate::config::MAX_WAIT_S;
    match v {
        Some(s) if !(1..=MAX_WAIT_S).contains(&s) => Err(ApiError::InvalidField {
            field: "max_wait_s".into(),
            message: format!("max_wait_s must be between 1 and {MAX_WAIT_S} seconds (30 days)"),
        }),
        v => Ok(v),
    }
}

/// The longest `provider_batch_deadline_s`: the providers' own completion window.
const MAX_PROVIDER_BATCH_DEADLINE_S: u64 = 86_400;

/// The options a job asks for, checked: a 422 names the field.
pub fn job_options(
    app: &AppState,
    caller: &Caller,
    route: &str,
    judges: std::collections::BTreeSet<String>,
    provider_batch: Option<bool>,
    deadline_s: Option<u64>,
    budget: llm_judge_work::batch::Limits,
) -> Result<JobOptions, ApiError> {
    let invalid = |field: &str, message: String| ApiError::InvalidField {
        field: field.to_string(),
        message,
    };
    let provider_batch = provider_batch.unwrap_or(false);
    if let Some(d) = deadline_s {
        if !provider_batch {
            return Err(invalid(
                "provider_batch_deadline_s",
                "provider_batch_deadline_s is for jobs with provider_batch: true".into(),
            ));
        }
        if !(1..=MAX_PROVIDER_BATCH_DEADLINE_S).contains(&d) {
            return Err(invalid(
                "provider_batch_deadline_s",
                format!(
                    "provider_batch_deadline_s must be between 1 and {MAX_PROVIDER_BATCH_DEADLINE_S} seconds (the providers finish a batch within 24 hours)"
                ),
            ));
        }
    }
    if app.jobs.fleet() && !provider_batch {
        // A fleet's replicas would each keep a budget of their own (a provider-batch job is
        // run by one replica at a time): refused rather than run wrong.
        let field = if budget.max_cost_usd.is_some() {
            Some("max_cost_usd")
        } else if budget.max_tokens.is_some() {
            Some("max_tokens")
        } else {
            None
        };
        if let Some(field) = field {
            return Err(ApiError::UnsupportedField {
                field: field.to_string(),
                message: format!(
                    "{field} is available for jobs in a fleet sharing Redis only with provider_batch: true (one replica then runs the job); send it with provider_batch, run the job on a service without [redis], or send it without {field}"
                ),
            });
        }
    }
    // Sent with a client token whose day has a budget: the job spends that day.
    let day = app.daily_budgets.as_ref().zip(caller.client);
    refuse_unpriced_budget(app, budget, day.map(|(d, _)| &**d), route, judges)?;
    Ok(JobOptions {
        provider_batch,
        provider_batch_deadline_s: deadline_s,
        budget,
        client: day.and_then(|(d, c)| d.name_of(c).map(str::to_string)),
        owner: caller.tenant.owner(),
        max_wait_s: None,
    })
}

/// A digest of a request's bytes (SHA-256, base64url).
pub fn digest(bytes: &[u8]) -> String {
    finish_digest(sha2::Sha256::new_with_prefix(bytes))
}

/// The digest of a request read in pieces (SHA-256, base64url).
pub fn finish_digest(hasher: sha2::Sha256) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize())
}

/// The 409 of an idempotency key already taken by another request, or by an upload still
/// arriving.
pub fn key_conflict(c: KeyConflict) -> ApiError {
    match c {
        KeyConflict::DifferentRequest { key, job } => ApiError::IdempotencyConflict(format!(
            "idempotency_key {key:?} was used for a different request (job {job}); \
             send the same request to get that job, or use a new key for a new job"
        )),
        KeyConflict::InProgress { key, job } => ApiError::IdempotencyInProgress(format!(
            "an upload with idempotency_key {key:?} is still arriving (job {job}); \
             retry when it has finished"
        )),
    }
}

/// The idempotency key, checked (a 422 when it is too long); an empty one is none.
pub fn check_key(key: Option<String>) -> Result<Option<String>, ApiError> {
    let key = key.filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > 256) {
        return Err(ApiError::InvalidField {
            field: "idempotency_key".into(),
            message: "idempotency_key is longer than 256 characters".into(),
        });
    }
    Ok(key)
}

/// 202 with the job's id and a `Location` header; an idempotent repeat answers 202 too, so
/// clients need not care which they got.
pub fn accepted(view: &JobView, created: bool) -> Response {
    let body = JobAccepted {
        id: view.id.clone(),
        status: view.status,
        created,
    };
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = format!("/v1/jobs/{}", view.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
