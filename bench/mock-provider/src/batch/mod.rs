//! The two provider batch APIs: OpenAI's Files + Batch API ([`openai`]) and Anthropic's Message
//! Batches ([`anthropic`]).
//!
//! Not on the hot path: bodies are parsed and written with serde_json, and the state sits behind
//! one mutex per API. State lives in memory only: a restart of the stand-in loses every file and
//! batch.
//!
//! Nothing runs in the background. A batch is planned when it is created: each request's fate
//! (succeed, fail, expire: exactly the configured shares of the batch, which requests drawn from
//! the seed), the order the requests are processed in and the order results are listed in (both
//! drawn from the seed). What a poll sees is worked out from the time elapsed since creation:
//! requests are processed one after another, evenly over the batch's delay, so the counts that
//! the API shows grow from poll to poll, and the batch ends when the delay has passed.

pub mod anthropic;
mod config;
mod env;
pub mod openai;
mod plan;
mod request;
mod stats;
mod store;
mod timeline;
mod wire;

pub use config::{BatchConfig, Limits};
pub use request::{MAX_BODY, Request, serves};
pub use store::Store;

use crate::answers::Answers;
use crate::reply::Reply;

/// Answers a request to a batch endpoint.
pub async fn handle(store: &Store, answers: &Answers, req: Request) -> Reply {
    let creating = req.method == "POST"
        && matches!(
            req.path().trim_end_matches('/'),
            "/v1/batches" | "/batches" | "/v1/messages/batches"
        );
    let reply = if req.path().starts_with("/v1/messages/batches") {
        anthropic::handle(&store.anthropic(answers), &req)
    } else {
        openai::handle(&store.openai(answers), &req).await
    };
    let stall = store.config.create_stall;
    if creating && !stall.is_zero() {
        // The batch is made; its answer comes late (or, to a client that gave up, never).
        tokio::time::sleep(stall).await;
    }
    reply
}
