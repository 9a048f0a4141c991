//! HTTP errors: every 4xx and 5xx carries `{"error": {"code", "message", "field"?}}`. Each kind
//! of error the service answers is a variant of [`ApiError`]; its status and code are chosen in
//! one place, [`ApiError::status_and_code`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use llm_judge_judge::{FieldError, JudgeError};
use llm_judge_pool::Attempt;
use llm_judge_work::jobs::StoreError;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// Every provider attempt, when the route failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`invalid_field`, `malformed_json`, `unknown_judge` ...).
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The request field at fault, when there is one (`prediction`, `items[3].question`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer: the kind of error, with its message and, where the sender names one, the
/// field at fault. Kinds whose field is always the same (`body`, `model` ...) name it themselves.
#[derive(Debug)]
pub enum ApiError {
    // The request as it arrived.
    /// The body is empty or not JSON (field `body`).
    MalformedJson(String),
    /// The body could not be read, or broke off (field `body`).
    UnreadableBody(String),
    /// The body took too long to arrive (field `body`).
    BodyTimeout(String),
    /// The body is over `server.max_body_bytes` (field `body`).
    BodyTooLarge(String),
    /// The body is declared as something other than JSON (field `content-type`).
    UnsupportedMediaType(String),
    /// The body is compressed in an encoding the service cannot read (field `content-encoding`).
    UnsupportedEncoding(String),
    /// A path parameter is not valid UTF-8 or not of the right type.
    InvalidPath { field: String, message: String },
    /// A field is missing, empty, of the wrong type or out of range.
    InvalidField { field: String, message: String },
    /// No endpoint at this path.
    NotFound(String),
    /// The endpoint does not take this method.
    MethodNotAllowed(String),

    // The checks in front of the handlers.
    /// No client token, or an unknown one.
    Unauthorized(String),
    /// Sent from a web page whose origin is not allowed (field `origin`).
    OriginNotAllowed(String),
    /// The client token's daily budget has no room.
    DailyBudgetExhausted(String),
    /// The server is shutting down and takes no new work.
    ShuttingDown(String),

    // The work asked for.
    /// The named judge is not a route, a panel or an ad-hoc route.
    UnknownJudge { field: String, message: String },
    /// More items than a batch or calibration run may have (field `items`).
    TooManyItems(String),
    /// A field this endpoint does not take, or not in this setting.
    UnsupportedField { field: String, message: String },
    /// A budget in dollars over a model without a price.
    UnpricedModel { field: String, message: String },
    /// No provider of the route produced an answer; the code is the route's own
    /// (`all_providers_failed` ...).
    ProvidersFailed {
        code: &'static str,
        message: String,
        attempts: Vec<Attempt>,
    },

    // Jobs and kept runs.
    /// No such job (field `id`).
    JobNotFound(String),
    /// The idempotency key was used for a different request (field `idempotency_key`).
    IdempotencyConflict(String),
    /// The upload under this idempotency key is still arriving (field `idempotency_key`).
    IdempotencyInProgress(String),
    /// The job is still running, or cannot be run again (field `id`).
    JobNotFinished(String),
    /// An NDJSON upload with more items than `jobs.max_items` (field `body`).
    UploadTooManyItems(String),
    /// An NDJSON upload with a line over the limit (field `body`).
    LineTooLong(String),
    /// The job store or the calibration run store failed.
    StoreUnavailable(String),

    // The OpenAI-compatible endpoints.
    /// A chat completion field with a value the service does not take.
    InvalidValue { field: String, message: String },
    /// A chat completion parameter the service does not pass on.
    UnsupportedParameter { field: String, message: String },
    /// An image that is neither a data: URL nor an http(s) URL.
    InvalidImage { field: String, message: String },
    /// `model` names the rules judge, which writes no free-form answers (field `model`).
    NotAChatModel(String),
    /// `model` names no route (field `model`).
    ModelNotFound(String),
    /// Every provider of the route refused the request as malformed.
    ProviderRejected {
        message: String,
        attempts: Vec<Attempt>,
    },
    /// Every step of the route was rate-limited.
    RateLimited {
        message: String,
        attempts: Vec<Attempt>,
    },

    /// A bug: the request was not completed.
    Internal(String),
}

impl ApiError {
    /// The status and code of each kind of error: the one place they are chosen.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json"),
            Self::UnreadableBody(_) => (S::BAD_REQUEST, "unreadable_body"),
            Self::BodyTimeout(_) => (S::REQUEST_TIMEOUT, "body_timeout"),
            Self::BodyTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::InvalidPath { .. } => (S::BAD_REQUEST, "invalid_path"),
            Self::InvalidField { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::NotFound(_) => (S::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized"),
            Self::OriginNotAllowed(_) => (S::FORBIDDEN, "origin_not_allowed"),
            Self::DailyBudgetExhausted(_) => (S::TOO_MANY_REQUESTS, "daily_budget_exhausted"),
            Self::ShuttingDown(_) => (S::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::UnknownJudge { .. } => (S::UNPROCESSABLE_ENTITY, "unknown_judge"),
            Self::TooManyItems(_) => (S::UNPROCESSABLE_ENTITY, "too_many_items"),
            Self::UnsupportedField { .. } => (S::UNPROCESSABLE_ENTITY, "unsupported_field"),
            Self::UnpricedModel { .. } => (S::UNPROCESSABLE_ENTITY, "unpriced_model"),
            Self::ProvidersFailed { code, .. } => (S::BAD_GATEWAY, *code),
            Self::JobNotFound(_) => (S::NOT_FOUND, "job_not_found"),
            Self::IdempotencyConflict(_) => (S::CONFLICT, "idempotency_conflict"),
            Self::IdempotencyInProgress(_) => (S::CONFLICT, "idempotency_in_progress"),
            Self::JobNotFinished(_) => (S::CONFLICT, "job_not_finished"),
            Self::UploadTooManyItems(_) => (S::PAYLOAD_TOO_LARGE, "too_many_items"),
            Self::LineTooLong(_) => (S::PAYLOAD_TOO_LARGE, "line_too_long"),
            Self::StoreUnavailable(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::InvalidValue { .. } => (S::BAD_REQUEST, "invalid_value"),
            Self::UnsupportedParameter { .. } => (S::BAD_REQUEST, "unsupported_parameter"),
            Self::InvalidImage { .. } => (S::BAD_REQUEST, "invalid_image"),
            Self::NotAChatModel(_) => (S::BAD_REQUEST, "not_a_chat_model"),
            Self::ModelNotFound(_) => (S::NOT_FOUND, "model_not_found"),
            Self::ProviderRejected { .. } => (S::BAD_REQUEST, "provider_rejected_request"),
            Self::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// What is wrong and how to fix it.
    pub fn message(&self) -> &str {
        self.said().0
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        self.said().1
    }

    /// The message, and the field at fault: the sender's, or the one the kind always names.
    fn said(&self) -> (&str, Option<&str>) {
        match self {
            Self::InvalidPath { field, message }
            | Self::InvalidField { field, message }
            | Self::UnknownJudge { field, message }
            | Self::UnsupportedField { field, message }
            | Self::UnpricedModel { field, message }
            | Self::InvalidValue { field, message }
            | Self::UnsupportedParameter { field, message }
            | Self::InvalidImage { field, message } => (message, Some(field)),
            Self::MalformedJson(m)
            | Self::UnreadableBody(m)
            | Self::BodyTimeout(m)
            | Self::BodyTooLarge(m)
            | Self::UploadTooManyItems(m)
            | Self::LineTooLong(m) => (m, Some("body")),
            Self::UnsupportedMediaType(m) => (m, Some("content-type")),
            Self::UnsupportedEncoding(m) => (m, Some("content-encoding")),
            Self::OriginNotAllowed(m) => (m, Some("origin")),
            Self::TooManyItems(m) => (m, Some("items")),
            Self::JobNotFound(m) | Self::JobNotFinished(m) => (m, Some("id")),
            Self::IdempotencyConflict(m) | Self::IdempotencyInProgress(m) => {
                (m, Some("idempotency_key"))
            }
            Self::NotAChatModel(m) | Self::ModelNotFound(m) => (m, Some("model")),
            Self::NotFound(m)
            | Self::MethodNotAllowed(m)
            | Self::Unauthorized(m)
            | Self::DailyBudgetExhausted(m)
            | Self::ShuttingDown(m)
            | Self::StoreUnavailable(m)
            | Self::Internal(m) => (m, None),
            Self::ProvidersFailed { message, .. }
            | Self::ProviderRejected { message, .. }
            | Self::RateLimited { message, .. } => (message, None),
        }
    }

    /// The error body.
    fn into_body(self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        let (message, field) = self.said();
        let error = ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
            field: field.map(str::to_string),
        };
        let attempts = match self {
            Self::ProvidersFailed { attempts, .. }
            | Self::ProviderRejected { attempts, .. }
            | Self::RateLimited { attempts, .. } => Some(attempts),
            _ => None,
        };
        ErrorBody { error, attempts }
    }

    /// A validation failure of one field (422).
    pub fn invalid(e: FieldError) -> Self {
        let message = if e.message.contains(&e.field) {
            e.message
        } else {
            format!("{}: {}", e.field, e.message)
        };
        Self::InvalidField {
            field: e.field,
            message,
        }
    }

    /// A judge named in `field` that is not a configured route or panel, nor an ad-hoc route.
    pub fn unknown_judge(name: &str, field: impl Into<String>) -> Self {
        Self::UnknownJudge {
            field: field.into(),
            message: format!(
                "no judge named {name:?}: not a configured route, and not an ad-hoc route of configured providers (provider:model[,provider:model...]); GET /v1/providers lists the providers, and the configuration's [routes] table names the judges"
            ),
        }
    }
}

impl From<JudgeError> for ApiError {
    fn from(e: JudgeError) -> Self {
        match e {
            JudgeError::UnknownRoute(name) => ApiError::unknown_judge(&name, "judge"),
            JudgeError::Failed {
                code,
                message,
                attempts,
                ..
            } => ApiError::ProvidersFailed {
                code,
                message,
                attempts,
            },
            // The API delivers every call online: nothing parks one.
            JudgeError::Parked => {
                ApiError::Internal("a call was kept for later on an online request".into())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let request_id = super::access::current_request_id();
        tracing::error!(request_id = request_id.as_deref(), error = %e, "job store failure");
        ApiError::StoreUnavailable("the job store failed; retry later".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, Json(self.into_body())).into_response()
    }
}
