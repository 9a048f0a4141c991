//! NDJSON uploads of `POST /v1/jobs`: the items are streamed into the job store as they arrive,
//! a line at a time, so that a job far larger than a JSON body can take is never held whole.

use axum::body::BodyDataStream;
use axum::extract::Request;
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::accept::{UploadParams, accepted, check_key, finish_digest, job_options, key_conflict};
use super::lines::Lines;
use crate::api::batch::{budget_limits, max_concurrent};
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::tenant::Caller;
use llm_judge_judge::JudgeKind;
use llm_judge_work::jobs::{Begin, INVALID_LINE, JobView, KeyConflict, Upload};

/// The longest line of an NDJSON upload.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Streams an NDJSON body into the store, a page at a time.
pub async fn upload(
    app: AppState,
    caller: &Caller,
    q: UploadParams,
    req: Request,
) -> Result<Response, ApiError> {
    let route = app.judge.resolve_route(q.judge.as_deref())?;
    let max_concurrent = max_concurrent(&app.settings.server, q.max_concurrent)?;
    let key = check_key(q.idempotency_key)?;
    let kind = q.kind.unwrap_or(JudgeKind::Binary);
    let budget = budget_limits(q.max_cost_usd, q.max_tokens)?;
    // The items are not read yet: a dollar budget needs prices along the job's route (items
    // naming judges of their own without prices are unpriced, as in a batch).
    let mut options = job_options(
        &app,
        caller,
        &route,
        Default::default(),
        q.provider_batch,
        q.provider_batch_deadline_s,
        budget,
    )?;
    options.max_wait_s = super::accept::max_wait(q.max_wait_s)?;
    // With a key, the upload is digested as it arrives (with the settings it runs with).
    let hasher = key.is_some().then(|| {
        Sha256::new_with_prefix(format!(
            "ndjson\n{}\n{route}\n{max_concurrent}\n{options:?}\n",
            kind.as_str()
        ))
    });
    let key_text = key.clone().unwrap_or_default();
    let begin = app
        .jobs
        .begin_upload(kind, route, max_concurrent, key, &options)
        .await?;
    let body = req.into_body().into_data_stream();
    match begin {
        Begin::Upload(up) => {
            let view = store_items(*up, body, hasher, app.settings.jobs.max_items).await?;
            Ok(accepted(&view, true))
        }
        Begin::Conflict(c) => Err(key_conflict(c)),
        Begin::Existing { view, digest } => {
            let repeat = Repeat {
                view: *view,
                digest,
                key: key_text,
            };
            repeat.answer(body, hasher).await
        }
    }
}

/// Reads the upload's lines into the store as they arrive; the job, once the last has come.
async fn store_items(
    mut up: Upload,
    mut body: BodyDataStream,
    mut hasher: Option<Sha256>,
    max_items: u64,
) -> Result<JobView, ApiError> {
    let mut lines = Lines::default();
    let mut line_no = 0u64;
    loop {
        let chunk = match body.next().await {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                up.abandon().await;
                return Err(broke_off(e));
            }
            None => None,
        };
        let last = chunk.is_none();
        if let Some(c) = &chunk {
            if let Some(h) = hasher.as_mut() {
                h.update(c);
            }
            lines.push(c);
        }
        while let Some(text) = if last {
            lines.next_line().or_else(|| lines.rest())
        } else {
            lines.next_line()
        } {
            line_no += 1;
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let item = item_of(&text, line_no);
            if up.count() >= max_items {
                up.abandon().await;
                return Err(ApiError::UploadTooManyItems(format!(
                    "more than {max_items} items (jobs.max_items)"
                )));
            }
            up.push(item).await?;
        }
        if lines.unfinished() > MAX_LINE {
            up.abandon().await;
            return Err(ApiError::LineTooLong(format!(
                "line {} is longer than 16 MiB",
                line_no + 1
            )));
        }
        if last {
            break;
        }
    }
    if up.count() == 0 {
        up.abandon().await;
        return Err(ApiError::InvalidField {
            field: "body".into(),
            message: "the upload has no items".into(),
        });
    }
    Ok(up.finish(hasher.map(finish_digest)).await?)
}

/// One line of the upload as the item stored: its object, or a line the job reports invalid.
fn item_of(text: &[u8], line_no: u64) -> Value {
    match serde_json::from_slice::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => serde_json::json!({ INVALID_LINE: format!("line {line_no}: not a JSON object") }),
        Err(e) => {
            serde_json::json!({ INVALID_LINE: format!("line {line_no}: not valid JSON: {e}") })
        }
    }
}

/// An upload under an idempotency key that already made a job.
struct Repeat {
    view: JobView,
    /// The digest of the request that made the job.
    digest: Option<String>,
    key: String,
}

impl Repeat {
    /// The same upload gets its job, another one a conflict: the upload is read to its end to
    /// tell which.
    async fn answer(
        self,
        mut body: BodyDataStream,
        mut hasher: Option<Sha256>,
    ) -> Result<Response, ApiError> {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(broke_off)?;
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk);
            }
        }
        let mine = hasher.map(finish_digest);
        if self.digest.is_some() && mine.is_some() && self.digest != mine {
            return Err(key_conflict(KeyConflict::DifferentRequest {
                key: self.key,
                job: self.view.id,
            }));
        }
        Ok(accepted(&self.view, false))
    }
}

fn broke_off(e: axum::Error) -> ApiError {
    ApiError::UnreadableBody(format!("the upload broke off: {e}"))
}
