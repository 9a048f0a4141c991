//! HTTP: the router, its OpenAPI document, request ids, client auth and request metrics.

pub mod batch;
pub mod error;
pub mod health;
pub mod jobs;
pub mod judge;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::metrics as m;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llm-judge",
        description = "Grades model outputs with LLM judges, alone or in batches, across providers with rate limits, retries and fallback.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "judge", description = "Judging items"),
        (name = "jobs", description = "Persistent batch jobs"),
        (name = "operations", description = "Health, provider state and metrics")
    )
)]
struct ApiDoc;

/// The router with every documented route, and the OpenAPI document.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(judge::binary))
        .routes(routes!(judge::score))
        .routes(routes!(judge::compare))
        .routes(routes!(batch::batch))
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::get, jobs::cancel))
        .routes(routes!(jobs::results))
        .routes(routes!(jobs::events))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::providers))
        .routes(routes!(health::metrics))
        .split_for_parts()
}

/// The OpenAPI document as served at `/openapi.json` and printed by `llm-judge openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().1;
    doc.paths.paths.insert(
        "/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("This document"))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("The OpenAPI document")
                        .content(
                            "application/json",
                            utoipa::openapi::content::Content::new(
                                None::<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
                            ),
                        ),
                ),
        ),
    );
    doc
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let doc = openapi();
    let json = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises");
    let limit = state.settings.server.max_body_bytes;
    routes()
        .0
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        // A bug must still answer with the error body, never drop the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server hit a bug; the request was not completed",
            )
            .into_response()
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_when_draining,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; GET /openapi.json lists them",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; GET /openapi.json lists them",
    )
}

/// Paths that stay open without a client token.
fn is_open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// While shutting down, new work is refused (in-flight requests go on); probes still answer.
async fn refuse_when_draining(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.shutting_down.load(std::sync::atomic::Ordering::Relaxed)
        && !is_open_path(req.uri().path())
    {
        let mut resp = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; retry on another instance",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    next.run(req).await
}

/// Checks the client bearer token, when tokens are configured (constant-time comparison).
async fn authenticate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let tokens = &app.settings.auth.tokens;
    if tokens.is_empty() || is_open_path(req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let ok = given.is_some_and(|g| {
        tokens.iter().fold(false, |acc, t| {
            acc | bool::from(t.expose().as_bytes().ct_eq(g.as_bytes()))
        })
    });
    if ok {
        next.run(req).await
    } else {
        let mut resp = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a client token as Authorization: Bearer <token>",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        resp
    }
}

/// Request id (taken from `x-request-id` or made), the access line, and request metrics.
async fn observe(State(_app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| {
            let path = req.uri().path();
            if is_open_path(path) || path.starts_with("/v1/") && endpoint_known(path) {
                path.to_string()
            } else {
                "unmatched".to_string()
            }
        });
    // Shared with the task-local below, so the id is not copied for it.
    let request_id: std::sync::Arc<str> = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| new_request_id().into(), Into::into);
    req.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("invalid")),
    );
    let method = req.method().clone();
    // A span only when debug lines (provider attempts) are on: at the default level a span per
    // request cost about 5% of the service's CPU per request. Lines logged during the request
    // take its id from the task-local instead, and the access line carries every field itself.
    let span = tracing::debug_span!("request", request_id = %request_id, method = %method, endpoint = %endpoint);
    let mut resp = REQUEST_ID
        .scope(request_id.clone(), next.run(req).instrument(span))
        .await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    tracing::info!(
        request_id = %request_id,
        method = %method,
        endpoint = %endpoint,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request done"
    );
    metrics::counter!(m::HTTP_REQUESTS, "endpoint" => endpoint.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!(m::HTTP_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

tokio::task_local! {
    static REQUEST_ID: std::sync::Arc<str>;
}

/// The id of the request being served, for log lines written while serving it.
pub(crate) fn current_request_id() -> Option<std::sync::Arc<str>> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

fn endpoint_known(path: &str) -> bool {
    matches!(
        path,
        "/v1/judge/binary"
            | "/v1/judge/score"
            | "/v1/judge/compare"
            | "/v1/judge/batch"
            | "/v1/providers"
    )
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
