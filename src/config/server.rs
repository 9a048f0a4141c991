//! The `[server]` section: where the service listens and how it serves connections, batches and
//! request bodies, with its defaults and checks.

use std::net::SocketAddr;

use serde::Deserialize;

use super::check::{ConfigError, DAY_S, range};
use super::lists::string_list;

/// The `[server]` defaults.
pub(super) const DEFAULTS: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_body_bytes = 16777216
max_batch_items = 10000
batch_max_concurrent = 64
batch_max_concurrent_limit = 10000
shutdown_grace_s = 30
threads = 0
header_read_timeout_s = 10
idle_timeout_s = 75
body_read_timeout_s = 60
max_connections = 10000
allowed_origins = []
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Most items in one batch.
    pub max_batch_items: usize,
    /// Batch concurrency when the request does not say.
    pub batch_max_concurrent: usize,
    /// The highest `max_concurrent` a request may ask for.
    pub batch_max_concurrent_limit: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before the process exits.
    pub shutdown_grace_s: f64,
    /// Worker threads of the runtime that serves connections, batches and jobs (0: one per CPU
    /// the process may use).
    pub threads: usize,
    /// How long a client may take to send a request's headers, from its first byte.
    pub header_read_timeout_s: f64,
    /// How long a kept-alive connection may sit idle (no request in flight, none arriving)
    /// before the server closes it.
    pub idle_timeout_s: f64,
    /// How long a request body may take to arrive (a JSON body in all; an NDJSON job upload
    /// between two chunks).
    pub body_read_timeout_s: f64,
    /// Open connections at most; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Web origins (`https://host[:port]`) whose pages may call the API; a request carrying any
    /// other `Origin` is refused (403). A list, or (for environment variables) a
    /// comma-separated string.
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
}

/// The most threads `server.threads` may ask for.
const MAX_THREADS: usize = 1024;
/// The most connections `server.max_connections` may allow.
const MAX_CONNECTIONS: usize = 1_000_000;

/// `server.listen` as an address.
pub(super) fn listen(s: &ServerSettings) -> Result<SocketAddr, ConfigError> {
    s.listen.parse().map_err(|_| {
        ConfigError(format!(
            "server.listen = {:?} is not an address such as 127.0.0.1:8080",
            s.listen
        ))
    })
}

/// Range checks of the `[server]` keys about requests and batches, and of the runtime's size.
pub(super) fn check_ranges(s: &ServerSettings) -> Result<(), ConfigError> {
    range("server.max_body_bytes", s.max_body_bytes, 1024, 1 << 32)?;
    range("server.max_batch_items", s.max_batch_items, 1, 10_000_000)?;
    range(
        "server.batch_max_concurrent",
        s.batch_max_concurrent,
        1,
        1_000_000,
    )?;
    range(
        "server.batch_max_concurrent_limit",
        s.batch_max_concurrent_limit,
        1,
        1_000_000,
    )?;
    range("server.shutdown_grace_s", s.shutdown_grace_s, 0.0, DAY_S)?;
    range("server.threads", s.threads, 0, MAX_THREADS)?;
    Ok(())
}

/// The `[server]` keys about serving connections: threads, timeouts, the connection cap and
/// the allowed origins.
pub(super) fn check_serving(s: &ServerSettings) -> Result<(), ConfigError> {
    range(
        "server.header_read_timeout_s",
        s.header_read_timeout_s,
        0.1,
        3600.0,
    )?;
    range("server.idle_timeout_s", s.idle_timeout_s, 0.1, DAY_S)?;
    range(
        "server.body_read_timeout_s",
        s.body_read_timeout_s,
        0.1,
        DAY_S,
    )?;
    range(
        "server.max_connections",
        s.max_connections,
        1,
        MAX_CONNECTIONS,
    )?;
    for origin in &s.allowed_origins {
        let ok = reqwest::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.origin().ascii_serialization() == *origin
        });
        if !ok {
            return Err(ConfigError(format!(
                "server.allowed_origins: {origin:?} is not an origin; write it as a browser sends \
                 it in the Origin header, scheme://host[:port] with no path or trailing slash \
                 (such as \"https://dashboard.example.com\")"
            )));
        }
    }
    Ok(())
}
