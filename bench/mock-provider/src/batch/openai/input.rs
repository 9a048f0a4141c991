//! A batch's input file read and checked as OpenAI checks it: its requests and their model, or
//! every reason to fail the batch, line by line.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::batch::{ENDPOINTS, InputError, Line};
use super::respond::error_body;
use crate::batch::config::Limits;
use crate::batch::wire;

/// At most this many validation errors are listed for a failed batch.
const MAX_ERRORS: usize = 100;

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
pub fn read_input(
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
}
