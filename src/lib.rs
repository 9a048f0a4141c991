//! llm-judge: an HTTP service that grades model outputs with LLM judges, alone or in batches,
//! across providers, with rate limits, retries, circuit breaking and ordered fallback.
//!
//! The service is the top of a workspace of crates, each a layer that depends only on the ones
//! below it (the compiler keeps the arrows pointing down):
//!
//! ```text
//! llm-judge (this crate)  configuration, the composition root, the HTTP API, the server, the CLI
//!   -> llm-judge-fleet    Redis implementations of traits owned below (limits, cache tier, jobs, spend)
//!   -> llm-judge-work     many items: batches, budgets, jobs, calibration
//!   -> llm-judge-judge    templates, verdict parsing, the rules judge, the verdict cache, panels
//!   -> llm-judge-pool     routes and fallback over per-provider tower stacks, cost
//!   -> llm-judge-providers one wire format per module, the reqwest clients, provider batch APIs
//!   -> llm-judge-chat, llm-judge-embedded, llm-judge-metrics   provider-neutral types; a redb
//!                         store that reopens after I/O errors; every metric's name
//! ```
//!
//! One line per module of every crate: `docs/architecture.md`.
//!
//! This crate, top down (nothing imports a module above it):
//! - [`cli`]: the command line (`serve`, `run`, `calibrate`, `openapi`).
//! - [`app`]: the composition root: builds settings -> pool -> judge -> jobs -> fleet tiers ->
//!   [`api::AppState`], and binds the server.
//! - [`server`]: accepting and serving connections (timeouts, connection cap, shutdown).
//! - [`api`]: HTTP only: routes, the layers in front of them, extractors, errors, OpenAPI.
//! - [`config`]: the settings, read from defaults, a file and the environment, validated.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod server;

pub use app::{Application, build_app, build_judge};
