//! OpenAI's Files and Batch API, for `/v1/chat/completions` batches (also without `/v1`).
//!
//! - `POST /v1/files` (multipart/form-data: `purpose`, `file`) -> a File object;
//!   `GET /v1/files`, `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`.
//! - `POST /v1/batches` `{input_file_id, endpoint, completion_window, metadata?}` -> a Batch;
//!   `GET /v1/batches` (`limit`, `after`), `GET /v1/batches/{id}`,
//!   `POST /v1/batches/{id}/cancel`.
//!
//! A batch is `validating` for the first tenth of `--batch-delay-ms`, `in_progress` while its
//! requests are processed one after another (`request_counts` growing), `finalizing` for the
//! last tenth and `completed` when the delay is over. A bad input file (a line that is not
//! JSON, a missing field, a `url` other than the batch's endpoint, a duplicate `custom_id`, a
//! second model, no lines, more than 50,000 lines or more than 200 MB) turns the batch `failed`
//! once validation ends, with `errors.data[] {code, message, param, line}`. A cancel makes it
//! `cancelling` for a tenth of the delay, then `cancelled`: requests processed by the cancel are
//! in the files, the rest in neither. An expired batch (`--batch-expire-after-ms`, or a request
//! drawn by `--batch-expire-pct`: with OpenAI a request only expires with its batch) ends
//! `expired`, its unfinished requests in the error file with code `batch_expired`. Cancelling a
//! batch that is over is refused with 400 (not 409, which the official SDKs retry); a second
//! cancel while `cancelling` answers the batch as it is.
//!
//! Output file lines are `{"id","custom_id","response":{"status_code":200,"request_id","body":
//! <chat.completion>},"error":null}`; the error file has the requests that failed
//! (`--batch-fail-pct`: 500 with a server error body; a body without `model` or `messages`: 400
//! as the online API answers it) in the same shape, and expired ones with `"response":null` and
//! `"error":{"code","message"}`. Files list requests in the order they were processed, not the
//! input order (OpenAI does not promise it either). `output_file_id` and `error_file_id` are set
//! once a batch is over, each only when its file has lines. `request_counts.failed` counts every
//! line of the error file. The stand-in checks no API key.

mod batch;
mod batches_api;
mod create;
mod file;
mod files_api;
mod input;
mod object;
mod output;
mod respond;
mod state;

pub use state::State;

use super::request::Request;
use super::stats::{Op, Side};
use super::wire;
use crate::reply::Reply;
use batches_api::{cancel, list_batches, with_batch};
use create::create;
use files_api::{delete_file, list_files, upload, with_file};
use respond::refuse;
use state::Env;

/// Answers a request to `/v1/files...` or `/v1/batches...`.
pub async fn handle(env: &Env<'_>, req: &Request) -> Reply {
    let path = req.path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["files"]) => upload(env, req).await,
        ("GET", ["files"]) => list_files(env, req),
        ("GET", ["files", id]) => with_file(env, id, |f| wire::json(200, &f.render())),
        ("GET", ["files", id, "content"]) => {
            env.stats.count(Side::OpenAi, Op::ResultsFetched);
            with_file(env, id, |f| Reply::Answer {
                status: 200,
                body: f.content.clone(),
                content_type: "application/octet-stream",
                retry_after: false,
            })
        }
        ("DELETE", ["files", id]) => delete_file(env, id),
        ("POST", ["batches"]) => create(env, req),
        ("GET", ["batches"]) => list_batches(env, req),
        ("GET", ["batches", id]) => {
            env.stats.count(Side::OpenAi, Op::Polls);
            with_batch(env, id, |b, t| {
                wire::json(200, &b.render(t, false, env.answers))
            })
        }
        ("POST", ["batches", id, "cancel"]) => {
            env.stats.count(Side::OpenAi, Op::Cancels);
            with_batch(env, id, |b, t| cancel(env, b, t))
        }
        _ => refuse(
            env,
            404,
            &format!(
                "Invalid URL ({} {}): not an endpoint of the stand-in's Files or Batch API",
                req.method,
                req.path()
            ),
            None,
            None,
        ),
    }
}
