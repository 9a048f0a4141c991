//! The command line: every flag, and the longer help printed after them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::latency::LatencyDist;

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
pub struct Cli {
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The answer text of every successful completion.
    #[arg(long, default_value = "Verdict: 1")]
    pub text: String,
    /// Prompt (input) tokens reported in `usage`.
    #[arg(long, default_value_t = 150)]
    pub prompt_tokens: u64,
    /// Completion (output) tokens reported in `usage`.
    #[arg(long, default_value_t = 4)]
    pub completion_tokens: u64,
    /// Fixed latency in milliseconds (shorthand for --latency-dist fixed:MS).
    #[arg(long, conflicts_with = "latency_dist")]
    pub latency_ms: Option<f64>,
    /// Latency distribution: fixed:MS, uniform:LO:HI, normal:MEAN:SD or exp:MEAN (milliseconds).
    #[arg(long, value_parser = LatencyDist::parse)]
    pub latency_dist: Option<LatencyDist>,
    /// Percent of calls answered 429 (with retry-after).
    #[arg(long, default_value_t = 0.0)]
    pub fail_429: f64,
    /// Percent of calls answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub fail_500: f64,
    /// Percent of calls answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub fail_503: f64,
    /// Percent of calls answered 529 (overloaded).
    #[arg(long, default_value_t = 0.0)]
    pub fail_529: f64,
    /// Percent of calls never answered (connection held for --hang-s).
    #[arg(long, default_value_t = 0.0)]
    pub fail_timeout: f64,
    /// Percent of calls whose connection is reset without a response.
    #[arg(long, default_value_t = 0.0)]
    pub fail_reset: f64,
    /// Percent of calls answered 200 with broken JSON.
    #[arg(long, default_value_t = 0.0)]
    pub fail_malformed: f64,
    /// The `retry-after` header value (seconds) sent with a 429.
    #[arg(long, default_value = "1")]
    pub retry_after: String,
    /// How long a `timeout` fault holds the connection, in seconds, before closing it.
    #[arg(long, default_value_t = 300.0)]
    pub hang_s: f64,
    /// Runtime worker threads (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Listen backlog (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    pub backlog: u32,
    /// Write the bound port to this file once listening.
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// Milliseconds from the creation of a batch to its end.
    #[arg(long, default_value_t = 1000)]
    pub batch_delay_ms: u64,
    /// Percent of each batch's requests that fail.
    #[arg(long, default_value_t = 0.0)]
    pub batch_fail_pct: f64,
    /// Percent of each batch's requests that expire.
    #[arg(long, default_value_t = 0.0)]
    pub batch_expire_pct: f64,
    /// A batch not done this many milliseconds after its creation expires.
    #[arg(long)]
    pub batch_expire_after_ms: Option<u64>,
    /// Seed of the draws in each batch (which requests fail or expire, their order).
    #[arg(long, default_value_t = 0)]
    pub batch_seed: u64,
    /// A batch's creation is answered this many milliseconds after the batch is made.
    #[arg(long, default_value_t = 0)]
    pub batch_create_stall_ms: u64,
    /// Cached prompt tokens reported in `usage` (see PROMPT CACHE below).
    #[arg(long, default_value_t = 0)]
    pub cached_tokens: u64,
    /// A provider's rate limit: more than this many chat calls in any window of --window-ms
    /// are answered 429 (see RATE LIMIT below).
    #[arg(long)]
    pub limit_requests: Option<u64>,
    /// The window of --limit-requests, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub window_ms: u64,
}
