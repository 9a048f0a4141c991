//! HTTP: the router, its OpenAPI document, request ids, client auth and request metrics.

pub mod batch;
pub mod error;
pub mod health;
pub mod jobs;
pub mod judge;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
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
            Gate {
                app: state.clone(),
                metrics: Arc::new(HttpMetrics::new()),
            },
            gate,
        ))
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

/// What every request passes through, in one layer: its id, client auth, the refusal of new
/// work while draining, the access line and the request metrics. (One layer rather than three:
/// each `from_fn` layer clones the service under it and boxes a future per request.)
#[derive(Clone)]
struct Gate {
    app: AppState,
    metrics: Arc<HttpMetrics>,
}

async fn gate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = endpoint_label(&req);
    let (request_id, header) = match client_request_id(&req) {
        Some(given) => given,
        None => {
            let (id, header) = new_request_id();
            req.headers_mut().insert("x-request-id", header.clone());
            (id, header)
        }
    };
    let method = req.method().clone();
    let path_is_open = is_open_path(req.uri().path());
    let mut resp = if !path_is_open && !authorised(&gate.app, &req) {
        unauthorised()
    } else if !path_is_open && gate.app.shutting_down.load(Ordering::Relaxed) {
        draining()
    } else {
        // A span only when debug lines (provider attempts) are on: at the default level a span
        // per request cost about 5% of the service's CPU per request. Lines logged during the
        // request take its id from the task-local instead, and the access line carries every
        // field itself.
        let span = tracing::debug_span!("request", request_id = %request_id, method = %method, endpoint = %endpoint);
        REQUEST_ID
            .scope(request_id.clone(), next.run(req).instrument(span))
            .await
    };
    resp.headers_mut().insert("x-request-id", header);
    let done = Done {
        metrics: gate.metrics.clone(),
        request_id,
        method,
        endpoint,
        status: resp.status().as_u16(),
        started,
    };
    if axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .is_some()
    {
        done.report(true);
        return resp;
    }
    // A streamed answer (a batch's results, an NDJSON stream) is reported when its last byte
    // is written, or when it is cut off.
    resp.map(|body| {
        axum::body::Body::new(Reported {
            body,
            done: Some(done),
        })
    })
}

/// What a request's access line and metrics say of it.
struct Done {
    metrics: Arc<HttpMetrics>,
    request_id: Arc<str>,
    method: axum::http::Method,
    endpoint: &'static str,
    status: u16,
    started: Instant,
}

impl Done {
    /// Writes the access line and records the request metrics; `complete` is false for an
    /// answer whose body was cut off (the client went away).
    fn report(self, complete: bool) {
        let elapsed = self.started.elapsed();
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        macro_rules! access_line {
            ($($cut:tt)*) => {
                tracing::info!(
                    request_id = %self.request_id,
                    method = %self.method,
                    endpoint = %self.endpoint,
                    status = self.status,
                    latency_ms,
                    $($cut)*
                    "request done"
                )
            };
        }
        if complete {
            access_line!();
        } else {
            access_line!(complete = false,);
        }
        self.metrics.record(self.endpoint, self.status, elapsed);
    }
}

/// A streamed response body that reports its request once it has ended or is dropped.
struct Reported {
    body: axum::body::Body,
    done: Option<Done>,
}

impl axum::body::HttpBody for Reported {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => {
                if let Some(done) = self.done.take() {
                    done.report(true);
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => {
                if let Some(done) = self.done.take() {
                    done.report(false);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Reported {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.report(axum::body::HttpBody::is_end_stream(&self.body));
        }
    }
}

/// The client's `x-request-id`, with its header value, when it is usable (1 to 128 visible
/// ASCII characters); otherwise the request gets a new id.
fn client_request_id(req: &Request) -> Option<(Arc<str>, HeaderValue)> {
    let value = req.headers().get("x-request-id")?;
    let id = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))?;
    Some((id.into(), value.clone()))
}

/// Checks the client bearer token, when tokens are configured (constant-time comparison).
fn authorised(app: &AppState, req: &Request) -> bool {
    let tokens = &app.settings.auth.tokens;
    if tokens.is_empty() {
        return true;
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
    given.is_some_and(|g| {
        tokens.iter().fold(false, |acc, t| {
            acc | bool::from(t.expose().as_bytes().ct_eq(g.as_bytes()))
        })
    })
}

fn unauthorised() -> Response {
    refusal(
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a client token as Authorization: Bearer <token>",
        ),
        (header::WWW_AUTHENTICATE, "Bearer"),
    )
}

/// While shutting down, new work is refused (in-flight requests go on); probes still answer.
fn draining() -> Response {
    refusal(
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; retry on another instance",
        ),
        (header::CONNECTION, "close"),
    )
}

/// A request turned away before its handler: the error body and one header that goes with it.
fn refusal(error: ApiError, (name, value): (header::HeaderName, &'static str)) -> Response {
    let mut resp = error.into_response();
    resp.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    resp
}

/// Every path the service answers on, as the `endpoint` label: the route's template.
const ENDPOINTS: &[&str] = &[
    "/v1/judge/binary",
    "/v1/judge/score",
    "/v1/judge/compare",
    "/v1/judge/batch",
    "/v1/jobs",
    "/v1/jobs/{id}",
    "/v1/jobs/{id}/results",
    "/v1/jobs/{id}/events",
    "/v1/providers",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

/// The `endpoint` label of a request: its route's template, or `unmatched` for a path that is
/// no route (so that scanners cannot make a label per path they try).
fn endpoint_label(req: &Request) -> &'static str {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path(), |p| p.as_str());
    ENDPOINTS
        .iter()
        .find(|e| **e == path)
        .copied()
        .unwrap_or("unmatched")
}

/// The request metrics' handles, made once per endpoint and status: making one means building
/// its label set and looking it up in the registry.
struct HttpMetrics {
    durations: HashMap<&'static str, metrics::Histogram>,
    requests: RwLock<HashMap<(&'static str, u16), metrics::Counter>>,
}

impl HttpMetrics {
    fn new() -> Self {
        let durations = ENDPOINTS
            .iter()
            .chain(&["unmatched"])
            .map(|e| (*e, metrics::histogram!(m::HTTP_DURATION, "endpoint" => *e)))
            .collect();
        Self {
            durations,
            requests: RwLock::default(),
        }
    }

    fn record(&self, endpoint: &'static str, status: u16, elapsed: std::time::Duration) {
        if let Some(h) = self.durations.get(endpoint) {
            h.record(elapsed.as_secs_f64());
        }
        if let Ok(map) = self.requests.read()
            && let Some(c) = map.get(&(endpoint, status))
        {
            c.increment(1);
            return;
        }
        let counter = metrics::counter!(m::HTTP_REQUESTS, "endpoint" => endpoint, "status" => status.to_string());
        counter.increment(1);
        if let Ok(mut map) = self.requests.write() {
            map.insert((endpoint, status), counter);
        }
    }
}

tokio::task_local! {
    static REQUEST_ID: std::sync::Arc<str>;
}

/// The id of the request being served, for log lines written while serving it.
pub(crate) fn current_request_id() -> Option<std::sync::Arc<str>> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// A new request id, 32 lowercase hex digits, with its header value.
fn new_request_id() -> (Arc<str>, HeaderValue) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = rand::random::<u128>();
    let id: String = (0..32)
        .rev()
        .map(|i| HEX[((v >> (i * 4)) & 0xf) as usize] as char)
        .collect();
    let header = HeaderValue::from_str(&id).expect("hex digits are a valid header value");
    (id.into(), header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_path_has_its_own_endpoint_label() {
        let doc = openapi();
        for path in doc.paths.paths.keys() {
            assert!(
                ENDPOINTS.contains(&path.as_str()),
                "{path} is not in ENDPOINTS"
            );
        }
        assert_eq!(
            doc.paths.paths.len(),
            ENDPOINTS.len(),
            "ENDPOINTS lists a path the router does not serve"
        );
    }

    #[test]
    fn request_ids_are_32_lowercase_hex_digits() {
        let ids: Vec<Arc<str>> = (0..100)
            .map(|_| {
                let (id, header) = new_request_id();
                assert_eq!(header.to_str().unwrap(), &*id);
                id
            })
            .collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                u128::from_str_radix(id, 16).is_ok() && id.to_lowercase() == **id,
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
