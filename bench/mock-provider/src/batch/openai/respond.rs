//! OpenAI's answers other than objects of its own: error bodies, refusals (counted as refused)
//! and list objects.

use serde_json::{Value, json};

use super::state::Env;
use crate::batch::stats::{Op, Side};
use crate::batch::wire;
use crate::reply::Reply;

/// OpenAI's error body.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// An error answer, counted as refused.
pub fn refuse(
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

pub fn missing(env: &Env<'_>, param: &str) -> Reply {
    refuse(
        env,
        400,
        &format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

pub fn no_file(env: &Env<'_>, id: &str, param: &str) -> Reply {
    refuse(
        env,
        404,
        &format!("No such File object: {id}"),
        Some(param),
        None,
    )
}

/// A list object, as both list endpoints answer.
pub fn list(data: Vec<Value>, has_more: bool) -> Reply {
    let first = data.first().map(|f| f["id"].clone());
    let last = data.last().map(|f| f["id"].clone());
    wire::json(
        200,
        &json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}),
    )
}
