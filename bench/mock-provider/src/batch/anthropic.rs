//! Anthropic's Message Batches API.
//!
//! - `POST /v1/messages/batches` `{requests:[{custom_id, params}]}` -> a `message_batch`;
//!   `GET /v1/messages/batches` (`limit`, `after_id`, `before_id`),
//!   `GET /v1/messages/batches/{id}`, `POST /v1/messages/batches/{id}/cancel`,
//!   `GET /v1/messages/batches/{id}/results` (the `results_url`), and
//!   `DELETE /v1/messages/batches/{id}` (an ended batch).
//!
//! Creation checks what Anthropic checks at once (400 `invalid_request_error`): at least one
//! and at most 100,000 requests, each `custom_id` 1 to 64 characters of `[a-zA-Z0-9_-]` and
//! unique, each `params` an object; a body over 256 MB is refused with 413
//! `request_too_large`. The `params` themselves are checked when the request is processed, as
//! Anthropic does: one without `model`, `max_tokens` (1 or more) or `messages` comes back
//! `errored` with an `invalid_request_error`.
//!
//! A batch is `in_progress` until `--batch-delay-ms` has passed, then `ended`. As with Anthropic,
//! `request_counts` shows every request as `processing` until the batch ends, and only then the
//! `succeeded`, `errored`, `canceled` and `expired` tallies. A cancel makes it `canceling` for a
//! tenth of the delay, then `ended`: requests processed before the cancel keep their results,
//! the others are `canceled` (a cancel once ended is refused with 400, not 409, which the
//! official SDKs retry). With `--batch-expire-after-ms` the batch ends then, the requests not
//! yet processed `expired`. Results (`results_url`, once ended) list every request once, in an
//! order drawn from the seed rather than the input order (Anthropic does not keep it either):
//! `succeeded` with a Messages response, `errored` (`--batch-fail-pct`: an `api_error`),
//! `canceled` or `expired` (`--batch-expire-pct`). The stand-in checks no API key.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::plan::{Fate, Plan};
use super::request::Request;
use super::stats::{Op, Side};
use super::timeline::{Created, Ending, Progress, Stage, Timeline};
use super::wire;
use crate::answers::Answers;
use crate::api::Api;
use crate::cache::CacheUse;
use crate::reply::Reply;

/// Every batch, in creation order.
#[derive(Default)]
pub struct State {
    batches: Vec<Batch>,
    by_id: HashMap<String, usize>,
}

/// What the handlers work with: the state above, the batch settings and counters, the answers.
type Env<'a> = super::env::Env<'a, State>;

#[derive(Debug)]
struct Item {
    custom_id: String,
    params: Box<RawValue>,
    /// Why Anthropic would refuse these params, when it would.
    refusal: Option<String>,
}

struct Batch {
    id: String,
    created: Created,
    timeline: Timeline,
    cancel: Option<Duration>,
    items: Vec<Item>,
    plan: Plan,
    /// By input position: what the prompt cache does for each request that succeeds.
    cache: Vec<CacheUse>,
    /// The results file, written when the batch is first seen ended.
    results: Option<Bytes>,
    deleted: bool,
}

/// How one request came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Errored,
    Canceled,
    Expired,
}

impl Batch {
    fn outcomes(&self, t: Duration) -> Option<Vec<Outcome>> {
        let p = self.timeline.progress(self.items.len(), t, self.cancel);
        let Stage::Ended { how, .. } = p.stage else {
            return None;
        };
        let unprocessed = match how {
            Ending::Cancelled { .. } => Outcome::Canceled,
            Ending::Expired | Ending::Completed => Outcome::Expired,
        };
        let mut out = vec![unprocessed; self.items.len()];
        for &i in &self.plan.processing[..p.processed] {
            out[i] = if self.items[i].refusal.is_some() {
                Outcome::Errored
            } else {
                match self.plan.fates[i] {
                    Fate::Succeed => Outcome::Succeeded,
                    Fate::Fail => Outcome::Errored,
                    Fate::Expire => Outcome::Expired,
                }
            };
        }
        Some(out)
    }

    /// The `message_batch` object at `t`; `fresh` for the answer to its creation (still
    /// `in_progress`, whatever the delay).
    fn render(&self, t: Duration, host: &str, fresh: bool) -> Value {
        let p = if fresh {
            Progress {
                stage: Stage::Processing,
                processed: 0,
            }
        } else {
            self.timeline.progress(self.items.len(), t, self.cancel)
        };
        let (status, ended_at) = match p.stage {
            Stage::Cancelling { .. } => ("canceling", None),
            Stage::Ended { at, .. } => ("ended", Some(self.created.rfc3339(at))),
            _ => ("in_progress", None),
        };
        let outcomes = if fresh { None } else { self.outcomes(t) };
        let counts = match outcomes {
            None => json!({
                "processing": self.items.len(),
                "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0,
            }),
            Some(outcomes) => {
                let n = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
                json!({
                    "processing": 0,
                    "succeeded": n(Outcome::Succeeded),
                    "errored": n(Outcome::Errored),
                    "canceled": n(Outcome::Canceled),
                    "expired": n(Outcome::Expired),
                })
            }
        };
        let results_url = ended_at
            .is_some()
            .then(|| format!("http://{host}/v1/messages/batches/{}/results", self.id));
        json!({
            "id": self.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": ended_at,
            "created_at": self.created.rfc3339(Duration::ZERO),
            "expires_at": self.created.rfc3339(self.timeline.expires()),
            "archived_at": null,
            "cancel_initiated_at": self.cancel.map(|c| self.created.rfc3339(c)),
            "results_url": results_url,
        })
    }

    /// The results file: one line per request, in the listing order.
    fn write_results(&self, outcomes: &[Outcome], answers: &Answers) -> Bytes {
        let mut out = Vec::new();
        for &i in &self.plan.listing {
            let item = &self.items[i];
            let result = match outcomes[i] {
                Outcome::Succeeded => {
                    let message = answers.canned.success(
                        Api::Anthropic,
                        item.params.get().as_bytes(),
                        self.cache[i],
                    );
                    let message = String::from_utf8(message).expect("the stand-in writes UTF-8");
                    let message =
                        RawValue::from_string(message).expect("the stand-in writes valid JSON");
                    json!({"type": "succeeded", "message": message})
                }
                Outcome::Errored => {
                    let (kind, message) = match &item.refusal {
                        Some(why) => ("invalid_request_error", why.as_str()),
                        None => ("api_error", "Internal server error (stand-in provider)."),
                    };
                    json!({"type": "errored", "error": error_body(kind, message)})
                }
                Outcome::Canceled => json!({"type": "canceled"}),
                Outcome::Expired => json!({"type": "expired"}),
            };
            let line = json!({"custom_id": item.custom_id, "result": result});
            serde_json::to_writer(&mut out, &line).expect("writing to memory");
            out.push(b'\n');
        }
        Bytes::from(out)
    }
}

/// Anthropic's error body.
fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// An error answer, counted as refused.
fn refuse(env: &Env<'_>, status: u16, kind: &str, message: &str) -> Reply {
    env.stats.count(Side::Anthropic, Op::Refused);
    wire::json(status, &error_body(kind, message))
}

fn invalid(env: &Env<'_>, message: &str) -> Reply {
    refuse(env, 400, "invalid_request_error", message)
}

/// Answers a request to `/v1/messages/batches...`.
pub fn handle(env: &Env<'_>, req: &Request) -> Reply {
    let rest = req.path()["/v1/messages/batches".len()..].trim_matches('/');
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let stats = env.stats;
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", []) => create(env, req),
        ("GET", []) => list(env, req),
        ("GET", [id]) => {
            stats.count(Side::Anthropic, Op::Polls);
            with_batch(env, id, |b, t| {
                wire::json(200, &b.render(t, &req.host, false))
            })
        }
        ("POST", [id, "cancel"]) => {
            stats.count(Side::Anthropic, Op::Cancels);
            with_batch(env, id, |b, t| {
                let p = b.timeline.progress(b.items.len(), t, b.cancel);
                // 400, not 409: the official SDKs retry a 409.
                if p.ended() {
                    return refuse(
                        env,
                        400,
                        "invalid_request_error",
                        &format!("Message batch {} has ended and cannot be canceled.", b.id),
                    );
                }
                b.cancel.get_or_insert(t);
                wire::json(200, &b.render(t, &req.host, false))
            })
        }
        ("GET", [id, "results"]) => {
            stats.count(Side::Anthropic, Op::ResultsFetched);
            with_batch(env, id, |b, t| match b.outcomes(t) {
                None => invalid(
                    env,
                    &format!(
                        "Message batch {} is still processing; results are available once its processing_status is ended.",
                        b.id
                    ),
                ),
                Some(outcomes) => {
                    if b.results.is_none() {
                        b.results = Some(b.write_results(&outcomes, env.answers));
                    }
                    let results = b.results.clone().unwrap_or_default();
                    Reply::Answer {
                        status: 200,
                        body: results,
                        content_type: "application/x-jsonl",
                        retry_after: false,
                    }
                }
            })
        }
        ("DELETE", [id]) => with_batch(env, id, |b, t| {
            if b.outcomes(t).is_none() {
                return invalid(
                    env,
                    &format!(
                        "Message batch {} is still processing; cancel it first.",
                        b.id
                    ),
                );
            }
            b.deleted = true;
            wire::json(200, &json!({"id": b.id, "type": "message_batch_deleted"}))
        }),
        _ => refuse(
            env,
            404,
            "not_found_error",
            &format!("Not found: {} {}", req.method, req.path()),
        ),
    }
}

/// Runs `answer` on batch `id` with the time elapsed since its creation.
fn with_batch(
    env: &Env<'_>,
    id: &str,
    answer: impl FnOnce(&mut Batch, Duration) -> Reply,
) -> Reply {
    let mut state = env.lock();
    let index = state.by_id.get(id).copied();
    match index.map(|i| &mut state.batches[i]).filter(|b| !b.deleted) {
        Some(batch) => {
            let t = batch.created.elapsed();
            answer(batch, t)
        }
        None => {
            drop(state);
            refuse(
                env,
                404,
                "not_found_error",
                &format!("Message batch {id} not found."),
            )
        }
    }
}

/// `GET /v1/messages/batches`: newest first, `limit` of them (20 unless given, at most 1000),
/// older than `after_id` or newer than `before_id`.
fn list(env: &Env<'_>, req: &Request) -> Reply {
    env.stats.count(Side::Anthropic, Op::Lists);
    let limit = match req.query("limit").map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return invalid(env, "limit: Input should be between 1 and 1000"),
    };
    let state = env.lock();
    let position = |name| req.query(name).and_then(|id| state.by_id.get(id).copied());
    let (after, before) = (position("after_id"), position("before_id"));
    let mut picked: Vec<&Batch> = state
        .batches
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, b)| {
            !b.deleted && after.is_none_or(|a| *i < a) && before.is_none_or(|b| *i > b)
        })
        .map(|(_, b)| b)
        .collect();
    // With before_id the page is the one just newer than it.
    if before.is_some() && picked.len() > limit {
        picked.drain(..picked.len() - limit);
    }
    let has_more = picked.len() > limit;
    let data: Vec<Value> = picked
        .iter()
        .take(limit)
        .map(|b| b.render(b.created.elapsed(), &req.host, false))
        .collect();
    let first = data.first().map(|b| b["id"].clone());
    let last = data.last().map(|b| b["id"].clone());
    wire::json(
        200,
        &json!({"data": data, "has_more": has_more, "first_id": first, "last_id": last}),
    )
}

/// The body of `POST /v1/messages/batches`.
#[derive(Deserialize)]
struct CreateBody {
    requests: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    custom_id: String,
    params: Box<RawValue>,
}

/// The fields of a Messages request that decide whether Anthropic would take it.
#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<Value>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
}

/// Why Anthropic would refuse these Messages params, if it would.
fn check_params(params: &RawValue) -> Option<String> {
    let Ok(p) = serde_json::from_str::<Params>(params.get()) else {
        return Some("params: Input should be a valid dictionary".into());
    };
    if !p.model.is_some_and(|m| m.get().starts_with('"')) {
        return Some("model: Field required".into());
    }
    match p.max_tokens.as_ref().map(Value::as_u64) {
        None => return Some("max_tokens: Field required".into()),
        Some(Some(n)) if n >= 1 => {}
        Some(_) => return Some("max_tokens: Input should be greater than or equal to 1".into()),
    }
    if !p.messages.is_some_and(|m| m.get().starts_with('[')) {
        return Some("messages: Field required".into());
    }
    None
}

/// True for a `custom_id` Anthropic takes: 1 to 64 characters of `[a-zA-Z0-9_-]`.
fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads a creation body: its requests, or the 400 message to refuse it with.
fn read_requests(body: &[u8], limit: usize) -> Result<Vec<Item>, String> {
    if !wire::is_object(body) {
        return Err("invalid request body: expected an object with `requests`".into());
    }
    let body: CreateBody =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    if body.requests.is_empty() {
        return Err("requests: List should have at least 1 item after validation, not 0".into());
    }
    if body.requests.len() > limit {
        return Err(format!(
            "requests: List should have at most {limit} items after validation, not {}",
            body.requests.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(body.requests.len());
    for (i, r) in body.requests.into_iter().enumerate() {
        if !valid_custom_id(&r.custom_id) {
            return Err(format!(
                "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            ));
        }
        if !r.params.get().starts_with('{') {
            return Err(format!(
                "requests.{i}.params: Input should be a valid dictionary"
            ));
        }
        if !seen.insert(r.custom_id.clone()) {
            return Err(format!(
                "requests.{i}.custom_id: duplicate custom_id '{}'; each request in a batch needs its own",
                r.custom_id
            ));
        }
        items.push(Item {
            refusal: check_params(&r.params),
            custom_id: r.custom_id,
            params: r.params,
        });
    }
    Ok(items)
}

/// `POST /v1/messages/batches`.
fn create(env: &Env<'_>, req: &Request) -> Reply {
    let limits = env.limits;
    if req.body.len() > limits.anthropic_bytes {
        return refuse(
            env,
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        );
    }
    let items = match read_requests(&req.body, limits.anthropic_requests) {
        Ok(items) => items,
        Err(message) => return invalid(env, &message),
    };
    env.stats.count(Side::Anthropic, Op::BatchesCreated);
    let config = env.config;
    let mut state = env.lock();
    let plan = Plan::draw(items.len(), config, state.batches.len() as u64 + 1);
    let mut cache = vec![CacheUse::None; items.len()];
    for &i in &plan.processing {
        if plan.fates[i] == Fate::Succeed && items[i].refusal.is_none() {
            cache[i] = env
                .answers
                .cache
                .lookup(Api::Anthropic, items[i].params.get().as_bytes());
        }
    }
    let batch = Batch {
        id: wire::random_id("msgbatch_", 24, false),
        created: Created::now(),
        timeline: Timeline::new(config, 0.0, 1.0),
        cancel: None,
        items,
        plan,
        cache,
        results: None,
        deleted: false,
    };
    let answer = batch.render(Duration::ZERO, &req.host, true);
    let index = state.batches.len();
    state.by_id.insert(batch.id.clone(), index);
    state.batches.push(batch);
    wire::json(200, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &str =
        r#"{"model":"claude-x","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;

    fn body(ids: &[&str]) -> String {
        let requests: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"custom_id":"{id}","params":{PARAMS}}}"#))
            .collect();
        format!(r#"{{"requests":[{}]}}"#, requests.join(","))
    }

    #[test]
    fn custom_ids_follow_the_pattern() {
        assert!(valid_custom_id("item-1_A"));
        assert!(valid_custom_id(&"a".repeat(64)));
        for bad in ["", "a b", "é", "a.b", &"a".repeat(65)] {
            assert!(!valid_custom_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn creation_bodies_are_checked_as_anthropic_does() {
        let items = read_requests(body(&["a", "b"]).as_bytes(), 10).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.refusal.is_none()));
        let err = |b: &str| read_requests(b.as_bytes(), 2).unwrap_err();
        assert!(err(&body(&["a", "a"])).contains("duplicate"));
        assert!(err(&body(&["a", "b", "c"])).contains("at most 2 items"));
        assert!(err(&body(&["ok", "not ok"])).starts_with("requests.1.custom_id"));
        assert!(err(r#"{"requests":[]}"#).contains("at least 1 item"));
        assert!(err(r#"{"requests":[{"custom_id":"a","params":[1]}]}"#).contains("params"));
        assert!(err(r#"{"nothing":1}"#).starts_with("invalid request body"));
        assert!(err("not json").starts_with("invalid request body"));
        assert!(err(r#"[[{"custom_id":"a","params":{}}]]"#).starts_with("invalid request body"));
    }

    #[test]
    fn params_are_checked_when_processed() {
        let check = |p: &str| check_params(&RawValue::from_string(p.into()).unwrap());
        assert_eq!(check(PARAMS), None);
        assert_eq!(
            check(r#"{"max_tokens":1,"messages":[]}"#).as_deref(),
            Some("model: Field required")
        );
        assert_eq!(
            check(r#"{"model":"m","messages":[]}"#).as_deref(),
            Some("max_tokens: Field required")
        );
        assert!(check(r#"{"model":"m","max_tokens":0,"messages":[]}"#).is_some());
        assert_eq!(
            check(r#"{"model":"m","max_tokens":5}"#).as_deref(),
            Some("messages: Field required")
        );
    }
}
