//! The access line and request metrics: one `request done` line per request, written when the
//! last byte of its answer is (a streamed batch's too), or with `complete=false` when the
//! answer is cut off; and `llm_judge_http_requests_total` / `_request_duration_seconds`.
//!
//! A layer of its own rather than tower-http's `TraceLayer` callbacks: those see the request,
//! the response head and the end of the body separately, so the line's fields (id, method,
//! endpoint, status) cannot reach the end of a streamed body without an enabled span per
//! request (which at the default level cost about 5% of the service's CPU per request), and no
//! callback sees an answer dropped before its end. `TraceLayer` makes the request's debug span.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::response::Response;

use llm_judge_metrics as m;

/// Makes [`AccessLog`] services; the metrics' handles are shared by all of them.
#[derive(Clone)]
pub struct AccessLogLayer {
    metrics: Arc<HttpMetrics>,
}

impl Default for AccessLogLayer {
    fn default() -> Self {
        AccessLogLayer {
            metrics: Arc::new(HttpMetrics::new()),
        }
    }
}

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Writes each request's access line and records its metrics; lines logged while serving it
/// find its id through [`current_request_id`].
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
}

impl<S, B> tower::Service<Request> for AccessLog<S>
where
    S: tower::Service<Request, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let endpoint = endpoint_label(&req);
        // The request-id layers outside this one have given every request a usable id.
        let request_id: Arc<str> = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .into();
        let method = req.method().clone();
        let metrics = self.metrics.clone();
        let served = REQUEST_ID.scope(request_id.clone(), self.inner.call(req));
        Box::pin(async move {
            let resp = served.await?;
            let done = Done {
                metrics,
                request_id,
                method,
                endpoint,
                status: resp.status().as_u16(),
                started,
            };
            if http_body::Body::size_hint(resp.body()).exact().is_some() {
                done.report(true);
                return Ok(resp.map(Body::new));
            }
            // A streamed answer (a batch's results, an NDJSON stream) is reported when its
            // last byte is written, or when it is cut off.
            Ok(resp.map(|body| {
                Body::new(Reported {
                    body: Body::new(body),
                    done: Some(done),
                })
            }))
        })
    }
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
        // Three decimals (microseconds) are all a log line needs.
        let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
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

/// Every path the service answers on, as the `endpoint` label: the route's template.
pub(crate) const ENDPOINTS: &[&str] = &[
    "/v1/judge/binary",
    "/v1/judge/score",
    "/v1/judge/compare",
    "/v1/judge/batch",
    "/v1/calibrate",
    "/v1/calibrate/runs",
    "/v1/jobs",
    "/v1/jobs/{id}",
    "/v1/jobs/{id}/results",
    "/v1/jobs/{id}/events",
    "/v1/jobs/{id}/retry",
    "/v1/providers",
    "/v1/chat/completions",
    "/v1/models",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

/// The `endpoint` label of a request: its route's template, or `unmatched` for a path that is
/// no route (so that scanners cannot make a label per path they try).
pub(crate) fn endpoint_label(req: &Request) -> &'static str {
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
