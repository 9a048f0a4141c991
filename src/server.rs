//! Serving connections: the accept loop with its connection cap, hyper-util's HTTP/1.1 and
//! HTTP/2 server over each socket, per-connection timeouts, and graceful shutdown.
//!
//! hyper has one timer for an HTTP/1.1 connection waiting for a request, its header read
//! timeout, which runs from the moment the connection goes idle: it cannot tell an idle
//! kept-alive connection (which should stay open longer than a load balancer's idle timeout)
//! from a client sending its headers a byte at a time (which should be cut off soon). So the
//! socket is wrapped in [`Guarded`], which times both from what it sees: with no request in
//! flight and nothing arriving, the idle timeout; from the first byte of a request head until
//! the request reaches the router, the header read timeout. Request bodies have their own
//! timeout (a tower-http layer, see [`crate::api`]).
//!
//! When hyper cannot read a request head at all, it answers 400, 414 or 431 itself, with an
//! empty body and before any of our layers sees a request; [`Guarded`] sends our error body in
//! place of that answer, recognised by its exact shape (see [`hyper_refusal`]).
//!
//! Shutdown: new connections are no longer accepted, hyper closes idle connections and ends
//! each kept-alive one after its response in flight, a half-sent request head is cut off at
//! once, and what is still running when the grace period is over is told to stop (a streamed
//! batch then writes its last line) and given a moment to say so before the connections close.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::api::AppState;
use crate::config::ServerSettings;
use llm_judge_metrics as m;

/// How long a stopped request has, after the grace period, to write its last words (a streamed
/// batch's shutdown line) before the connections are closed.
const LAST_WORDS: Duration = Duration::from_millis(500);

/// The per-connection limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read: Duration,
    idle: Duration,
}

impl Limits {
    fn of(s: &ServerSettings) -> Limits {
        Limits {
            header_read: Duration::from_secs_f64(s.header_read_timeout_s),
            idle: Duration::from_secs_f64(s.idle_timeout_s),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully within
/// `server.shutdown_grace_s`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let settings = &state.settings.server;
    let limits = Limits::of(settings);
    let grace = Duration::from_secs_f64(settings.shutdown_grace_s);
    let cap = settings.max_connections;
    let open = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    // Cancelled when shutdown starts: connections with no request in flight close at once.
    let closing = CancellationToken::new();
    // Cancelled after the last words: every connection still open is closed.
    let kill = CancellationToken::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Timed by `Guarded` instead (see the module's note).
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        // A connection is accepted only with a place for it: at the cap, new connections wait
        // in the listen backlog (the kernel's queue) until one closes.
        let permit = match open.clone().try_acquire_owned() {
            Ok(p) => {
                if at_cap && open.available_permits() >= cap.div_ceil(10) {
                    at_cap = false;
                    tracing::info!(
                        max_connections = cap,
                        "open connections are back under server.max_connections"
                    );
                }
                p
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    tracing::warn!(
                        max_connections = cap,
                        "open connections reached server.max_connections: new connections wait in the listen backlog until one closes"
                    );
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    p = open.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                }
            }
        };
        let (tcp, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A reply split into two writes must not wait for the client's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = Guarded::new(tcp, limits, activity.clone(), closing.clone());
        let service = TowerToHyperService::new(Counted {
            router: router.clone(),
            activity,
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let kill = kill.clone();
        tokio::spawn(async move {
            let _open = OpenConnection::new(permit);
            tokio::select! {
                served = conn => if let Err(e) = served {
                    // A client that went away, a malformed request, a timeout: nothing to act on.
                    tracing::debug!("connection ended: {e}");
                },
                _ = kill.cancelled() => {}
            }
        });
    }
    drop(listener);
    state.shutting_down.store(true, Ordering::SeqCst);
    closing.cancel();
    let open_now = graceful.count();
    tracing::info!(
        connections = open_now,
        grace_s = grace.as_secs_f64(),
        "shutting down: finishing the requests in flight"
    );
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    if tokio::time::timeout(grace, &mut drained).await.is_err() {
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "the shutdown grace period is over: stopping the requests still running"
        );
        state.stop.cancel();
        let _ = tokio::time::timeout(LAST_WORDS, &mut drained).await;
        kill.cancel();
    }
    Ok(())
}

/// An open connection's place under the cap, and the open-connections gauge.
struct OpenConnection {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        metrics::gauge!(m::HTTP_CONNECTIONS_OPEN).increment(1.0);
        OpenConnection { _permit: permit }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(m::HTTP_CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// What a connection's socket wrapper needs to know of its requests.
#[derive(Default)]
struct Activity {
    /// Requests handed to the router whose answers have not ended.
    in_flight: AtomicUsize,
    /// Counts the times `in_flight` went back to 0: each is the start of an idle spell.
    idle_spells: AtomicU64,
    /// Requests the connection has carried.
    requests: AtomicU64,
    /// The connection speaks HTTP/2 (its bytes between requests are frames, not a request head).
    h2: AtomicBool,
}

impl Activity {
    fn start(self: &Arc<Self>, h2: bool) -> InFlight {
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// A request in flight on its connection, until its answer has ended or been dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The spell is counted first, so a reader that sees no request in flight sees it.
        self.0.idle_spells.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router, counting the connection's requests in flight.
#[derive(Clone)]
struct Counted {
    router: Router,
    activity: Arc<Activity>,
}

impl tower::Service<http::Request<hyper::body::Incoming>> for Counted {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let guard = self.activity.start(req.version() == http::Version::HTTP_2);
        let served = tower::ServiceExt::oneshot(self.router.clone(), req.map(Body::new));
        Box::pin(async move {
            let resp = served.await?;
            Ok(resp.map(|body| {
                Body::new(Tracked {
                    body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// An answer's body holding its request's place in flight until it is dropped.
struct Tracked {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Where a connection with no request in flight is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wait {
    /// Nothing arrived since the idle spell (numbered) began: the idle timeout runs.
    Idle(u64),
    /// A request head is arriving: the header read timeout runs from its first byte.
    Head(u64),
    /// A request is in flight: no timer here.
    Busy,
}

/// An accepted socket that closes its connection when it waits too long for a request (see
/// the module's note), and at once on shutdown when no request is in flight or arriving whole.
struct Guarded {
    tcp: TcpStream,
    limits: Limits,
    activity: Arc<Activity>,
    wait: Wait,
    timer: Pin<Box<Sleep>>,
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Our answer in place of one hyper wrote itself: what is left to send of it, and how many
    /// of hyper's bytes it stands for.
    rewrite: Option<(Vec<u8>, usize)>,
}

impl Guarded {
    fn new(
        tcp: TcpStream,
        limits: Limits,
        activity: Arc<Activity>,
        closing: CancellationToken,
    ) -> Self {
        Guarded {
            tcp,
            limits,
            activity,
            wait: Wait::Busy,
            timer: Box::pin(tokio::time::sleep(limits.idle)),
            closing: Box::pin(closing.cancelled_owned()),
            rewrite: None,
        }
    }

    /// Brings the wait up to date with the connection's requests; the timer is re-armed when a
    /// new idle spell starts.
    fn refresh(&mut self) -> Wait {
        if self.activity.in_flight.load(Ordering::Acquire) > 0 {
            self.wait = Wait::Busy;
            return Wait::Busy;
        }
        let spell = self.activity.idle_spells.load(Ordering::Acquire);
        match self.wait {
            Wait::Idle(s) | Wait::Head(s) if s == spell => {}
            _ => {
                self.wait = Wait::Idle(spell);
                self.timer.as_mut().reset(Instant::now() + self.limits.idle);
            }
        }
        self.wait
    }

    /// The connection's best-effort last answer to a request head that took too long.
    fn answer_head_timeout(&self) {
        const BODY: &str = r#"{"error":{"code":"header_timeout","message":"the request headers took longer than server.header_read_timeout_s to arrive"}}"#;
        let answer = format!(
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        let _ = self.tcp.try_write(answer.as_bytes());
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wait = this.refresh();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if wait == Wait::Busy {
            return read;
        }
        match read {
            Poll::Ready(Ok(())) => {
                if let Wait::Idle(spell) = wait
                    && buf.filled().len() > before
                    && !this.activity.h2.load(Ordering::Relaxed)
                {
                    this.wait = Wait::Head(spell);
                    this.timer
                        .as_mut()
                        .reset(Instant::now() + this.limits.header_read);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        // Nothing to read: end the connection (an end of input to hyper) when it has waited
        // too long, or when shutting down and no request is in flight. A connection that has
        // carried requests and sits idle is closed by hyper's own graceful shutdown, which
        // also finishes writing its last answer first.
        let closing = this.closing.as_mut().poll(cx).is_ready()
            && (matches!(this.wait, Wait::Head(_))
                || this.activity.requests.load(Ordering::Relaxed) == 0);
        let expired = this.timer.as_mut().poll(cx).is_ready();
        if closing || expired {
            if expired && let Wait::Head(_) = this.wait {
                tracing::debug!("a request head took longer than server.header_read_timeout_s");
                this.answer_head_timeout();
            }
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl Guarded {
    /// Writes `bufs`, unless they are an answer hyper made itself: then ours goes instead.
    fn write_or_rewrite(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_none()
            && self.activity.in_flight.load(Ordering::Acquire) == 0
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(answer) = hyper_refusal(first)
        {
            self.rewrite = Some((answer, first.len()));
        }
        let Some((left, stands_for)) = &mut self.rewrite else {
            return Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        };
        while !left.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.tcp).poll_write(cx, left))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            left.drain(..n);
        }
        // Hyper's answer counts as written once, then writes go through (it closes the
        // connection after it, so there are none).
        let written = std::mem::take(stands_for);
        Poll::Ready(Ok(written))
    }
}

/// Our answer, with the error body, for an answer hyper writes itself when it cannot read a
/// request head (malformed, conflicting `Content-Length`, headers over its limit, a target too
/// long); such an answer is always `connection: close`, `content-length: 0` and a date.
fn hyper_refusal(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let (code, message, status) = match rest.get(..4)? {
        b"400 " => (
            "malformed_request",
            "the request is not valid HTTP/1.1: a malformed request line or header, or conflicting Content-Length headers",
            "400 Bad Request",
        ),
        b"431 " => (
            "headers_too_large",
            "the request's headers are over the server's limit (about 400 KB, at most 100 headers)",
            "431 Request Header Fields Too Large",
        ),
        b"414 " => (
            "uri_too_long",
            "the request's target is over the server's limit",
            "414 URI Too Long",
        ),
        _ => return None,
    };
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let headers = &rest[line_end + 2..];
    let ours = headers.starts_with(b"connection: close\r\ncontent-length: 0\r\ndate: ")
        && headers.ends_with(b"\r\n\r\n")
        && headers.windows(2).filter(|w| w == b"\r\n").count() == 4;
    if !ours {
        return None;
    }
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_or_rewrite(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_or_rewrite(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
