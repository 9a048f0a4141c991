//! What a request asks for, from its method and path, whatever the protocol.

use crate::api::Api;
use crate::batch;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat(Api),
    /// An endpoint of a batch API ([`batch::serves`]).
    Batch,
    Stats,
    StatsReset,
    Health,
    NotFound,
}

pub fn route(method: &str, path: &str) -> Route {
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
