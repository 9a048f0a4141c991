//! Errors in OpenAI's shape on the OpenAI-compatible endpoints, so that the official SDKs raise
//! their usual exception types (`BadRequestError`, `AuthenticationError`, `NotFoundError`,
//! `RateLimitError`, ...): `{"error": {"message", "type", "param", "code"}}`.
//!
//! Every refusal on those paths is made as the service's own error first (by the handler, or by
//! a layer in front of it: client auth, origins, body limits, draining); [`OpenAiErrorsLayer`]
//! rewrites it on the way out. Bad input is 400 there, as OpenAI answers it (the service's
//! other endpoints answer 422); other statuses stay. Every other path keeps the service's body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use llm_judge_pool::Attempt;

/// The paths whose errors are OpenAI-shaped.
pub const PATHS: [&str; 2] = ["/v1/chat/completions", "/v1/models"];

/// An error answer in OpenAI's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
    /// Every provider attempt, when the route failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_llm_judge: Option<ErrorMeta>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiError {
    /// What is wrong and how to fix it.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, when there is one (`messages[1].content`).
    pub param: Option<String>,
    /// The service's error code (`model_not_found`, `unsupported_parameter`,
    /// `all_providers_failed` ...).
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorMeta {
    #[schema(value_type = Vec<Object>)]
    pub attempts: Vec<serde_json::Value>,
}

/// The service's own error body, as read back.
#[derive(Deserialize)]
struct ServiceError {
    error: ServiceDetail,
    #[serde(default)]
    attempts: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct ServiceDetail {
    code: String,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// OpenAI's error type for a status.
pub fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

/// The OpenAI-shaped answer for a service error body (`None` when it is not one).
fn rewrite(status: StatusCode, body: &[u8]) -> Option<(StatusCode, Vec<u8>)> {
    let e: ServiceError = serde_json::from_slice(body).ok()?;
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let out = OpenAiErrorBody {
        error: OpenAiError {
            message: e.error.message,
            kind: kind_of(status),
            param: e.error.field,
            code: e.error.code,
        },
        x_llm_judge: e.attempts.map(|attempts| ErrorMeta { attempts }),
    };
    Some((status, serde_json::to_vec(&out).ok()?))
}

/// The attempts of an error answer, as the service lists them.
pub fn attempts_json(attempts: &[Attempt]) -> Vec<serde_json::Value> {
    attempts
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .collect()
}

/// Rewrites error answers on [`PATHS`] into OpenAI's shape.
#[derive(Clone, Copy, Default)]
pub struct OpenAiErrorsLayer;

impl<S> tower::Layer<S> for OpenAiErrorsLayer {
    type Service = OpenAiErrors<S>;

    fn layer(&self, inner: S) -> OpenAiErrors<S> {
        OpenAiErrors { inner }
    }
}

#[derive(Clone)]
pub struct OpenAiErrors<S> {
    inner: S,
}

/// An error body is a few hundred bytes; anything larger is left as it is.
const MAX_ERROR_BODY: usize = 1 << 20;

impl<S, B> tower::Service<Request> for OpenAiErrors<S>
where
    S: tower::Service<Request, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let ours = PATHS.contains(&req.uri().path());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?.map(Body::new);
            let is_json = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if !ours || resp.status().as_u16() < 400 || !is_json {
                return Ok(resp);
            }
            let (mut parts, body) = resp.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
                return Ok(Response::from_parts(parts, Body::empty()));
            };
            let Some((status, out)) = rewrite(parts.status, &bytes) else {
                return Ok(Response::from_parts(parts, Body::from(bytes)));
            };
            parts.status = status;
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(Response::from_parts(parts, Body::from(out)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_error_becomes_openais_shape() {
        let body =
            br#"{"error":{"code":"invalid_field","message":"messages: bad","field":"messages"}}"#;
        let (status, out) = rewrite(StatusCode::UNPROCESSABLE_ENTITY, body).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "messages: bad", "type": "invalid_request_error", "param": "messages", "code": "invalid_field"}})
        );
        let body = br#"{"error":{"code":"unauthorized","message":"send a token"}}"#;
        let (status, out) = rewrite(StatusCode::UNAUTHORIZED, body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["type"], "authentication_error");
        assert!(v["error"]["param"].is_null());
        let body = br#"{"error":{"code":"all_providers_failed","message":"m"},"attempts":[{"provider":"a"}]}"#;
        let (_, out) = rewrite(StatusCode::BAD_GATEWAY, body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["x_llm_judge"]["attempts"][0]["provider"], "a");
        assert!(rewrite(StatusCode::BAD_REQUEST, b"not json").is_none());
    }
}
