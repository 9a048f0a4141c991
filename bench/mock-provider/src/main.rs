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
mod chat;
mod cli;
mod clock;
mod faults;
mod h2c;
mod http1;
mod immediate;
mod latency;
mod reply;
mod route;
mod server;
mod shared;
mod stats;
mod timer;
mod window;

use std::sync::Arc;

use clap::Parser;

use cli::Cli;
use clock::now_us;
use shared::Shared;

/// jemalloc: cheaper small allocations across threads, so the stand-in stays out of the way.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    rt.block_on(server::serve(cli, shared))
}
