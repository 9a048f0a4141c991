//! The output and error files of an OpenAI batch that is over: written once, when the batch is
//! first seen over, and kept with the other files.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::batch::{Batch, Input, Outcome, Status};
use super::file::{File, Files};
use super::respond::error_body;
use crate::answers::Answers;
use crate::api::Api;
use crate::batch::wire;

impl Batch {
    /// The output and error files of a batch that is over.
    fn files(&self, t: Duration, answers: &Answers) -> (Vec<u8>, Vec<u8>) {
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
                    let body =
                        answers
                            .canned
                            .success(Api::OpenAi, line.body.get().as_bytes(), cache[i]);
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

/// Writes the output and error files of a batch that is over and has none yet.
pub fn write_files(answers: &Answers, files: &mut Files, batch: &mut Batch, t: Duration) {
    let status = batch.status(t);
    if batch.written.is_some() || !status.over() || status == Status::Failed {
        return;
    }
    let (output, errors) = batch.files(t, answers);
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
