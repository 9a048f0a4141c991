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

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::config::Limits;
use super::plan::{Fate, Plan};
use super::request::Request;
use super::stats::{Op, Side};
use super::timeline::{Created, Ending, Progress, Stage, Timeline};
use super::wire;
use crate::Reply;
use crate::api::Api;
use crate::cache::CacheUse;

/// The purposes a file can be uploaded with.
const PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

/// The endpoints OpenAI runs batches for; the stand-in runs the first.
const ENDPOINTS: [&str; 8] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
];

/// Batch files are kept for 30 days.
const FILE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// At most this many validation errors are listed for a failed batch.
const MAX_ERRORS: usize = 100;

/// Files and batches.
#[derive(Default)]
pub struct State {
    files: Files,
    /// Batches in creation order.
    batches: Vec<Batch>,
    by_id: HashMap<String, usize>,
}

/// What the handlers work with: the state above, the batch settings and counters, the answers.
type Env<'a> = super::env::Env<'a, State>;

/// Uploaded and written files.
#[derive(Default)]
struct Files {
    by_id: HashMap<String, File>,
    /// Ids in the order the files were made, for listing.
    order: Vec<String>,
}

impl Files {
    fn add(&mut self, file: File) {
        self.order.push(file.id.clone());
        self.by_id.insert(file.id.clone(), file);
    }
}

struct File {
    id: String,
    purpose: &'static str,
    filename: String,
    created: Created,
    content: Bytes,
}

impl File {
    fn new(purpose: &'static str, filename: String, content: Bytes) -> File {
        File {
            id: wire::random_id("file-", 22, false),
            purpose,
            filename,
            created: Created::now(),
            content,
        }
    }

    fn render(&self) -> Value {
        let expires = matches!(self.purpose, "batch" | "batch_output")
            .then(|| self.created.unix(FILE_LIFETIME));
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.content.len(),
            "created_at": self.created.unix(Duration::ZERO),
            "expires_at": expires,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": null,
        })
    }
}

/// One request of a batch's input file.
#[derive(Debug)]
struct Line {
    custom_id: String,
    body: Box<RawValue>,
    /// The online API's 400 for this body, when it would refuse it.
    refusal: Option<Value>,
}

/// A validation error of an input file.
#[derive(Debug, Clone, PartialEq)]
struct InputError {
    code: &'static str,
    message: String,
    param: Option<&'static str>,
    line: Option<usize>,
}

impl InputError {
    fn render(&self) -> Value {
        json!({"code": self.code, "message": self.message, "param": self.param, "line": self.line})
    }
}

/// A batch's requests, or why its input file was refused.
enum Input {
    Valid {
        lines: Vec<Line>,
        plan: Plan,
        /// By input position: what the prompt cache does for each request that succeeds.
        cache: Vec<CacheUse>,
    },
    Invalid(Vec<InputError>),
}

struct Batch {
    id: String,
    input_file_id: String,
    metadata: Value,
    model: Option<String>,
    created: Created,
    timeline: Timeline,
    cancel: Option<Duration>,
    input: Input,
    /// The output and error file ids, once the batch is over and they are written.
    written: Option<(Option<String>, Option<String>)>,
}

/// Where an OpenAI batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed => "failed",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
        }
    }

    fn over(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Completed | Status::Expired | Status::Cancelled
        )
    }
}

/// What happened to one request, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    /// Answered with an error status (in the error file with a response).
    Failed,
    /// Not run before the batch expired (in the error file with `batch_expired`).
    Expired,
}

impl Batch {
    fn len(&self) -> usize {
        match &self.input {
            Input::Valid { lines, .. } => lines.len(),
            Input::Invalid(_) => 0,
        }
    }

    fn progress(&self, t: Duration) -> Progress {
        self.timeline.progress(self.len(), t, self.cancel)
    }

    /// The batch's status at `t`.
    fn status(&self, t: Duration) -> Status {
        let p = self.progress(t);
        if matches!(self.input, Input::Invalid(_))
            && t >= self.timeline.start
            && self.cancel.is_none_or(|c| c >= self.timeline.start)
        {
            return Status::Failed;
        }
        match p.stage {
            Stage::Waiting => Status::Validating,
            Stage::Processing => Status::InProgress,
            Stage::Finishing => Status::Finalizing,
            Stage::Cancelling { .. } => Status::Cancelling,
            Stage::Ended {
                how: Ending::Cancelled { .. },
                ..
            } => Status::Cancelled,
            Stage::Ended {
                how: Ending::Expired,
                ..
            } => Status::Expired,
            Stage::Ended {
                how: Ending::Completed,
                ..
            } if self.has_expired_requests() => Status::Expired,
            Stage::Ended { .. } => Status::Completed,
        }
    }

    /// True when a request is drawn to expire (its body not refused first).
    fn has_expired_requests(&self) -> bool {
        match &self.input {
            Input::Valid { lines, plan, .. } => plan
                .fates
                .iter()
                .zip(lines)
                .any(|(f, l)| *f == Fate::Expire && l.refusal.is_none()),
            Input::Invalid(_) => false,
        }
    }

    /// The result of each request known at `t`, in processing order (input positions).
    fn results(&self, t: Duration) -> Vec<(usize, Outcome)> {
        let Input::Valid { lines, plan, .. } = &self.input else {
            return Vec::new();
        };
        let p = self.progress(t);
        let cancelled = matches!(
            p.stage,
            Stage::Cancelling { .. }
                | Stage::Ended {
                    how: Ending::Cancelled { .. },
                    ..
                }
        );
        let ended = p.ended();
        let mut out = Vec::with_capacity(p.processed);
        for &i in &plan.processing[..p.processed] {
            let r = if lines[i].refusal.is_some() {
                Some(Outcome::Failed)
            } else {
                match plan.fates[i] {
                    Fate::Succeed => Some(Outcome::Succeeded),
                    Fate::Fail => Some(Outcome::Failed),
                    // A request that was to expire is reported when its batch is over.
                    Fate::Expire => (ended && !cancelled).then_some(Outcome::Expired),
                }
            };
            if let Some(r) = r {
                out.push((i, r));
            }
        }
        if let Stage::Ended {
            how: Ending::Expired,
            ..
        } = p.stage
        {
            out.extend(
                plan.processing[p.processed..]
                    .iter()
                    .map(|&i| (i, Outcome::Expired)),
            );
        }
        out
    }

    /// The Batch object at `t`; `fresh` for the answer to its creation (still `validating`).
    fn render(&self, t: Duration, fresh: bool, env: &Env<'_>) -> Value {
        let status = if fresh {
            Status::Validating
        } else {
            self.status(t)
        };
        let results = if fresh { Vec::new() } else { self.results(t) };
        let at = |d: Duration| Some(self.created.unix(d));
        let tl = &self.timeline;
        // Processing stopped at the cancel or the expiry, if one came first.
        let stop = [Some(t), self.cancel, tl.expire.filter(|e| *e < tl.done)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(t);
        let valid = matches!(self.input, Input::Valid { .. });
        let reached = |d: Duration| (!fresh && valid && stop >= d).then(|| at(d)).flatten();
        let (mut completed_at, mut expired_at, mut cancelled_at) = (None, None, None);
        let mut failed_at = None;
        if let Stage::Ended { at: end, .. } = self.progress(t).stage {
            match status {
                Status::Completed => completed_at = at(end),
                Status::Expired => expired_at = at(end),
                Status::Cancelled => cancelled_at = at(end),
                _ => {}
            }
        }
        if status == Status::Failed {
            failed_at = at(tl.start);
        }
        let counted = |r: Outcome| results.iter().filter(|(_, x)| *x == r).count();
        let succeeded = counted(Outcome::Succeeded);
        let failed = results.len() - succeeded;
        let total = match status {
            Status::Validating | Status::Failed => 0,
            _ => self.len(),
        };
        let cached: u64 = match &self.input {
            Input::Valid { cache, .. } => results
                .iter()
                .filter(|(i, r)| *r == Outcome::Succeeded && cache[*i] == CacheUse::Read)
                .map(|_| env.answers.cache.tokens())
                .sum(),
            Input::Invalid(_) => 0,
        };
        let (input_tokens, output_tokens) = (
            succeeded as u64 * env.answers.prompt_tokens,
            succeeded as u64 * env.answers.completion_tokens,
        );
        let errors = match &self.input {
            Input::Invalid(errors) if status == Status::Failed => json!({
                "object": "list",
                "data": errors.iter().map(InputError::render).collect::<Vec<_>>(),
            }),
            _ => Value::Null,
        };
        let (output_file_id, error_file_id) = self.written.clone().unwrap_or_default();
        let mut batch = json!({
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": status.name(),
            "output_file_id": output_file_id,
            "error_file_id": error_file_id,
            "created_at": self.created.unix(Duration::ZERO),
            "in_progress_at": reached(tl.start),
            "expires_at": self.created.unix(tl.expires()),
            "finalizing_at": reached(tl.processed),
            "completed_at": completed_at,
            "failed_at": failed_at,
            "expired_at": expired_at,
            "cancelling_at": self.cancel.and_then(at),
            "cancelled_at": cancelled_at,
            "request_counts": {"total": total, "completed": succeeded, "failed": failed},
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "metadata": self.metadata,
        });
        if let Some(model) = &self.model {
            batch["model"] = Value::String(model.clone());
        }
        batch
    }

    /// The output and error files of a batch that is over.
    fn files(&self, t: Duration, env: &Env<'_>) -> (Vec<u8>, Vec<u8>) {
        let (mut output, mut errors) = (Vec::new(), Vec::new());
        let Input::Valid { lines, cache, .. } = &self.input else {
            return (output, errors);
        };
        for (i, result) in self.results(t) {
            let line = &lines[i];
            let response = |status: u16, body: Box<RawValue>| {
                json!({
                    "status_code": status,
                    "request_id": wire::random_id("req_", 32, true),
                    "body": body,
                })
            };
            let (file, response, error) = match result {
                Outcome::Succeeded => {
                    let body = env.answers.canned.success(
                        Api::OpenAi,
                        line.body.get().as_bytes(),
                        cache[i],
                    );
                    (&mut output, Some(response(200, raw(body))), Value::Null)
                }
                Outcome::Failed => {
                    let (status, body) = match &line.refusal {
                        Some(refusal) => (400, refusal.clone()),
                        None => (
                            500,
                            error_body(
                                "The server had an error while processing your request.",
                                "server_error",
                                None,
                                None,
                            ),
                        ),
                    };
                    let body = raw(body.to_string().into_bytes());
                    (&mut errors, Some(response(status, body)), Value::Null)
                }
                Outcome::Expired => (
                    &mut errors,
                    None,
                    json!({
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion window expired.",
                    }),
                ),
            };
            let entry = json!({
                "id": wire::random_id("batch_req_", 32, true),
                "custom_id": line.custom_id,
                "response": response,
                "error": error,
            });
            serde_json::to_writer(&mut *file, &entry).expect("writing to memory");
            file.push(b'\n');
        }
        (output, errors)
    }
}

/// Bytes known to be one JSON value, as a raw value to embed.
fn raw(json: Vec<u8>) -> Box<RawValue> {
    let text = String::from_utf8(json).expect("the stand-in writes UTF-8");
    RawValue::from_string(text).expect("the stand-in writes valid JSON")
}

/// OpenAI's error body.
fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// An error answer, counted as refused.
fn refuse(
    env: &Env<'_>,
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    env.stats.count(Side::OpenAi, Op::Refused);
    let kind = if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    wire::json(status, &error_body(message, kind, param, code))
}

fn missing(env: &Env<'_>, param: &str) -> Reply {
    refuse(
        env,
        400,
        &format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

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
            with_batch(env, id, |b, t| wire::json(200, &b.render(t, false, env)))
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

fn with_file(env: &Env<'_>, id: &str, answer: impl FnOnce(&File) -> Reply) -> Reply {
    let state = env.lock();
    match state.files.by_id.get(id) {
        Some(f) => answer(f),
        None => {
            drop(state);
            no_file(env, id, "id")
        }
    }
}

fn no_file(env: &Env<'_>, id: &str, param: &str) -> Reply {
    refuse(
        env,
        404,
        &format!("No such File object: {id}"),
        Some(param),
        None,
    )
}

/// Runs `answer` on batch `id` with the time elapsed since its creation, once any files it is
/// due are written.
fn with_batch(
    env: &Env<'_>,
    id: &str,
    answer: impl FnOnce(&mut Batch, Duration) -> Reply,
) -> Reply {
    let mut guard = env.lock();
    let state = &mut *guard;
    let Some(&index) = state.by_id.get(id) else {
        drop(guard);
        return refuse(
            env,
            404,
            &format!("No batch found with id '{id}'."),
            Some("batch_id"),
            None,
        );
    };
    let batch = &mut state.batches[index];
    let t = batch.created.elapsed();
    write_files(env, &mut state.files, batch, t);
    answer(batch, t)
}

/// Writes the output and error files of a batch that is over and has none yet.
fn write_files(env: &Env<'_>, files: &mut Files, batch: &mut Batch, t: Duration) {
    let status = batch.status(t);
    if batch.written.is_some() || !status.over() || status == Status::Failed {
        return;
    }
    let (output, errors) = batch.files(t, env);
    let mut store = |content: Vec<u8>, kind: &str| {
        if content.is_empty() {
            return None;
        }
        let name = format!("{}_{kind}.jsonl", batch.id);
        let file = File::new("batch_output", name, Bytes::from(content));
        let id = file.id.clone();
        files.add(file);
        Some(id)
    };
    let output = store(output, "output");
    let errors = store(errors, "error");
    batch.written = Some((output, errors));
}

fn cancel(env: &Env<'_>, batch: &mut Batch, t: Duration) -> Reply {
    let status = batch.status(t);
    // 400, not 409: the official SDKs retry a 409.
    if status.over() {
        return refuse(
            env,
            400,
            &format!("Cannot cancel a batch with status '{}'.", status.name()),
            None,
            None,
        );
    }
    if batch.cancel.is_none() {
        batch.cancel = Some(t);
    }
    wire::json(200, &batch.render(t, false, env))
}

fn delete_file(env: &Env<'_>, id: &str) -> Reply {
    let mut state = env.lock();
    if state.files.by_id.remove(id).is_none() {
        drop(state);
        return no_file(env, id, "id");
    }
    state.files.order.retain(|f| f != id);
    wire::json(200, &json!({"id": id, "object": "file", "deleted": true}))
}

/// A list object, as both list endpoints answer.
fn list(data: Vec<Value>, has_more: bool) -> Reply {
    let first = data.first().map(|f| f["id"].clone());
    let last = data.last().map(|f| f["id"].clone());
    wire::json(
        200,
        &json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}),
    )
}

fn list_files(env: &Env<'_>, req: &Request) -> Reply {
    let state = env.lock();
    let purpose = req.query("purpose");
    let data = state
        .files
        .order
        .iter()
        .rev()
        .filter_map(|id| state.files.by_id.get(id))
        .filter(|f| purpose.is_none_or(|p| p == f.purpose))
        .map(File::render)
        .collect();
    list(data, false)
}

/// `GET /v1/batches`: newest first, `limit` of them (20 unless given), after batch `after`.
fn list_batches(env: &Env<'_>, req: &Request) -> Reply {
    env.stats.count(Side::OpenAi, Op::Lists);
    let limit = match req.query("limit").map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return refuse(
                env,
                400,
                "Invalid 'limit': expected an integer from 1 to 100.",
                Some("limit"),
                Some("invalid_value"),
            );
        }
    };
    let mut guard = env.lock();
    let state = &mut *guard;
    let newest_first = (0..state.batches.len()).rev();
    let after = req
        .query("after")
        .and_then(|id| state.by_id.get(id).copied());
    let picked: Vec<usize> = newest_first
        .filter(|&i| after.is_none_or(|a| i < a))
        .collect();
    let mut data = Vec::new();
    for &i in picked.iter().take(limit) {
        let batch = &mut state.batches[i];
        let t = batch.created.elapsed();
        write_files(env, &mut state.files, batch, t);
        data.push(batch.render(t, false, env));
    }
    list(data, picked.len() > limit)
}

/// `POST /v1/files`.
async fn upload(env: &Env<'_>, req: &Request) -> Reply {
    let Some(boundary) = req
        .content_type
        .as_deref()
        .and_then(|ct| multer::parse_boundary(ct).ok())
    else {
        return refuse(
            env,
            400,
            "Invalid Content-Type header: expected multipart/form-data with a boundary.",
            None,
            None,
        );
    };
    let (purpose, file) = match read_form(boundary, req.body.clone()).await {
        Ok(form) => form,
        Err(e) => {
            return refuse(
                env,
                400,
                &format!("Could not parse the multipart form: {e}"),
                None,
                None,
            );
        }
    };
    let Some(purpose) = purpose else {
        return missing(env, "purpose");
    };
    let Some(purpose) = PURPOSES.iter().copied().find(|p| *p == purpose) else {
        return refuse(
            env,
            400,
            &format!("'{purpose}' is not one of {PURPOSES:?} - 'purpose'"),
            Some("purpose"),
            None,
        );
    };
    let Some((filename, content)) = file else {
        return missing(env, "file");
    };
    let filename = filename.unwrap_or_else(|| "upload".to_owned());
    if content.len() > env.limits.openai_file_bytes {
        return refuse(
            env,
            413,
            "The file is larger than the 512 MB limit.",
            Some("file"),
            None,
        );
    }
    if purpose == "batch" && !filename.ends_with(".jsonl") {
        return refuse(
            env,
            400,
            "Invalid file format for Batch API. Must be .jsonl",
            None,
            None,
        );
    }
    env.stats.count(Side::OpenAi, Op::FilesUploaded);
    let file = File::new(purpose, filename, content);
    let answer = wire::json(200, &file.render());
    env.lock().files.add(file);
    answer
}

/// An uploaded file, by name, and its content.
type Upload = (Option<String>, Bytes);

/// The `purpose` and `file` fields of a multipart form (other fields are ignored).
async fn read_form(
    boundary: String,
    body: Bytes,
) -> Result<(Option<String>, Option<Upload>), multer::Error> {
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let (mut purpose, mut file) = (None, None);
    while let Some(field) = form.next_field().await? {
        let name = field.name().map(str::to_owned);
        let filename = field.file_name().map(str::to_owned);
        let data = field.bytes().await?;
        match name.as_deref() {
            Some("purpose") => purpose = Some(String::from_utf8_lossy(&data).trim().to_owned()),
            Some("file") => file = Some((filename, data)),
            _ => {}
        }
    }
    Ok((purpose, file))
}

/// The body of `POST /v1/batches`.
#[derive(Deserialize)]
struct CreateBatch {
    input_file_id: Option<String>,
    endpoint: Option<String>,
    completion_window: Option<String>,
    #[serde(default)]
    metadata: Value,
}

/// `POST /v1/batches`.
fn create(env: &Env<'_>, req: &Request) -> Reply {
    let parsed = wire::is_object(&req.body)
        .then(|| serde_json::from_slice::<CreateBatch>(&req.body).ok())
        .flatten();
    let Some(body) = parsed else {
        return refuse(
            env,
            400,
            "We could not parse the JSON body of your request: expected an object with input_file_id, endpoint and completion_window.",
            None,
            None,
        );
    };
    let Some(input_file_id) = body.input_file_id else {
        return missing(env, "input_file_id");
    };
    let Some(endpoint) = body.endpoint else {
        return missing(env, "endpoint");
    };
    let Some(window) = body.completion_window else {
        return missing(env, "completion_window");
    };
    if !ENDPOINTS.contains(&endpoint.as_str()) {
        return refuse(
            env,
            400,
            &format!("Invalid value: '{endpoint}'. Supported values are: {ENDPOINTS:?}."),
            Some("endpoint"),
            Some("invalid_value"),
        );
    }
    if endpoint != ENDPOINTS[0] {
        return refuse(
            env,
            400,
            &format!("The stand-in runs only /v1/chat/completions batches, not {endpoint}."),
            Some("endpoint"),
            Some("invalid_value"),
        );
    }
    if window != "24h" {
        return refuse(
            env,
            400,
            &format!("Invalid value: '{window}'. Supported values are: '24h'."),
            Some("completion_window"),
            Some("invalid_value"),
        );
    }
    if let Err(message) = check_metadata(&body.metadata) {
        return refuse(env, 400, &message, Some("metadata"), None);
    }
    let file = env
        .lock()
        .files
        .by_id
        .get(&input_file_id)
        .map(|f| (f.purpose, f.content.clone()));
    let content = match file {
        Some(("batch", content)) => content,
        Some((purpose, _)) => {
            let message = format!(
                "The input file {input_file_id} has purpose '{purpose}'; a batch needs purpose 'batch'."
            );
            return refuse(env, 400, &message, Some("input_file_id"), None);
        }
        None => return no_file(env, &input_file_id, "input_file_id"),
    };
    env.stats.count(Side::OpenAi, Op::BatchesCreated);
    let read = read_input(&content, env.limits);
    let config = env.config;
    let mut state = env.lock();
    let ordinal = state.batches.len() as u64 + 1;
    let (input, model) = match read {
        Ok((lines, model)) => {
            let plan = Plan::draw(lines.len(), config, ordinal);
            let mut cache = vec![CacheUse::None; lines.len()];
            for &i in &plan.processing {
                if plan.fates[i] == Fate::Succeed && lines[i].refusal.is_none() {
                    cache[i] = env
                        .answers
                        .cache
                        .lookup(Api::OpenAi, lines[i].body.get().as_bytes());
                }
            }
            (Input::Valid { lines, plan, cache }, model)
        }
        Err(errors) => (Input::Invalid(errors), None),
    };
    let batch = Batch {
        id: wire::random_id("batch_", 32, true),
        input_file_id,
        metadata: body.metadata,
        model,
        created: Created::now(),
        timeline: Timeline::new(config, 0.1, 0.9),
        cancel: None,
        input,
        written: None,
    };
    let answer = wire::json(200, &batch.render(Duration::ZERO, true, env));
    let index = state.batches.len();
    state.by_id.insert(batch.id.clone(), index);
    state.batches.push(batch);
    answer
}

/// Metadata: null, or at most 16 string values, keys up to 64 characters, values up to 512.
fn check_metadata(metadata: &Value) -> Result<(), String> {
    match metadata {
        Value::Null => Ok(()),
        Value::Object(map) if map.len() > 16 => {
            Err("Invalid 'metadata': at most 16 keys are allowed.".into())
        }
        Value::Object(map) => {
            for (k, v) in map {
                let Some(v) = v.as_str() else {
                    return Err(format!("Invalid 'metadata.{k}': expected a string."));
                };
                if k.chars().count() > 64 || v.chars().count() > 512 {
                    return Err(format!(
                        "Invalid 'metadata.{k}': keys are at most 64 characters and values at most 512."
                    ));
                }
            }
            Ok(())
        }
        _ => Err("Invalid 'metadata': expected an object.".into()),
    }
}

/// The fields of an input line, any JSON type, checked one by one.
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow, default)]
    custom_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    url: Option<&'a RawValue>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

/// The fields of a chat request that decide whether the online API would take it.
#[derive(Deserialize)]
struct ChatBody<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
}

/// Reads an input file: its requests and their model, or every reason (up to [`MAX_ERRORS`])
/// to fail the batch.
fn read_input(
    content: &[u8],
    limits: &Limits,
) -> Result<(Vec<Line>, Option<String>), Vec<InputError>> {
    let file_error = |code, message: String| {
        vec![InputError {
            code,
            message,
            param: None,
            line: None,
        }]
    };
    if content.len() > limits.openai_batch_bytes {
        return Err(file_error(
            "file_too_large",
            format!(
                "The input file is {} bytes; a batch input file can be at most {} bytes.",
                content.len(),
                limits.openai_batch_bytes
            ),
        ));
    }
    let mut raw_lines: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    if raw_lines.last().is_some_and(|l| l.is_empty()) {
        raw_lines.pop();
    }
    if raw_lines.is_empty() {
        return Err(file_error("empty_file", "The input file is empty.".into()));
    }
    if raw_lines.len() > limits.openai_requests {
        return Err(file_error(
            "too_many_tasks",
            format!(
                "The input file has {} requests; a batch can have at most {}.",
                raw_lines.len(),
                limits.openai_requests
            ),
        ));
    }
    let mut lines = Vec::with_capacity(raw_lines.len());
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut model: Option<String> = None;
    for (n, bytes) in (1..).zip(raw_lines) {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let fail = |code, message: String, param| InputError {
            code,
            message,
            param,
            line: Some(n),
        };
        let (custom_id, body) = match read_line(bytes) {
            Ok(request) => request,
            Err((code, message, param)) => {
                errors.push(fail(code, message, param));
                continue;
            }
        };
        if !seen.insert(custom_id.clone()) {
            errors.push(fail(
                "duplicate_custom_id",
                "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.".into(),
                Some("custom_id"),
            ));
            continue;
        }
        let (line_model, refusal) = check_body(body);
        match (&model, &line_model) {
            (Some(first), Some(m)) if first != m => {
                errors.push(fail(
                    "model_mismatch",
                    format!("The provided model '{m}' does not match the batch's model '{first}': a batch runs one model."),
                    Some("body.model"),
                ));
                continue;
            }
            (None, Some(_)) => model = line_model,
            _ => {}
        }
        lines.push(Line {
            custom_id,
            body: body.to_owned(),
            refusal,
        });
    }
    if errors.is_empty() {
        Ok((lines, model))
    } else {
        Err(errors)
    }
}

/// Why a line fails its batch: code, message and the parameter at fault.
type LineError = (&'static str, String, Option<&'static str>);

/// One input line: its `custom_id` and `body`, once `method` and `url` are checked.
fn read_line(bytes: &[u8]) -> Result<(String, &RawValue), LineError> {
    let line = std::str::from_utf8(bytes)
        .ok()
        .filter(|text| wire::is_object(text.as_bytes()))
        .and_then(|text| serde_json::from_str::<RawLine>(text).ok())
        .ok_or((
            "invalid_json_line",
            "This line is not parseable as valid JSON.".to_owned(),
            None,
        ))?;
    let string = |raw: Option<&RawValue>, name: &'static str| {
        let raw = raw.ok_or((
            "missing_required_parameter",
            format!("Missing required parameter: '{name}'."),
            Some(name),
        ))?;
        serde_json::from_str::<String>(raw.get()).map_err(|_| {
            (
                "invalid_request",
                format!("Invalid '{name}': expected a string."),
                Some(name),
            )
        })
    };
    let custom_id = string(line.custom_id, "custom_id")?;
    if string(line.method, "method")? != "POST" {
        return Err((
            "invalid_request",
            "Invalid 'method': only POST is supported.".into(),
            Some("method"),
        ));
    }
    if string(line.url, "url")? != ENDPOINTS[0] {
        return Err((
            "url_mismatch",
            "The provided URL for this request does not match your batch endpoint.".into(),
            Some("url"),
        ));
    }
    let body = line.body.filter(|b| b.get().starts_with('{')).ok_or((
        "missing_required_parameter",
        "Missing required parameter: 'body' (an object).".to_owned(),
        Some("body"),
    ))?;
    Ok((custom_id, body))
}

/// A request body's model, and the online API's 400 for it when it would refuse it.
fn check_body(body: &RawValue) -> (Option<String>, Option<Value>) {
    let chat = serde_json::from_str::<ChatBody>(body.get()).ok();
    let model = chat
        .as_ref()
        .and_then(|c| c.model)
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok());
    let has_messages = chat
        .and_then(|c| c.messages)
        .is_some_and(|m| m.get().starts_with('['));
    let refusal = if model.is_none() {
        Some(error_body(
            "you must provide a model parameter",
            "invalid_request_error",
            None,
            None,
        ))
    } else if !has_messages {
        Some(error_body(
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("messages"),
            Some("missing_required_parameter"),
        ))
    } else {
        None
    };
    (model, refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, body: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{body}}}"#
        )
    }

    const BODY: &str = r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#;

    fn codes(content: &str, limits: &Limits) -> Vec<(&'static str, Option<usize>)> {
        read_input(content.as_bytes(), limits)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.code, e.line))
            .collect()
    }

    #[test]
    fn reads_good_lines_and_marks_bodies_the_online_api_would_refuse() {
        let content = [
            line("a", BODY),
            line("b", r#"{"messages":[]}"#),
            line("c", r#"{"model":"gpt-x"}"#),
        ]
        .join("\r\n")
            + "\n";
        let (lines, model) = read_input(content.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(model.as_deref(), Some("gpt-x"));
        let ids: Vec<&str> = lines.iter().map(|l| l.custom_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(lines[0].refusal.is_none());
        assert_eq!(
            lines[1].refusal.as_ref().unwrap()["error"]["message"],
            "you must provide a model parameter"
        );
        assert_eq!(
            lines[2].refusal.as_ref().unwrap()["error"]["param"],
            "messages"
        );
    }

    #[test]
    fn refuses_bad_files_with_openai_codes_and_line_numbers() {
        let l = Limits::default();
        let bad = [
            line("a", BODY),
            "{not json".into(),
            r#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#.into(),
            line("a", BODY),
            line("d", BODY).replace("/v1/chat/completions", "/v1/embeddings"),
            line("e", BODY).replace("\"POST\"", "\"GET\""),
            line("f", &BODY.replace("gpt-x", "gpt-y")),
            line("g", "[1]"),
            "[1,2]".into(),
        ]
        .join("\n");
        assert_eq!(
            codes(&bad, &l),
            [
                ("invalid_json_line", Some(2)),
                ("missing_required_parameter", Some(3)),
                ("duplicate_custom_id", Some(4)),
                ("url_mismatch", Some(5)),
                ("invalid_request", Some(6)),
                ("model_mismatch", Some(7)),
                ("missing_required_parameter", Some(8)),
                ("invalid_json_line", Some(9)),
            ]
        );
        assert_eq!(codes("", &l), [("empty_file", None)]);
        assert_eq!(codes("\n", &l), [("invalid_json_line", Some(1))]);
        let small = Limits {
            openai_requests: 2,
            openai_batch_bytes: 400,
            ..Limits::default()
        };
        let three = [line("a", BODY), line("b", BODY), line("c", BODY)].join("\n");
        assert_eq!(codes(&three, &small), [("too_many_tasks", None)]);
        let big = format!("{}\n", line("a", &BODY.replace("hi", &"x".repeat(400))));
        assert_eq!(codes(&big, &small), [("file_too_large", None)]);
        let many: String = (0..300).map(|_| "nope\n").collect();
        assert_eq!(codes(&many, &l).len(), MAX_ERRORS);
    }

    #[test]
    fn metadata_follows_the_rules() {
        assert!(check_metadata(&Value::Null).is_ok());
        assert!(check_metadata(&json!({"job": "nightly"})).is_ok());
        assert!(check_metadata(&json!({"job": 1})).is_err());
        assert!(check_metadata(&json!({"k": "v".repeat(513)})).is_err());
        let seventeen: serde_json::Map<String, Value> =
            (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(check_metadata(&Value::Object(seventeen)).is_err());
        assert!(check_metadata(&json!(["a"])).is_err());
    }
}
