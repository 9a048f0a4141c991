//! The checks every request passes before its handler, each a tower-http piece with our error
//! body: request ids, the `Origin` allow-list and CORS, client tokens, the refusal of new work
//! while draining, and request body limits and timeouts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimit;
use tower_http::request_id::{MakeRequestId, RequestId};
use tower_http::timeout::{RequestBodyDeadline, RequestBodyTimeout};

use super::budget::daily_refusal;
use super::error::ApiError;
use super::tenant::Tenant;
use crate::config::Secret;
use llm_judge_work::budget::daily::{ClientId, DailyBudgets, client_name};

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Paths that stay open without a client token, and while draining.
pub(crate) fn is_open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// Removes a client's `x-request-id` that is not usable as ours (1 to 128 visible ASCII
/// characters), so that the request gets a new one.
pub(crate) fn drop_unusable_request_id(mut req: Request) -> Request {
    let usable = req.headers().get(&X_REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
    });
    if !usable {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

/// Makes the ids of requests that bring none: 32 lowercase hex digits.
#[derive(Clone, Copy, Default)]
pub(crate) struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        Some(RequestId::new(new_request_id()))
    }
}

/// A new request id's header value.
pub(crate) fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = rand::random::<u128>();
    let id: String = (0..32)
        .rev()
        .map(|i| HEX[((v >> (i * 4)) & 0xf) as usize] as char)
        .collect();
    HeaderValue::from_str(&id).expect("hex digits are a valid header value")
}

/// Refuses (403) a request that carries an `Origin` header not in `allowed`: a web page on
/// another site (or a site resolving to this host) must not spend the provider keys through a
/// visitor's browser. Requests without `Origin` (curl, SDKs, servers) are not browsers' and pass.
///
/// Stricter than tower-http's `CsrfLayer`, which lets through an `Origin` naming the request's
/// own `Host`: a page whose name is made to resolve to this service's address sends exactly that.
// The refusal is a whole response: the signature tower-http's `ValidateRequest` asks for.
#[allow(clippy::result_large_err)]
pub(crate) fn origin_check(
    allowed: Arc<[HeaderValue]>,
) -> impl FnMut(&mut Request) -> Result<(), Response> + Clone {
    move |req: &mut Request| {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        if allowed.iter().any(|a| a == origin) {
            return Ok(());
        }
        let shown = origin.to_str().unwrap_or("(not text)");
        Err(ApiError::OriginNotAllowed(format!(
            "requests from web pages at {shown:?} are refused; to let a page there call this service, add it to [server] allowed_origins (LLM_JUDGE__SERVER__ALLOWED_ORIGINS)"
        ))
        .into_response())
    }
}

/// CORS headers, and answers to preflight requests, for the allowed origins only.
pub(crate) fn cors(allowed: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            X_REQUEST_ID,
        ])
        .expose_headers([X_REQUEST_ID])
        .max_age(Duration::from_secs(600))
}

/// The configured tokens, each with its name (see [`client_name`]): client tokens first, in
/// their configured order (a client's [`ClientId`] is its place), then admin tokens.
pub(crate) struct Tokens {
    tokens: Vec<(Secret, Arc<str>)>,
    clients: usize,
}

impl Tokens {
    pub(crate) fn new(clients: &[Secret], admins: &[Secret]) -> Tokens {
        let named = |t: &Secret| (t.clone(), Arc::from(client_name(t.expose())));
        Tokens {
            tokens: clients.iter().chain(admins).map(named).collect(),
            clients: clients.len(),
        }
    }
}

/// Requires a configured token (a client's or an admin's) as `Authorization: Bearer <token>`
/// (compared in constant time), except on the open paths, and sets the request's [`Tenant`]
/// (and, for a client token, its [`ClientId`]); with no tokens configured, everything passes.
// The refusal is a whole response: the signature tower-http's `ValidateRequest` asks for.
#[allow(clippy::result_large_err)]
pub(crate) fn client_auth(
    tokens: Arc<Tokens>,
) -> impl FnMut(&mut Request) -> Result<(), Response> + Clone {
    move |req: &mut Request| {
        if tokens.tokens.is_empty() || is_open_path(req.uri().path()) {
            return Ok(());
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
        // Every token is compared, whichever matches, so the time says nothing of which.
        let known = given.and_then(|g| {
            tokens
                .tokens
                .iter()
                .enumerate()
                .fold(None, |found, (i, (t, _))| {
                    if bool::from(t.expose().as_bytes().ct_eq(g.as_bytes())) {
                        Some(i)
                    } else {
                        found
                    }
                })
        });
        if let Some(i) = known {
            let name = tokens.tokens[i].1.clone();
            if i < tokens.clients {
                req.extensions_mut().insert(ClientId(i));
                req.extensions_mut().insert(Tenant::Client(name));
            } else {
                req.extensions_mut().insert(Tenant::Admin(name));
            }
            return Ok(());
        }
        Err(refusal(
            ApiError::Unauthorized("send a client token as Authorization: Bearer <token>".into()),
            (header::WWW_AUTHENTICATE, "Bearer"),
        ))
    }
}

/// Refuses (429) new work from a client token whose daily budget is spent: judgments, batches,
/// jobs, chat completions and calibration runs. Reading results and state goes on.
// The refusal is a whole response: the signature tower-http's `ValidateRequest` asks for.
#[allow(clippy::result_large_err)]
pub(crate) fn daily_budget(
    budgets: Option<Arc<DailyBudgets>>,
) -> impl FnMut(&mut Request) -> Result<(), Response> + Clone {
    move |req: &mut Request| {
        let (Some(budgets), Some(client)) = (&budgets, req.extensions().get::<ClientId>()) else {
            return Ok(());
        };
        let path = req.uri().path();
        let spends = req.method() == Method::POST
            && (path.starts_with("/v1/judge/")
                || matches!(path, "/v1/jobs" | "/v1/chat/completions" | "/v1/calibrate"));
        let today = budgets.today(*client);
        if spends && today.is_spent() {
            let spent = today.spent();
            return Err(daily_refusal(&format!(
                "the daily budget of this client token is spent (${:.6} and {} tokens today)",
                spent.cost_usd, spent.tokens
            )));
        }
        Ok(())
    }
}

/// While shutting down, new work is refused (in-flight requests go on); probes still answer.
// The refusal is a whole response: the signature tower-http's `ValidateRequest` asks for.
#[allow(clippy::result_large_err)]
pub(crate) fn refuse_while_draining(
    shutting_down: Arc<AtomicBool>,
) -> impl FnMut(&mut Request) -> Result<(), Response> + Clone {
    move |req: &mut Request| {
        if !shutting_down.load(Ordering::Relaxed) || is_open_path(req.uri().path()) {
            return Ok(());
        }
        Err(refusal(
            ApiError::ShuttingDown("the server is shutting down; retry on another instance".into()),
            (header::CONNECTION, "close"),
        ))
    }
}

/// A request turned away before its handler: the error body and one header that goes with it.
fn refusal(error: ApiError, (name, value): (HeaderName, &'static str)) -> Response {
    let mut resp = error.into_response();
    resp.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    resp
}

/// A request whose body the decompression layer reads: as a plain body again, for the layers
/// and handlers after it.
pub(crate) fn decompressed(
    req: Request<tower_http::decompression::DecompressionBody<Body>>,
) -> Request {
    req.map(Body::new)
}

/// The decompression layer's answer as a plain response; its own refusal of an encoding it
/// cannot read (a bare 415) in the service's error shape.
pub(crate) fn encoding_refusal(
    resp: http::Response<tower_http::body::UnsyncBoxBody<bytes::Bytes, axum::BoxError>>,
) -> Response {
    let json = resp.headers().get(header::CONTENT_TYPE)
        == Some(&HeaderValue::from_static("application/json"));
    if resp.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE && !json {
        return ApiError::UnsupportedEncoding(
            "the body's Content-Encoding cannot be read: send it uncompressed, or with \
             Content-Encoding gzip, deflate or br"
                .into(),
        )
        .into_response();
    }
    resp.map(Body::new)
}

/// Bounds request bodies: every body to `max_bytes` (413) and `timeout` in all (408), whatever
/// its declared type, except a job upload (`POST /v1/jobs` as `application/x-ndjson`), which may
/// be far larger and is bounded by `jobs.max_items` instead, and by `timeout` between two of its
/// chunks.
#[derive(Clone, Copy)]
pub(crate) struct BodyBoundsLayer {
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl<S: Clone> tower::Layer<S> for BodyBoundsLayer {
    type Service = BodyBounds<S>;

    fn layer(&self, inner: S) -> BodyBounds<S> {
        BodyBounds {
            json: RequestBodyDeadline::new(
                RequestBodyLimit::new(inner.clone(), self.max_bytes),
                self.timeout,
            ),
            ndjson: RequestBodyTimeout::new(inner, self.timeout),
        }
    }
}

/// See [`BodyBoundsLayer`].
#[derive(Clone)]
pub(crate) struct BodyBounds<S> {
    json: RequestBodyDeadline<RequestBodyLimit<S>>,
    ndjson: RequestBodyTimeout<S>,
}

type Served = Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;
type BoundedNdjson = tower_http::timeout::TimeoutBody<Body>;
type BoundedJson = tower_http::body::Limited<tower_http::timeout::DeadlineBody<Body>>;

impl<S, R1, R2> tower::Service<Request> for BodyBounds<S>
where
    S: tower::Service<
            Request<BoundedNdjson>,
            Response = http::Response<R1>,
            Error = std::convert::Infallible,
        > + tower::Service<
            Request<BoundedJson>,
            Response = http::Response<R2>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    <S as tower::Service<Request<BoundedNdjson>>>::Future: Send + 'static,
    <S as tower::Service<Request<BoundedJson>>>::Future: Send + 'static,
    R1: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R1::Error: Into<axum::BoxError>,
    R2: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R2::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Served;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both inner services are the router, which is always ready; each is readied in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Served {
        use tower::ServiceExt;
        if super::extract::is_job_upload(&req) {
            let streamed = self.ndjson.clone().oneshot(req);
            return Box::pin(async move { Ok(streamed.await?.map(Body::new)) });
        }
        let limited = self.json.clone().oneshot(req);
        Box::pin(async move {
            let resp = limited.await?;
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE
                && resp.headers().get(header::CONTENT_TYPE)
                    != Some(&HeaderValue::from_static("application/json"))
            {
                // The limit's own answer to a declared length over it.
                return Ok(super::extract::body_too_large().into_response());
            }
            Ok(resp.map(Body::new))
        })
    }
}
