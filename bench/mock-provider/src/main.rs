//! `llm-judge-mock`: a small, fast stand-in LLM provider for benchmarking llm-judge.
//!
//! It speaks OpenAI Chat Completions (`POST /v1/chat/completions`, `POST /chat/completions`) and
//! the Anthropic Messages API (`POST /v1/messages`) on a loopback address, answers with realistic
//! bodies after a configurable latency, injects a configurable mix of faults, and counts what it
//! did (`GET /stats`, `POST /stats/reset`).
//!
//! It is built to stay out of the measurement: HTTP/1.1 with keep-alive (or h2c, HTTP/2 with
//! prior knowledge, when the client opens with its preface) on hyper, TCP_NODELAY on every
//! connection, a multi-threaded runtime, response bodies assembled from pre-rendered pieces, and
//! counters that are plain atomics.

mod body;
mod latency;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

use body::{Api, Canned};
use latency::LatencyDist;

/// jemalloc: cheaper small allocations across threads, so the stand-in stays out of the way.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const AFTER_HELP: &str = "\
LATENCY
  --latency-ms MS          every answer after MS milliseconds (default 0)
  --latency-dist SPEC      a distribution, in milliseconds, never below 0:
                             fixed:MS          always MS
                             uniform:LO:HI     uniform between LO and HI
                             normal:MEAN:SD    normal (Gaussian), clipped at 0
                             exp:MEAN          exponential with that mean
  The latency applies before every outcome except `timeout` (which holds the connection for
  --hang-s instead).

FAULTS (percent of chat calls, each 0-100, together at most 100; the rest succeed)
  --fail-429 P        429 with `retry-after: --retry-after` and a rate-limit error body
  --fail-500 P        500 server error          --fail-503 P    503 service unavailable
  --fail-529 P        529 overloaded            --fail-malformed P   200 with truncated JSON
  --fail-timeout P    no answer: the connection is held for --hang-s, then closed
  --fail-reset P      the connection is closed (RST) without a response
  Error bodies follow the API called: {\"error\":{...}} for OpenAI paths,
  {\"type\":\"error\",\"error\":{...}} for /v1/messages.

ENDPOINTS
  POST /v1/chat/completions, POST /chat/completions   OpenAI Chat Completions
  POST /v1/messages                                   Anthropic Messages
  GET  /stats        {\"calls\",\"max_in_flight\",\"in_flight\",\"by_outcome\":{...},\"connections\",\"open_connections\"}
  POST /stats/reset  zero the counters (max_in_flight restarts from the current in_flight)
  GET  /healthz      ok

The bound address is printed on stdout (`listening on 127.0.0.1:PORT`) and, with --port-file,
written to that file. Only loopback addresses are accepted.

EXAMPLE
  llm-judge-mock --listen 127.0.0.1:9000 --text 'Verdict: 1' --latency-dist normal:100:20 \\
      --fail-429 5 --retry-after 1 --fail-500 2";

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "llm-judge-mock",
    version,
    about = "A fast stand-in OpenAI/Anthropic provider for benchmarking llm-judge",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The answer text of every successful completion.
    #[arg(long, default_value = "Verdict: 1")]
    text: String,
    /// Prompt (input) tokens reported in `usage`.
    #[arg(long, default_value_t = 150)]
    prompt_tokens: u64,
    /// Completion (output) tokens reported in `usage`.
    #[arg(long, default_value_t = 4)]
    completion_tokens: u64,
    /// Fixed latency in milliseconds (shorthand for --latency-dist fixed:MS).
    #[arg(long, conflicts_with = "latency_dist")]
    latency_ms: Option<f64>,
    /// Latency distribution: fixed:MS, uniform:LO:HI, normal:MEAN:SD or exp:MEAN (milliseconds).
    #[arg(long, value_parser = LatencyDist::parse)]
    latency_dist: Option<LatencyDist>,
    /// Percent of calls answered 429 (with retry-after).
    #[arg(long, default_value_t = 0.0)]
    fail_429: f64,
    /// Percent of calls answered 500.
    #[arg(long, default_value_t = 0.0)]
    fail_500: f64,
    /// Percent of calls answered 503.
    #[arg(long, default_value_t = 0.0)]
    fail_503: f64,
    /// Percent of calls answered 529 (overloaded).
    #[arg(long, default_value_t = 0.0)]
    fail_529: f64,
    /// Percent of calls never answered (connection held for --hang-s).
    #[arg(long, default_value_t = 0.0)]
    fail_timeout: f64,
    /// Percent of calls whose connection is reset without a response.
    #[arg(long, default_value_t = 0.0)]
    fail_reset: f64,
    /// Percent of calls answered 200 with broken JSON.
    #[arg(long, default_value_t = 0.0)]
    fail_malformed: f64,
    /// The `retry-after` header value (seconds) sent with a 429.
    #[arg(long, default_value = "1")]
    retry_after: String,
    /// How long a `timeout` fault holds the connection, in seconds, before closing it.
    #[arg(long, default_value_t = 300.0)]
    hang_s: f64,
    /// Runtime worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Listen backlog (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
    /// Write the bound port to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
}

/// What one chat call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    E429,
    E500,
    E503,
    E529,
    Timeout,
    Reset,
    Malformed,
}

const OUTCOMES: [Outcome; 8] = [
    Outcome::Ok,
    Outcome::E429,
    Outcome::E500,
    Outcome::E503,
    Outcome::E529,
    Outcome::Timeout,
    Outcome::Reset,
    Outcome::Malformed,
];

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::E429 => "429",
            Outcome::E500 => "500",
            Outcome::E503 => "503",
            Outcome::E529 => "529",
            Outcome::Timeout => "timeout",
            Outcome::Reset => "reset",
            Outcome::Malformed => "malformed",
        }
    }
}

/// The fault mix as cumulative thresholds over [0, 100).
struct FaultMix {
    thresholds: Vec<(f64, Outcome)>,
}

impl FaultMix {
    fn new(cli: &Cli) -> Result<FaultMix, String> {
        let parts = [
            (cli.fail_429, Outcome::E429, "--fail-429"),
            (cli.fail_500, Outcome::E500, "--fail-500"),
            (cli.fail_503, Outcome::E503, "--fail-503"),
            (cli.fail_529, Outcome::E529, "--fail-529"),
            (cli.fail_timeout, Outcome::Timeout, "--fail-timeout"),
            (cli.fail_reset, Outcome::Reset, "--fail-reset"),
            (cli.fail_malformed, Outcome::Malformed, "--fail-malformed"),
        ];
        let mut acc = 0.0;
        let mut thresholds = Vec::new();
        for (p, o, flag) in parts {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{flag} must be a percentage from 0 to 100"));
            }
            if p > 0.0 {
                acc += p;
                thresholds.push((acc, o));
            }
        }
        if acc > 100.0 + 1e-9 {
            return Err(format!(
                "the --fail-* percentages add up to {acc}, over 100"
            ));
        }
        Ok(FaultMix { thresholds })
    }

    fn pick(&self) -> Outcome {
        if self.thresholds.is_empty() {
            return Outcome::Ok;
        }
        let r = rand::random::<f64>() * 100.0;
        self.thresholds
            .iter()
            .find(|(t, _)| r < *t)
            .map_or(Outcome::Ok, |(_, o)| *o)
    }
}

/// Counters behind `/stats`.
#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
    by_outcome: [AtomicU64; 8],
    connections: AtomicU64,
    open_connections: AtomicI64,
}

impl Stats {
    fn render(&self) -> String {
        let mut by = String::new();
        for (i, o) in OUTCOMES.iter().enumerate() {
            if i > 0 {
                by.push(',');
            }
            by.push_str(&format!(
                "\"{}\":{}",
                o.label(),
                self.by_outcome[i].load(Ordering::Relaxed)
            ));
        }
        format!(
            "{{\"calls\":{},\"max_in_flight\":{},\"in_flight\":{},\"by_outcome\":{{{by}}},\"connections\":{},\"open_connections\":{}}}",
            self.calls.load(Ordering::Relaxed),
            self.max_in_flight.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.open_connections.load(Ordering::Relaxed),
        )
    }

    fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        for c in &self.by_outcome {
            c.store(0, Ordering::Relaxed);
        }
        self.connections.store(0, Ordering::Relaxed);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Counts a call in flight for as long as it lives (also when the client goes away).
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn new(stats: &'a Stats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts an open connection.
struct OpenConn(Arc<Shared>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0
            .stats
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything the handlers share.
struct Shared {
    canned: Canned,
    latency: LatencyDist,
    faults: FaultMix,
    retry_after: HeaderValue,
    hang: Duration,
    stats: Stats,
}

/// The error that makes hyper drop a connection without answering.
fn drop_connection(why: &'static str) -> std::io::Error {
    std::io::Error::other(why)
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle(
    shared: Arc<Shared>,
    fd: RawFd,
    req: Request<Incoming>,
) -> Result<Resp, std::io::Error> {
    let api = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => Api::OpenAi,
        (&Method::POST, "/v1/messages") => Api::Anthropic,
        (&Method::GET, "/stats") => {
            return Ok(json_response(StatusCode::OK, shared.stats.render()));
        }
        (&Method::POST, "/stats/reset") => {
            shared.stats.reset();
            return Ok(json_response(StatusCode::OK, shared.stats.render()));
        }
        (&Method::GET, "/healthz") => return Ok(json_response(StatusCode::OK, "\"ok\"")),
        _ => {
            return Ok(json_response(
                StatusCode::NOT_FOUND,
                r#"{"error":{"message":"no such endpoint on the mock provider","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
            ));
        }
    };
    let stats = &shared.stats;
    let _in_flight = InFlight::new(stats);
    stats.calls.fetch_add(1, Ordering::Relaxed);
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|_| drop_connection("request body unreadable"))?
        .to_bytes();
    let outcome = shared.faults.pick();
    let index = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
    stats.by_outcome[index].fetch_add(1, Ordering::Relaxed);
    if outcome == Outcome::Timeout {
        tokio::time::sleep(shared.hang).await;
        return Err(drop_connection("timeout fault: held, now closed"));
    }
    let delay = shared.latency.sample();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = match outcome {
        Outcome::Reset => {
            // SO_LINGER 0: the close that follows sends RST instead of FIN. The connection (and
            // so the descriptor) is alive while this request is being served.
            let sock = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
            return Err(drop_connection("reset fault"));
        }
        Outcome::Ok | Outcome::Malformed | Outcome::Timeout => StatusCode::OK,
        Outcome::E429 => StatusCode::TOO_MANY_REQUESTS,
        Outcome::E500 => StatusCode::INTERNAL_SERVER_ERROR,
        Outcome::E503 => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::E529 => StatusCode::from_u16(529).expect("529 is a valid status"),
    };
    let bytes: Bytes = match outcome {
        Outcome::Ok => shared.canned.success(api, &body).into(),
        Outcome::Malformed => shared.canned.malformed(api, &body).into(),
        other => Bytes::from_static(shared.canned.error(api, other.label())),
    };
    let mut resp = json_response(status, bytes);
    if outcome == Outcome::E429 {
        resp.headers_mut()
            .insert("retry-after", shared.retry_after.clone());
    }
    Ok(resp)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm-judge-mock: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if !cli.listen.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address; the mock only listens on loopback",
            cli.listen
        ));
    }
    let faults = FaultMix::new(&cli)?;
    let latency = match (cli.latency_ms, cli.latency_dist.clone()) {
        (Some(ms), _) => LatencyDist::parse(&format!("fixed:{ms}"))?,
        (None, Some(d)) => d,
        (None, None) => LatencyDist::Fixed(0.0),
    };
    let retry_after = HeaderValue::from_str(cli.retry_after.trim())
        .map_err(|_| "--retry-after is not a valid header value".to_string())?;
    if !cli.hang_s.is_finite() || cli.hang_s < 0.0 {
        return Err("--hang-s must be a non-negative number".into());
    }
    let shared = Arc::new(Shared {
        canned: Canned::new(&cli.text, cli.prompt_tokens, cli.completion_tokens),
        latency,
        faults,
        retry_after,
        hang: Duration::from_secs_f64(cli.hang_s),
        stats: Stats::default(),
    });
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(serve(cli, shared))
}

async fn serve(cli: Cli, shared: Arc<Shared>) -> Result<(), String> {
    let socket = match cli.listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
    socket
        .bind(cli.listen)
        .map_err(|e| format!("cannot bind {}: {e}", cli.listen))?;
    let listener = socket.listen(cli.backlog).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(path) = &cli.port_file {
        std::fs::write(path, format!("{}\n", addr.port()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("listening on {addr}");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    eprintln!("llm-judge-mock: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        let conn_shared = shared.clone();
        tokio::spawn(async move {
            let _open = OpenConn(conn_shared.clone());
            let service = hyper::service::service_fn(move |req| {
                let s = conn_shared.clone();
                async move { handle(s, fd, req).await }
            });
            // HTTP/1.1, or HTTP/2 when the client opens with the HTTP/2 preface (h2c with
            // prior knowledge), with no cap on concurrent streams and receive windows large
            // enough that thousands of request bodies at once are not split into small DATA
            // frames (which h2's flood guard answers with GOAWAY).
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().keep_alive(true).header_read_timeout(None);
            builder
                .http2()
                .max_concurrent_streams(None)
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(64 << 20);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
