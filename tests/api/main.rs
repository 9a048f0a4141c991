//! The service's integration tests, in one binary: the real server on a loopback port (or the
//! built `llm-judge` binary as its own process) against stand-in providers, one module per
//! area of behaviour, all sharing the [`support`] helpers.
//!
//! The test command (`cargo nextest run`) runs every test in a process of its own, and some
//! tests count on it: those that read exact figures from the process-wide metrics recorder of a
//! server spawned in process (in `operations`, `prompt_cache`, `quality`, `network`, `faults`
//! and `fleet_limits`) would count other tests' calls too as threads of one process, as under a
//! plain `cargo test`.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod batch;
mod body_bounds;
mod budget;
mod calibrate;
mod chat_completions;
mod cli;
mod cli_run;
mod faults;
mod fleet_budget;
mod fleet_jobs;
mod fleet_limits;
mod fleet_outage;
mod job_outage;
mod job_provider_batch;
mod job_store_full;
mod jobs;
mod judge_api;
mod network;
mod openapi;
mod operations;
mod prism;
mod prompt_cache;
mod provider_batch;
mod quality;
mod rate_limit;
mod serving;
mod store_outages;
mod streaming;
mod tenants;
mod toolchain;
mod transport;
mod verdict_cache;
