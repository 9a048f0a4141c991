//! `llm-judge-mock`: a small, fast stand-in LLM provider for benchmarking llm-judge.
//!
//! It speaks OpenAI Chat Completions (`POST /v1/chat/completions`, `POST /chat/completions`) and
//! the Anthropic Messages API (`POST /v1/messages`) on a loopback address, answers with realistic
//! bodies after a configurable latency, injects a configurable mix of faults, and counts what it
//! did (`GET /stats`, `POST /stats/reset`).
//!
//! It also speaks both providers' batch APIs ([`batch`]): OpenAI's Files and Batch API
//! (`/v1/files`, `/v1/batches`, also without `/v1`) and Anthropic's Message Batches
//! (`/v1/messages/batches`), with a configurable completion delay, failure and expiry shares
//! drawn from a seed, cancels, and results in the providers' JSONL formats. Their state is kept
//! in memory only: a restart loses every file and batch. With `--cached-tokens`, `usage` reports
//! cached prompt tokens on online and batch answers alike ([`cache`] has the rule).
//!
//! It is built to stay out of the measurement, since it shares the benchmark machine's CPUs with
//! the service and the load generator: HTTP/1.1 with keep-alive on its own small server
//! ([`http1`]: heads parsed in place, each answer in one write), h2c (HTTP/2 with prior
//! knowledge) on its own small server on the `h2` crate when a client opens with the HTTP/2
//! preface ([`h2c`]: a connection's streams served inside its one task), TCP_NODELAY on every
//! connection, a multi-threaded runtime, response bodies assembled from pre-rendered pieces, and
//! counters that are plain atomics. Latencies are kept by its own timer thread ([`timer`]) rather
//! than by tokio's timer, which rounds up to whole milliseconds.
//!
//! `/stats` also reports, over the chat calls since the last reset, the mean time from a
//! request's head to its answer (`mean_answer_ms`: the configured latency plus the stand-in's
//! own timer and scheduling delay) and the mean pause on a connection between an answer and the
//! next request (`mean_gap_ms`: the client's turnaround plus both network hops).

mod answers;
mod api;
mod batch;
mod body;
mod cache;
mod h2c;
mod http1;
mod latency;
mod timer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::HeaderValue;

use answers::Answers;
use api::Api;
use batch::BatchConfig;
use body::Canned;
use cache::PromptCache;
use latency::LatencyDist;
use timer::Timer;

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

BATCHES (OpenAI's Batch API and Anthropic's Message Batches; never faulted by --fail-*)
  --batch-delay-ms MS        creation to end of a batch (default 1000); requests are processed
                             one after another over it, so polls see counts grow. OpenAI:
                             validating for the first tenth, finalizing for the last tenth
  --batch-fail-pct P         that share of each batch's requests fails (exactly, rounded): OpenAI
                             error file with status 500, Anthropic `errored` (api_error)
  --batch-expire-pct P       that share expires: Anthropic `expired` results; OpenAI (where a
                             request only expires with its batch) ends the batch `expired`, those
                             requests in the error file with code batch_expired
  --batch-expire-after-ms MS the whole batch expires then if not done: requests not processed
                             by then expire (expires_at says so)
  --batch-seed N             draws which requests fail or expire, the processing order and the
                             order of results (default 0: the same on every run)
  --batch-create-stall-ms MS the answer to a batch's creation comes MS after the batch is made
                             (default 0): longer than the client waits, an answer lost on the way
  A cancel takes a tenth of the delay (cancelling/canceling, then cancelled/ended). State is in
  memory only: a restart of the stand-in loses every file and batch.

PROMPT CACHE
  --cached-tokens N   usage reports N cached prompt tokens (at most --prompt-tokens): OpenAI
                      prompt_tokens_details.cached_tokens; Anthropic cache_creation_input_tokens
                      or cache_read_input_tokens, with input_tokens the rest. A request's prefix
                      is its model, its system prompt (Anthropic) and every message but the
                      last; the first request of a prefix writes the cache (OpenAI: 0 cached),
                      later ones read it. Anthropic caches only requests with a cache_control
                      marker. Online and batch calls share the cache; POST /stats/reset empties
                      it.

RATE LIMIT
  --limit-requests N  a provider's limit: a chat call arriving when N calls have already arrived
                      in the last --window-ms (default 1000) milliseconds is answered 429 (with
                      retry-after, as --fail-429); refused calls count towards the window, as
                      providers count them. /stats then has \"window\": {limit, window_ms,
                      busiest (the most calls that arrived in any one window), over_limit (calls
                      refused), first_call_ms, last_call_ms (arrival times since the stand-in
                      started)}; POST /stats/reset clears it.

ENDPOINTS
  POST /v1/chat/completions, POST /chat/completions   OpenAI Chat Completions
  POST /v1/messages                                   Anthropic Messages
  OpenAI Files and Batch API (each also without /v1):
  POST /v1/files (multipart: purpose, file)  GET /v1/files  GET|DELETE /v1/files/{id}
  GET  /v1/files/{id}/content
  POST /v1/batches {input_file_id, endpoint: /v1/chat/completions, completion_window: 24h,
                    metadata?}  GET /v1/batches (limit, after)  GET /v1/batches/{id}
  POST /v1/batches/{id}/cancel
  Anthropic Message Batches:
  POST /v1/messages/batches {requests:[{custom_id, params}]}  GET /v1/messages/batches
  GET|DELETE /v1/messages/batches/{id}  POST /v1/messages/batches/{id}/cancel
  GET  /v1/messages/batches/{id}/results (the results_url: JSONL, in shuffled order)
  GET  /stats        {\"calls\",\"max_in_flight\",\"in_flight\",\"by_outcome\":{...},\"connections\",
                      \"open_connections\",\"mean_answer_ms\",\"mean_gap_ms\",\"gaps\",
                      \"batches\":{\"openai\":{...},\"anthropic\":{...}}}
                     mean_answer_ms: request head to answer; mean_gap_ms: answer to the next
                     request on the same connection (the client's turnaround); batches: per API,
                     files_uploaded (OpenAI), batches_created, polls, lists, cancels,
                     results_fetched (OpenAI: file contents read), refused (4xx answers)
  POST /stats/reset  zero the counters (max_in_flight restarts from the current in_flight) and
                     empty the prompt cache; files and batches stay
  GET  /healthz      ok
  The stand-in checks no API key on any endpoint.

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
    /// Milliseconds from the creation of a batch to its end.
    #[arg(long, default_value_t = 1000)]
    batch_delay_ms: u64,
    /// Percent of each batch's requests that fail.
    #[arg(long, default_value_t = 0.0)]
    batch_fail_pct: f64,
    /// Percent of each batch's requests that expire.
    #[arg(long, default_value_t = 0.0)]
    batch_expire_pct: f64,
    /// A batch not done this many milliseconds after its creation expires.
    #[arg(long)]
    batch_expire_after_ms: Option<u64>,
    /// Seed of the draws in each batch (which requests fail or expire, their order).
    #[arg(long, default_value_t = 0)]
    batch_seed: u64,
    /// A batch's creation is answered this many milliseconds after the batch is made.
    #[arg(long, default_value_t = 0)]
    batch_create_stall_ms: u64,
    /// Cached prompt tokens reported in `usage` (see PROMPT CACHE below).
    #[arg(long, default_value_t = 0)]
    cached_tokens: u64,
    /// A provider's rate limit: more than this many chat calls in any window of --window-ms
    /// are answered 429 (see RATE LIMIT below).
    #[arg(long)]
    limit_requests: Option<u64>,
    /// The window of --limit-requests, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
}

/// A provider's request limit over a sliding window, and what the window saw.
struct WindowLimit {
    limit: u64,
    window_us: u64,
    state: std::sync::Mutex<WindowState>,
}

#[derive(Default)]
struct WindowState {
    /// Arrival times (µs) of the calls in the current window, refused ones included.
    arrivals: std::collections::VecDeque<u64>,
    /// The most calls that arrived in any one window since the last reset.
    busiest: u64,
    /// Calls refused for being over the limit.
    over: u64,
    first_us: u64,
    last_us: u64,
}

impl WindowLimit {
    /// Notes a call arriving now; true when it is over the limit.
    fn arrive(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        // Read under the lock: arrivals are in order.
        let now_us = now_us();
        while s
            .arrivals
            .front()
            .is_some_and(|t| now_us.saturating_sub(*t) >= self.window_us)
        {
            s.arrivals.pop_front();
        }
        s.arrivals.push_back(now_us);
        s.busiest = s.busiest.max(s.arrivals.len() as u64);
        if s.first_us == 0 {
            s.first_us = now_us.max(1);
        }
        s.last_us = now_us;
        let over = s.arrivals.len() as u64 > self.limit;
        if over {
            s.over += 1;
        }
        over
    }

    fn render(&self) -> String {
        let s = self.state.lock().unwrap();
        format!(
            "{{\"limit\":{},\"window_ms\":{},\"busiest\":{},\"over_limit\":{},\"first_call_ms\":{:.3},\"last_call_ms\":{:.3}}}",
            self.limit,
            self.window_us / 1000,
            s.busiest,
            s.over,
            s.first_us as f64 / 1000.0,
            s.last_us as f64 / 1000.0
        )
    }

    fn reset(&self) {
        *self.state.lock().unwrap() = WindowState::default();
    }
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
    /// Chat calls answered, and the microseconds they spent from request head to answer.
    answered: AtomicU64,
    answer_us: AtomicU64,
    /// Pauses between an answer and the next request on the same connection: the client's
    /// own turnaround, the network both ways and this server reading the request.
    gaps: AtomicU64,
    gap_us: AtomicU64,
    /// When the counters were last zeroed: older answers start no gap.
    reset_at_us: AtomicU64,
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
        let mean_ms = |sum: &AtomicU64, n: &AtomicU64| {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                0.0
            } else {
                sum.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
            }
        };
        format!(
            "{{\"calls\":{},\"max_in_flight\":{},\"in_flight\":{},\"by_outcome\":{{{by}}},\"connections\":{},\"open_connections\":{},\"mean_answer_ms\":{:.3},\"mean_gap_ms\":{:.3},\"gaps\":{}}}",
            self.calls.load(Ordering::Relaxed),
            self.max_in_flight.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.open_connections.load(Ordering::Relaxed),
            mean_ms(&self.answer_us, &self.answered),
            mean_ms(&self.gap_us, &self.gaps),
            self.gaps.load(Ordering::Relaxed),
        )
    }

    fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        for c in &self.by_outcome {
            c.store(0, Ordering::Relaxed);
        }
        self.connections.store(0, Ordering::Relaxed);
        for c in [&self.answered, &self.answer_us, &self.gaps, &self.gap_us] {
            c.store(0, Ordering::Relaxed);
        }
        self.reset_at_us.store(now_us(), Ordering::Relaxed);
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

/// Counts a connection, and keeps it counted as open for as long as it lives.
struct OpenConn(Arc<Shared>);

impl OpenConn {
    fn new(shared: Arc<Shared>) -> OpenConn {
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        OpenConn(shared)
    }
}

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
    answers: Answers,
    batches: batch::Store,
    latency: LatencyDist,
    timer: Timer,
    faults: FaultMix,
    retry_after: HeaderValue,
    hang: Duration,
    stats: Stats,
    window: Option<WindowLimit>,
}

/// Microseconds since the mock started.
fn now_us() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

/// One connection's clock: when its last chat answer was ready (0: none yet).
#[derive(Default)]
struct ConnClock {
    answered_at_us: AtomicU64,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat(Api),
    /// An endpoint of a batch API ([`batch::serves`]).
    Batch,
    Stats,
    StatsReset,
    Health,
    NotFound,
}

fn route(method: &str, path: &str) -> Route {
    let path = path.split('?').next().unwrap_or_default();
    match (method, path) {
        ("POST", "/v1/chat/completions" | "/chat/completions") => Route::Chat(Api::OpenAi),
        ("POST", "/v1/messages") => Route::Chat(Api::Anthropic),
        ("GET", "/stats") => Route::Stats,
        ("POST", "/stats/reset") => Route::StatsReset,
        ("GET", "/healthz") => Route::Health,
        _ if batch::serves(path) => Route::Batch,
        _ => Route::NotFound,
    }
}

/// What the server does with a request, whatever the protocol.
enum Reply {
    /// Answer with this status and body; `retry_after` adds that header.
    Answer {
        status: u16,
        body: Bytes,
        content_type: &'static str,
        retry_after: bool,
    },
    /// The `timeout` fault: the connection was held for --hang-s; close it unanswered.
    Hang,
    /// The `reset` fault: close the connection with RST, unanswered.
    Reset,
}

impl Reply {
    fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::Answer {
            status: 200,
            body: body.into(),
            content_type: "application/json",
            retry_after: false,
        }
    }
}

/// The answer to anything that is not a chat call.
fn immediate(shared: &Shared, route: Route) -> Reply {
    match route {
        Route::Stats => Reply::ok(shared.render_stats()),
        Route::StatsReset => {
            shared.stats.reset();
            shared.batches.stats.reset();
            if let Some(w) = &shared.window {
                w.reset();
            }
            shared.answers.cache.clear();
            Reply::ok(shared.render_stats())
        }
        Route::Health => Reply::ok("\"ok\""),
        Route::NotFound | Route::Chat(_) | Route::Batch => Reply::Answer {
            status: 404,
            body: Bytes::from_static(
                br#"{"error":{"message":"no such endpoint on the mock provider","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
            ),
            content_type: "application/json",
            retry_after: false,
        },
    }
}

/// One chat call: counted, given its outcome from the fault mix, answered after its latency.
/// `started_us` is when its request head arrived.
async fn chat(shared: &Shared, clock: &ConnClock, api: Api, started_us: u64, body: &[u8]) -> Reply {
    let stats = &shared.stats;
    let last = clock.answered_at_us.swap(0, Ordering::Relaxed);
    if last != 0 && last >= stats.reset_at_us.load(Ordering::Relaxed) {
        stats.gaps.fetch_add(1, Ordering::Relaxed);
        stats
            .gap_us
            .fetch_add(started_us.saturating_sub(last), Ordering::Relaxed);
    }
    let _in_flight = InFlight::new(stats);
    stats.calls.fetch_add(1, Ordering::Relaxed);
    let over = shared.window.as_ref().is_some_and(WindowLimit::arrive);
    let outcome = if over {
        Outcome::E429
    } else {
        shared.faults.pick()
    };
    let index = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
    stats.by_outcome[index].fetch_add(1, Ordering::Relaxed);
    if outcome == Outcome::Timeout {
        tokio::time::sleep(shared.hang).await;
        return Reply::Hang;
    }
    let delay = shared.latency.sample();
    if !delay.is_zero() {
        shared.timer.sleep(delay).await;
    }
    let status = match outcome {
        Outcome::Reset => return Reply::Reset,
        Outcome::Ok | Outcome::Malformed | Outcome::Timeout => 200,
        Outcome::E429 => 429,
        Outcome::E500 => 500,
        Outcome::E503 => 503,
        Outcome::E529 => 529,
    };
    let body: Bytes = match outcome {
        Outcome::Ok => shared
            .answers
            .canned
            .success(api, body, shared.answers.cache.lookup(api, body))
            .into(),
        Outcome::Malformed => shared.answers.canned.malformed(api, body).into(),
        other => Bytes::from_static(shared.answers.canned.error(api, other.label())),
    };
    let done_us = now_us();
    clock
        .answered_at_us
        .store(done_us.max(1), Ordering::Relaxed);
    stats.answered.fetch_add(1, Ordering::Relaxed);
    stats
        .answer_us
        .fetch_add(done_us.saturating_sub(started_us), Ordering::Relaxed);
    Reply::Answer {
        status,
        body,
        content_type: "application/json",
        retry_after: outcome == Outcome::E429,
    }
}

/// True when the client opens with the HTTP/2 preface (h2c with prior knowledge).
async fn opens_with_h2_preface(stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    let mut first = [0u8; 3];
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if n == first.len() || !PREFACE.starts_with(&first[..n]) {
            return Ok(PREFACE.starts_with(&first[..n]));
        }
        // "P" or "PR" so far: wait for the rest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves one connection: h2c on [`h2c::serve`] when the client opens with the HTTP/2
/// preface, otherwise HTTP/1.1 on [`http1::serve`].
async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let _open = OpenConn::new(shared.clone());
    match opens_with_h2_preface(&stream).await {
        Ok(false) => http1::serve(shared, stream).await,
        Ok(true) => h2c::serve(shared, stream).await,
        Err(_) => {}
    }
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

impl Shared {
    /// The `/stats` body: the chat counters with the batch counters added.
    fn render_stats(&self) -> String {
        let mut out = self.stats.render();
        out.pop();
        out.push_str(",\"batches\":");
        out.push_str(&self.batches.stats.render());
        if let Some(w) = &self.window {
            out.push_str(",\"window\":");
            out.push_str(&w.render());
        }
        out.push('}');
        out
    }

    fn from_cli(cli: &Cli) -> Result<Shared, String> {
        let faults = FaultMix::new(cli)?;
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
        if cli.cached_tokens > cli.prompt_tokens {
            return Err("--cached-tokens cannot be more than --prompt-tokens".into());
        }
        let batch_config = BatchConfig {
            delay: Duration::from_millis(cli.batch_delay_ms),
            fail_pct: cli.batch_fail_pct,
            expire_pct: cli.batch_expire_pct,
            expire_after: cli.batch_expire_after_ms.map(Duration::from_millis),
            seed: cli.batch_seed,
            create_stall: Duration::from_millis(cli.batch_create_stall_ms),
        };
        batch_config.validate()?;
        Ok(Shared {
            answers: Answers {
                canned: Canned::new(
                    &cli.text,
                    cli.prompt_tokens,
                    cli.completion_tokens,
                    cli.cached_tokens,
                ),
                cache: PromptCache::new(cli.cached_tokens),
                prompt_tokens: cli.prompt_tokens,
                completion_tokens: cli.completion_tokens,
            },
            batches: batch::Store::new(batch_config, batch::Limits::default()),
            latency,
            timer: Timer::start().map_err(|e| format!("cannot start the timer thread: {e}"))?,
            faults,
            retry_after,
            hang: Duration::from_secs_f64(cli.hang_s),
            stats: Stats::default(),
            window: cli.limit_requests.map(|limit| WindowLimit {
                limit,
                window_us: cli.window_ms.max(1) * 1000,
                state: Default::default(),
            }),
        })
    }
}

fn run(cli: Cli) -> Result<(), String> {
    now_us();
    if !cli.listen.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address; the mock only listens on loopback",
            cli.listen
        ));
    }
    let shared = Arc::new(Shared::from_cli(&cli)?);
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
        tokio::spawn(serve_connection(shared.clone(), stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A stand-in with these command-line flags on a loopback port, and its shared state.
    async fn start(flags: &[&str]) -> (SocketAddr, Arc<Shared>) {
        let cli = Cli::parse_from([&["llm-judge-mock"], flags].concat());
        let shared = Arc::new(Shared::from_cli(&cli).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(s.clone(), stream));
            }
        });
        (addr, shared)
    }

    const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    fn post(path: &str, extra: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Reads answers until `n` complete ones (head and content-length body) have arrived.
    async fn read_answers(s: &mut TcpStream, n: usize) -> Vec<(u16, String, String)> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while out.len() < n {
            let mut chunk = [0u8; 4096];
            let got = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(got > 0, "closed after {} answers", out.len());
            buf.extend_from_slice(&chunk[..got]);
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut resp = httparse::Response::new(&mut headers);
                let Ok(httparse::Status::Complete(head)) = resp.parse(&buf) else {
                    break;
                };
                let len: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap();
                if buf.len() < head + len {
                    break;
                }
                let code = resp.code.unwrap();
                let head_text = String::from_utf8_lossy(&buf[..head]).to_lowercase();
                let body = String::from_utf8_lossy(&buf[head..head + len]).into_owned();
                buf.drain(..head + len);
                out.push((code, head_text, body));
            }
        }
        out
    }

    #[tokio::test]
    async fn keeps_connections_alive_and_answers_pipelined_requests_in_order() {
        let (addr, shared) = start(&[]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(post("/v1/chat/completions", "", CHAT).as_bytes())
            .await
            .unwrap();
        let first = read_answers(&mut s, 1).await;
        assert_eq!(first[0].0, 200);
        assert!(first[0].2.contains("chat.completion"), "{}", first[0].2);
        // Two at once on the same connection: an Anthropic call, then the stats.
        let two = format!(
            "{}GET /stats HTTP/1.1\r\nhost: x\r\n\r\n",
            post("/v1/messages", "", CHAT)
        );
        s.write_all(two.as_bytes()).await.unwrap();
        let answers = read_answers(&mut s, 2).await;
        assert!(
            answers[0].2.contains("\"type\":\"message\""),
            "{}",
            answers[0].2
        );
        assert!(answers[1].2.contains("\"calls\":2"), "{}", answers[1].2);
        assert_eq!(shared.stats.gaps.load(Ordering::Relaxed), 1);
        assert_eq!(shared.stats.answered.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn honours_expect_continue_and_refuses_chunked_bodies() {
        let (addr, _) = start(&[]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            CHAT.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(CHAT.as_bytes()).await.unwrap();
        assert_eq!(read_answers(&mut s, 1).await[0].0, 200);

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
            .await
            .unwrap();
        let a = read_answers(&mut s, 1).await;
        assert_eq!(a[0].0, 411);
        assert!(a[0].1.contains("connection: close"));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed after the refusal");
    }

    #[tokio::test]
    async fn http10_and_connection_close_end_the_connection() {
        let (addr, _) = start(&[]).await;
        for req in [
            "GET /healthz HTTP/1.0\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut all = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
                .await
                .expect("closed in time")
                .unwrap();
            let text = String::from_utf8_lossy(&all);
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.ends_with("\"ok\""), "{text}");
        }
    }

    #[tokio::test]
    async fn faults_follow_the_mix() {
        let (addr, _) = start(&["--fail-429", "100", "--retry-after", "3"]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(post("/v1/messages", "", CHAT).as_bytes())
            .await
            .unwrap();
        let a = read_answers(&mut s, 1).await;
        assert_eq!(a[0].0, 429);
        assert!(a[0].1.contains("retry-after: 3"), "{}", a[0].1);
        assert!(a[0].2.contains("rate_limit_error"), "{}", a[0].2);

        let (addr, _) = start(&["--fail-reset", "100"]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(post("/v1/chat/completions", "", CHAT).as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the reset in time")
        {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("read {n} bytes instead of a reset"),
        }
    }

    #[tokio::test]
    async fn a_request_limit_refuses_calls_over_it_and_counts_the_busiest_window() {
        let (addr, _) = start(&["--limit-requests", "2", "--window-ms", "60000"]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let three = post("/v1/chat/completions", "", CHAT).repeat(3);
        s.write_all(three.as_bytes()).await.unwrap();
        let a = read_answers(&mut s, 3).await;
        assert_eq!([a[0].0, a[1].0, a[2].0], [200, 200, 429]);
        assert!(a[2].1.contains("retry-after"), "{}", a[2].1);
        s.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let stats = &read_answers(&mut s, 1).await[0].2;
        assert!(
            stats.contains("\"limit\":2,\"window_ms\":60000,\"busiest\":3,\"over_limit\":1"),
            "{stats}"
        );
    }

    #[tokio::test]
    async fn a_malformed_head_gets_400() {
        let (addr, _) = start(&[]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /v1/messages HTTP/1.1\r\ncontent-length: nope\r\n\r\n")
            .await
            .unwrap();
        let a = read_answers(&mut s, 1).await;
        assert_eq!(a[0].0, 400);
    }

    /// An h2c client connection to the stand-in at `addr`.
    async fn h2c(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        send
    }

    /// One h2c call: status, headers, body; `Err` with the reason when the stream was reset.
    async fn h2c_call(
        send: &h2::client::SendRequest<Bytes>,
        method: &str,
        path: &str,
        body: &'static str,
    ) -> Result<(u16, http::HeaderMap, String), Option<h2::Reason>> {
        let mut send = send.clone().ready().await.unwrap();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://x{path}"))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (resp, mut stream) = send.send_request(req, body.is_empty()).unwrap();
        if !body.is_empty() {
            stream
                .send_data(Bytes::from_static(body.as_bytes()), true)
                .unwrap();
        }
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .expect("an answer in time")
            .map_err(|e| e.reason())?;
        let (head, mut recv) = resp.into_parts();
        let mut text = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(|e| e.reason())?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        Ok((
            head.status.as_u16(),
            head.headers,
            String::from_utf8(text).unwrap(),
        ))
    }

    #[tokio::test]
    async fn serves_concurrent_h2c_calls_on_one_connection() {
        let (addr, shared) = start(&["--latency-ms", "50"]).await;
        let send = h2c(addr).await;
        let calls = (0..40).map(|i| {
            let path = if i % 2 == 0 {
                "/v1/chat/completions"
            } else {
                "/v1/messages"
            };
            h2c_call(&send, "POST", path, CHAT)
        });
        let started = std::time::Instant::now();
        let answers = futures_util::future::join_all(calls).await;
        // All 40 waited out their 50 ms together, not one after another.
        assert!(started.elapsed() < Duration::from_millis(1500));
        for (i, a) in answers.into_iter().enumerate() {
            let (status, headers, body) = a.unwrap();
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(headers["content-length"], body.len().to_string().as_str());
            let kind = if i % 2 == 0 {
                "chat.completion"
            } else {
                "\"type\":\"message\""
            };
            assert!(body.contains(kind), "{body}");
        }
        let (_, _, stats) = h2c_call(&send, "GET", "/stats", "").await.unwrap();
        assert!(stats.contains("\"calls\":40"), "{stats}");
        assert!(stats.contains("\"max_in_flight\":40"), "{stats}");
        assert_eq!(shared.stats.answered.load(Ordering::Relaxed), 40);
        let (status, _, _) = h2c_call(&send, "GET", "/nowhere", "").await.unwrap();
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn h2c_faults_answer_or_reset_the_stream_and_keep_the_connection() {
        let (addr, _) = start(&["--fail-429", "100", "--retry-after", "3"]).await;
        let send = h2c(addr).await;
        let (status, headers, body) = h2c_call(&send, "POST", "/v1/messages", CHAT).await.unwrap();
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "3");
        assert!(body.contains("rate_limit_error"), "{body}");

        let (addr, _) = start(&["--fail-reset", "100"]).await;
        let send = h2c(addr).await;
        let reset = h2c_call(&send, "POST", "/v1/chat/completions", CHAT).await;
        assert_eq!(reset.unwrap_err(), Some(h2::Reason::INTERNAL_ERROR));
        let (status, _, body) = h2c_call(&send, "GET", "/healthz", "").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "\"ok\""));
    }
}
