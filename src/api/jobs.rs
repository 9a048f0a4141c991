//! Job endpoints: submit a batch as a persistent job, follow its progress, read its results
//! (resumable), stream its events, cancel it, list jobs.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::batch::{BatchRequest, Checked, prepare_values};
use super::budget::ClientId;
use super::error::{ApiError, ErrorBody};
use super::error_docs::{DailyBudgetError, JobLookupErrors, UnauthorizedError};
use super::extract::{PathParam, QueryParams, parse_json, read_body};
use super::state::AppState;
use futures::StreamExt;
use llm_judge_judge::JudgeKind;
use llm_judge_work::jobs::{
    Begin, INVALID_LINE, JobOptions, JobStatus, JobView, KeyConflict, StoreError,
};
use serde_json::Value;
use sha2::Digest;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let request_id = super::access::current_request_id();
        tracing::error!(request_id = request_id.as_deref(), error = %e, "job store failure");
        ApiError::StoreUnavailable("the job store failed; retry later".into())
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::JobNotFound(format!("no job {id:?} (it may have expired)"))
}

/// The answer to a job submission.
#[derive(Serialize, ToSchema)]
pub struct JobAccepted {
    pub id: String,
    pub status: JobStatus,
    /// False when the idempotency key returned an earlier job.
    pub created: bool,
}

/// Query parameters of an NDJSON upload (a JSON body carries these fields itself).
#[derive(Deserialize, IntoParams)]
pub struct UploadParams {
    /// `binary` (default), `score` or `compare`.
    pub kind: Option<JudgeKind>,
    /// The judge (route) for items that name none.
    pub judge: Option<String>,
    pub max_concurrent: Option<usize>,
    /// The same key with the same upload (and parameters) returns the same job; another upload
    /// under it is a 409, and so is any upload while the first one is still arriving.
    pub idempotency_key: Option<String>,
    /// As in the JSON body: the job's spend budget in dollars.
    pub max_cost_usd: Option<f64>,
    /// As in the JSON body: the job's budget of tokens.
    pub max_tokens: Option<u64>,
    /// As in the JSON body: send items as provider batches where the route's first step has a
    /// batch API.
    pub provider_batch: Option<bool>,
    /// As in the JSON body: seconds after creation when what provider batches have not
    /// answered goes online (1 to 86400, default 86400).
    pub provider_batch_deadline_s: Option<u64>,
}

/// The longest `provider_batch_deadline_s`: the providers' own completion window.
const MAX_PROVIDER_BATCH_DEADLINE_S: u64 = 86_400;

/// The options a job asks for, checked: a 422 names the field.
fn job_options(
    app: &AppState,
    client: Option<ClientId>,
    route: &str,
    judges: std::collections::BTreeSet<String>,
    provider_batch: Option<bool>,
    deadline_s: Option<u64>,
    budget: llm_judge_work::batch::Limits,
) -> Result<JobOptions, ApiError> {
    let invalid = |field: &str, message: String| ApiError::InvalidField {
        field: field.to_string(),
        message,
    };
    let provider_batch = provider_batch.unwrap_or(false);
    if let Some(d) = deadline_s {
        if !provider_batch {
            return Err(invalid(
                "provider_batch_deadline_s",
                "provider_batch_deadline_s is for jobs with provider_batch: true".into(),
            ));
        }
        if !(1..=MAX_PROVIDER_BATCH_DEADLINE_S).contains(&d) {
            return Err(invalid(
                "provider_batch_deadline_s",
                format!(
                    "provider_batch_deadline_s must be between 1 and {MAX_PROVIDER_BATCH_DEADLINE_S} seconds (the providers finish a batch within 24 hours)"
                ),
            ));
        }
    }
    if app.jobs.fleet() && !provider_batch {
        // A fleet's replicas would each keep a budget of their own (a provider-batch job is
        // run by one replica at a time): refused rather than run wrong.
        let field = if budget.max_cost_usd.is_some() {
            Some("max_cost_usd")
        } else if budget.max_tokens.is_some() {
            Some("max_tokens")
        } else {
            None
        };
        if let Some(field) = field {
            return Err(ApiError::UnsupportedField {
                field: field.to_string(),
                message: format!(
                    "{field} is available for jobs in a fleet sharing Redis only with provider_batch: true (one replica then runs the job); send it with provider_batch, run the job on a service without [redis], or send it without {field}"
                ),
            });
        }
    }
    // Sent with a client token whose day has a budget: the job spends that day.
    let day = app.daily_budgets.as_ref().zip(client);
    super::batch::refuse_unpriced_budget(app, budget, day.map(|(d, _)| &**d), route, judges)?;
    Ok(JobOptions {
        provider_batch,
        provider_batch_deadline_s: deadline_s,
        budget,
        client: day.and_then(|(d, c)| d.name_of(c).map(str::to_string)),
    })
}

/// Submits a batch as a persistent job: its items are stored before the answer, then judged in
/// the background; results survive restarts. The body is the batch JSON, or (for very large
/// jobs, streamed to disk as it arrives) NDJSON with one item per line and `Content-Type:
/// application/x-ndjson`, the batch fields then going in the query string.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", params(UploadParams),
    request_body(content((BatchRequest = "application/json"), (String = "application/x-ndjson"))),
    responses(
        (status = 202, description = "Accepted; the same idempotency key with the same request returns the same job", body = JobAccepted),
        (status = 400, description = "Malformed JSON or an unreadable upload", body = ErrorBody),
        UnauthorizedError,
        (status = 409, description = "The idempotency key was used for a different request, or its upload is still arriving", body = ErrorBody),
        (status = 413, description = "Body over the limit, or too many items", body = ErrorBody),
        (status = 422, description = "Invalid batch; a budget in dollars (the job's, or its client token's day) and a model without a price", body = ErrorBody),
        DailyBudgetError,
        (status = 503, description = "Shutting down, or the job store failed", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<AppState>,
    QueryParams(q): QueryParams<UploadParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let client = req.extensions().get::<ClientId>().copied();
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    if ndjson {
        return upload(app, client, q, req).await;
    }
    let bytes = read_body(req).await?;
    let body: BatchRequest = parse_json(&bytes)?;
    let key = check_key(body.idempotency_key.clone())?;
    let budget = body.limits()?;
    let (provider_batch, deadline_s) = (body.provider_batch, body.provider_batch_deadline_s);
    let Checked {
        route,
        kind,
        items: values,
        max_concurrent,
    } = prepare_values(&app, body)?;
    let judges = values
        .iter()
        .filter_map(|v| super::batch::named_judge(v.get()))
        .collect();
    let options = job_options(
        &app,
        client,
        &route,
        judges,
        provider_batch,
        deadline_s,
        budget,
    )?;
    // A key comes back with the digest of its request, to tell a retry from a different job.
    let key = key.map(|k| (k, digest(&bytes)));
    let (view, created) = app
        .jobs
        .submit(kind, route, max_concurrent, values, key, &options)
        .await?
        .map_err(key_conflict)?;
    Ok(accepted(&view, created))
}

/// A digest of a request's bytes (SHA-256, base64url).
fn digest(bytes: &[u8]) -> String {
    finish_digest(sha2::Sha256::new_with_prefix(bytes))
}

fn finish_digest(hasher: sha2::Sha256) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize())
}

fn broke_off(e: axum::Error) -> ApiError {
    ApiError::UnreadableBody(format!("the upload broke off: {e}"))
}

fn key_conflict(c: KeyConflict) -> ApiError {
    match c {
        KeyConflict::DifferentRequest { key, job } => ApiError::IdempotencyConflict(format!(
            "idempotency_key {key:?} was used for a different request (job {job}); \
             send the same request to get that job, or use a new key for a new job"
        )),
        KeyConflict::InProgress { key, job } => ApiError::IdempotencyInProgress(format!(
            "an upload with idempotency_key {key:?} is still arriving (job {job}); \
             retry when it has finished"
        )),
    }
}

fn check_key(key: Option<String>) -> Result<Option<String>, ApiError> {
    let key = key.filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > 256) {
        return Err(ApiError::InvalidField {
            field: "idempotency_key".into(),
            message: "idempotency_key is longer than 256 characters".into(),
        });
    }
    Ok(key)
}

/// 202 with the job's id and a `Location` header; an idempotent repeat answers 202 too, so
/// clients need not care which they got.
fn accepted(view: &JobView, created: bool) -> Response {
    let body = JobAccepted {
        id: view.id.clone(),
        status: view.status,
        created,
    };
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = format!("/v1/jobs/{}", view.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Streams an NDJSON body into the store, a page at a time.
async fn upload(
    app: AppState,
    client: Option<ClientId>,
    q: UploadParams,
    req: Request,
) -> Result<Response, ApiError> {
    let limits = &app.settings.server;
    let route = app.judge.resolve_route(q.judge.as_deref())?;
    let max_concurrent = super::batch::max_concurrent(limits, q.max_concurrent)?;
    let key = check_key(q.idempotency_key)?;
    let kind = q.kind.unwrap_or(JudgeKind::Binary);
    let budget = super::batch::budget_limits(q.max_cost_usd, q.max_tokens)?;
    // The items are not read yet: a dollar budget needs prices along the job's route (items
    // naming judges of their own without prices are unpriced, as in a batch).
    let options = job_options(
        &app,
        client,
        &route,
        Default::default(),
        q.provider_batch,
        q.provider_batch_deadline_s,
        budget,
    )?;
    // With a key, the upload is digested as it arrives (with the settings it runs with).
    let mut hasher = key.is_some().then(|| {
        sha2::Sha256::new_with_prefix(format!(
            "ndjson\n{}\n{route}\n{max_concurrent}\n{options:?}\n",
            kind.as_str()
        ))
    });
    let key_text = key.clone().unwrap_or_default();
    let begin = app
        .jobs
        .begin_upload(kind, route, max_concurrent, key, &options)
        .await?;
    let mut up = match begin {
        Begin::Upload(up) => up,
        Begin::Conflict(c) => return Err(key_conflict(c)),
        Begin::Existing { view, digest } => {
            // The same key again: the same upload gets its job, another one a conflict.
            let mut body = req.into_body().into_data_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(broke_off)?;
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
            }
            let mine = hasher.map(finish_digest);
            if digest.is_some() && mine.is_some() && digest != mine {
                return Err(key_conflict(KeyConflict::DifferentRequest {
                    key: key_text,
                    job: view.id,
                }));
            }
            return Ok(accepted(&view, false));
        }
    };
    let max_items = app.settings.jobs.max_items;
    let mut body = req.into_body().into_data_stream();
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
            let item = match serde_json::from_slice::<Value>(&text) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    serde_json::json!({ INVALID_LINE: format!("line {line_no}: not a JSON object") })
                }
                Err(e) => {
                    serde_json::json!({ INVALID_LINE: format!("line {line_no}: not valid JSON: {e}") })
                }
            };
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
    let view = up.finish(hasher.map(finish_digest)).await?;
    Ok(accepted(&view, true))
}

/// The longest line of an NDJSON upload.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Splits an upload into lines as its chunks arrive. The search for the next newline resumes
/// where the last one stopped, so every byte is looked at once: a long line sent in small chunks
/// costs its length, not its length times the number of chunks.
#[derive(Default)]
struct Lines {
    buf: bytes::BytesMut,
    /// The first `scanned` bytes of `buf` hold no newline.
    scanned: usize,
    /// Bytes looked at so far, for the tests.
    examined: u64,
}

impl Lines {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, without its `\n` (or `\r\n`).
    fn next_line(&mut self) -> Option<bytes::Bytes> {
        let unseen = &self.buf[self.scanned..];
        match memchr::memchr(b'\n', unseen) {
            Some(at) => {
                self.examined += at as u64 + 1;
                let mut line = self.buf.split_to(self.scanned + at + 1);
                self.scanned = 0;
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Some(line.freeze())
            }
            None => {
                self.examined += unseen.len() as u64;
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// What is left after the last newline (a last line without one), once the body has ended.
    fn rest(&mut self) -> Option<bytes::Bytes> {
        self.scanned = 0;
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    /// Bytes of a line not finished yet.
    fn unfinished(&self) -> usize {
        self.buf.len()
    }
}

#[derive(Deserialize, IntoParams)]
pub struct ListParams {
    /// Most jobs to list (default 100).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = JobList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<JobList>, ApiError> {
    Ok(Json(JobList {
        jobs: app.jobs.list(p.limit.unwrap_or(100).min(10_000)).await?,
    }))
}

/// A job's status and progress.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), JobLookupErrors))]
pub async fn get(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Json<JobView>, ApiError> {
    app.jobs
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// Cancels a job; its finished results stay readable. The answer is the job: `cancelled` when it
/// had not started, `cancelling` while its calls in flight stop (then `cancelled`). A finished
/// job is left as it is.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), JobLookupErrors))]
pub async fn cancel(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Json<JobView>, ApiError> {
    app.jobs
        .cancel(&id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

#[derive(Deserialize, IntoParams)]
pub struct ResultParams {
    /// Only results after this index (`order=index`) or this sequence number (`order=completion`).
    pub after: Option<u64>,
    /// `index` (default) or `completion`; in completion order each line carries `seq`.
    pub order: Option<String>,
}

/// The finished results as NDJSON, in index order (or completion order), resumable with `after`.
#[utoipa::path(get, path = "/v1/jobs/{id}/results", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), ResultParams),
    responses(
        (status = 200, description = "One JSON line per finished item", content_type = "application/x-ndjson", body = String),
        JobLookupErrors,
        (status = 422, body = ErrorBody),
    ))]
pub async fn results(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
    QueryParams(p): QueryParams<ResultParams>,
) -> Result<Response, ApiError> {
    let by_completion = match p.order.as_deref() {
        None | Some("index") => false,
        Some("completion") => true,
        Some(other) => {
            return Err(ApiError::InvalidField {
                field: "order".into(),
                message: format!("order must be index or completion, not {other:?}"),
            });
        }
    };
    if app.jobs.get(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    let jobs = app.jobs.clone();
    // Pages of results, read as the client consumes them.
    let stream = futures::stream::unfold(Some(p.after), move |after| {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            let after = after?;
            let page = jobs.results(&id, after, by_completion, 1000).await.ok()?;
            if page.is_empty() {
                return None;
            }
            let next = page.last().map(|(k, _)| Some(*k));
            let mut out = Vec::new();
            for (key, bytes) in page {
                if by_completion {
                    // prepend the sequence number
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&bytes).unwrap_or_default();
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("seq".into(), key.into());
                    }
                    out.extend(serde_json::to_vec(&v).unwrap_or_default());
                } else {
                    out.extend(bytes);
                }
                out.push(b'\n');
            }
            Some((Ok::<_, Infallible>(bytes::Bytes::from(out)), next))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One Server-Sent Event.
#[derive(Serialize, ToSchema)]
pub struct SseEvent {
    /// `progress` or `summary`.
    pub event: String,
    /// JSON text.
    pub data: String,
}

/// Server-Sent Events: `progress` events while the job runs, then one `summary` event.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "An event stream: `progress` events (data: the progress object) while the job runs, then one `summary` event (data: the job)", content_type = "text/event-stream", body = SseEvent),
        JobLookupErrors))]
pub async fn events(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    if app.jobs.get(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    let jobs = app.jobs.clone();
    let stream = futures::stream::unfold((false, true), move |(done, first)| {
        let jobs = jobs.clone();
        let id = id.clone();
        async move {
            if done {
                return None;
            }
            if !first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let view = jobs.get(&id).await.ok().flatten()?;
            let finished = view.status.is_finished();
            let event = if finished {
                Event::default().event("summary").json_data(&view).ok()?
            } else {
                Event::default()
                    .event("progress")
                    .json_data(&view.progress)
                    .ok()?
            };
            Some((Ok::<_, Infallible>(event), (finished, false)))
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::Lines;

    /// Feeds `chunks` and collects every line, the last one at the end of the body included.
    fn split(chunks: &[&[u8]]) -> (Vec<String>, Lines) {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines.push(c);
            while let Some(l) = lines.next_line() {
                out.push(String::from_utf8(l.to_vec()).unwrap());
            }
        }
        if let Some(l) = lines.rest() {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        (out, lines)
    }

    #[test]
    fn lines_split_across_chunks_crlf_empty_lines_and_a_last_line_without_newline() {
        let (lines, _) = split(&[
            b"{\"a\"",
            b":1}\r",
            b"\n\n",
            b"{\"b\":2}\n  \r\n{\"c\"",
            b":3}",
        ]);
        assert_eq!(lines, ["{\"a\":1}", "", "{\"b\":2}", "  ", "{\"c\":3}"]);
        let (lines, _) = split(&[b"x\n", b"", b"y\n"]);
        assert_eq!(
            lines,
            ["x", "y"],
            "a final newline makes no empty last line"
        );
        let (lines, _) = split(&[b"\r\n\r\n"]);
        assert_eq!(lines, ["", ""]);
        let (lines, _) = split(&[]);
        assert!(lines.is_empty());
        // every byte in one chunk each
        let text = b"ab\ncd\r\n\nef";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split(&chunks).0, ["ab", "cd", "", "ef"]);
    }

    #[test]
    fn each_byte_is_looked_at_once_however_the_upload_is_chunked() {
        // A 1 MiB line in 4 KiB chunks, then two short lines: the old splitter looked at the
        // whole pending buffer again for every chunk (about 128 MiB looked at here).
        let mut body = vec![b'x'; 1 << 20];
        body.extend_from_slice(b"\n{}\n{}");
        let chunks: Vec<&[u8]> = body.chunks(4096).collect();
        let (lines, splitter) = split(&chunks);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), 1 << 20);
        assert!(
            splitter.examined <= body.len() as u64,
            "looked at {} bytes of a {}-byte body",
            splitter.examined,
            body.len()
        );
    }

    #[test]
    fn an_unfinished_line_is_measured_for_the_length_limit() {
        let mut lines = Lines::default();
        lines.push(b"done\nnot yet");
        assert_eq!(lines.next_line().as_deref(), Some(&b"done"[..]));
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.unfinished(), 7);
    }
}
