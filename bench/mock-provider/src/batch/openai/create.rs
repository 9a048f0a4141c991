//! `POST /v1/batches`: the request checked, the input file read, the batch planned and kept.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::batch::{Batch, ENDPOINTS, Input, Line};
use super::input::read_input;
use super::respond::{missing, no_file, refuse};
use super::state::Env;
use crate::api::Api;
use crate::batch::plan::{Fate, Plan};
use crate::batch::request::Request;
use crate::batch::stats::{Op, Side};
use crate::batch::timeline::{Created, Timeline};
use crate::batch::wire;
use crate::cache::CacheUse;
use crate::reply::Reply;

/// The body of `POST /v1/batches`.
#[derive(Deserialize)]
struct CreateBatch {
    input_file_id: Option<String>,
    endpoint: Option<String>,
    completion_window: Option<String>,
    #[serde(default)]
    metadata: Value,
}

/// A creation request with every field there and valid.
struct Checked {
    input_file_id: String,
    metadata: Value,
}

/// `POST /v1/batches`.
pub fn create(env: &Env<'_>, req: &Request) -> Reply {
    let body = match check_request(env, req) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let content = match input_content(env, &body.input_file_id) {
        Ok(content) => content,
        Err(refused) => return refused,
    };
    env.stats.count(Side::OpenAi, Op::BatchesCreated);
    let read = read_input(&content, env.limits);
    let mut state = env.lock();
    let ordinal = state.batches.len() as u64 + 1;
    let (input, model) = match read {
        Ok((lines, model)) => (plan(env, lines, ordinal), model),
        Err(errors) => (Input::Invalid(errors), None),
    };
    let batch = Batch {
        id: wire::random_id("batch_", 32, true),
        input_file_id: body.input_file_id,
        metadata: body.metadata,
        model,
        created: Created::now(),
        timeline: Timeline::new(env.config, 0.1, 0.9),
        cancel: None,
        input,
        written: None,
    };
    let answer = wire::json(200, &batch.render(Duration::ZERO, true, env.answers));
    let index = state.batches.len();
    state.by_id.insert(batch.id.clone(), index);
    state.batches.push(batch);
    answer
}

/// The request's body, checked as OpenAI checks it; the refusal when it fails.
fn check_request(env: &Env<'_>, req: &Request) -> Result<Checked, Reply> {
    let parsed = wire::is_object(&req.body)
        .then(|| serde_json::from_slice::<CreateBatch>(&req.body).ok())
        .flatten();
    let Some(body) = parsed else {
        return Err(refuse(
            env,
            400,
            "We could not parse the JSON body of your request: expected an object with input_file_id, endpoint and completion_window.",
            None,
            None,
        ));
    };
    let Some(input_file_id) = body.input_file_id else {
        return Err(missing(env, "input_file_id"));
    };
    let Some(endpoint) = body.endpoint else {
        return Err(missing(env, "endpoint"));
    };
    let Some(window) = body.completion_window else {
        return Err(missing(env, "completion_window"));
    };
    if !ENDPOINTS.contains(&endpoint.as_str()) {
        return Err(refuse(
            env,
            400,
            &format!("Invalid value: '{endpoint}'. Supported values are: {ENDPOINTS:?}."),
            Some("endpoint"),
            Some("invalid_value"),
        ));
    }
    if endpoint != ENDPOINTS[0] {
        return Err(refuse(
            env,
            400,
            &format!("The stand-in runs only /v1/chat/completions batches, not {endpoint}."),
            Some("endpoint"),
            Some("invalid_value"),
        ));
    }
    if window != "24h" {
        return Err(refuse(
            env,
            400,
            &format!("Invalid value: '{window}'. Supported values are: '24h'."),
            Some("completion_window"),
            Some("invalid_value"),
        ));
    }
    if let Err(message) = check_metadata(&body.metadata) {
        return Err(refuse(env, 400, &message, Some("metadata"), None));
    }
    Ok(Checked {
        input_file_id,
        metadata: body.metadata,
    })
}

/// The content of input file `id`, which must have been uploaded for batches; the refusal when
/// it is missing or was not.
fn input_content(env: &Env<'_>, id: &str) -> Result<Bytes, Reply> {
    let file = env
        .lock()
        .files
        .by_id
        .get(id)
        .map(|f| (f.purpose, f.content.clone()));
    match file {
        Some(("batch", content)) => Ok(content),
        Some((purpose, _)) => {
            let message = format!(
                "The input file {id} has purpose '{purpose}'; a batch needs purpose 'batch'."
            );
            Err(refuse(env, 400, &message, Some("input_file_id"), None))
        }
        None => Err(no_file(env, id, "input_file_id")),
    }
}

/// The `ordinal`-th batch's valid input: its plan drawn, and the prompt cache asked for each
/// request that is to succeed, in processing order (the state is locked by the caller).
fn plan(env: &Env<'_>, lines: Vec<Line>, ordinal: u64) -> Input {
    let plan = Plan::draw(lines.len(), env.config, ordinal);
    let mut cache = vec![CacheUse::None; lines.len()];
    for &i in &plan.processing {
        if plan.fates[i] == Fate::Succeed && lines[i].refusal.is_none() {
            cache[i] = env
                .answers
                .cache
                .lookup(Api::OpenAi, lines[i].body.get().as_bytes());
        }
    }
    Input::Valid { lines, plan, cache }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
