//! The stand-in's batch APIs and prompt-cache usage, over loopback HTTP with reqwest, against
//! the built binary (started per test on a free port, ended when the test ends).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A running stand-in.
struct Mock {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Mock {
    /// Starts the stand-in with these flags on a free loopback port.
    fn start(flags: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge-mock"))
            .args(["--listen", "127.0.0.1:0", "--threads", "1"])
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the stand-in starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Mock {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth("sk-test")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn text(&self, path_or_url: &str) -> (u16, String) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        let resp = self
            .client
            .get(url)
            .header("x-api-key", "sk-test")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth("sk-test")
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Uploads `content` as a batch input file named `name`, as the OpenAI SDKs do.
    async fn upload(&self, name: &str, content: &str) -> (u16, Value) {
        let form = Form::new().text("purpose", "batch").part(
            "file",
            Part::bytes(content.as_bytes().to_vec())
                .file_name(name.to_owned())
                .mime_str("application/octet-stream")
                .unwrap(),
        );
        let resp = self
            .client
            .post(self.url("/v1/files"))
            .bearer_auth("sk-test")
            .multipart(form)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Polls `path` every 10 ms until `done` holds (at most 10 s); every answer seen, in order.
    async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let (status, body) = self.get(path).await;
            assert_eq!(status, 200, "{body}");
            let finished = done(&body);
            seen.push(body);
            if finished {
                return seen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "not done in time: {}",
                seen.last().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stats(&self) -> Value {
        self.get("/stats").await.1
    }

    /// Uploads `content`, makes a chat batch of it and polls it until `done`: the batch as
    /// created, and every poll's answer.
    async fn openai_batch(
        &self,
        content: &str,
        done: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let (status, file) = self.upload("in.jsonl", content).await;
        assert_eq!(status, 200, "{file}");
        let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                            "completion_window": "24h"});
        let (status, batch) = self.post("/v1/batches", &create).await;
        assert_eq!(status, 200, "{batch}");
        let path = format!("/v1/batches/{}", batch["id"].as_str().unwrap());
        let seen = self.poll(&path, done).await;
        (batch, seen)
    }

    /// The lines of OpenAI file `id`.
    async fn file_lines(&self, id: &Value) -> Vec<Value> {
        let (status, text) = self
            .text(&format!("/v1/files/{}/content", id.as_str().unwrap()))
            .await;
        assert_eq!(status, 200, "{text}");
        lines(&text)
    }

    /// Makes a message batch of `body` and polls it until it ends: every poll's answer, and
    /// the results read from its `results_url`.
    async fn message_batch(&self, body: &Value) -> (Vec<Value>, Vec<Value>) {
        let (status, batch) = self.post("/v1/messages/batches", body).await;
        assert_eq!(status, 200, "{batch}");
        let path = format!("/v1/messages/batches/{}", batch["id"].as_str().unwrap());
        let seen = self
            .poll(&path, |b| b["processing_status"] == "ended")
            .await;
        let url = seen.last().unwrap()["results_url"].as_str().unwrap();
        let (status, text) = self.text(url).await;
        assert_eq!(status, 200, "{text}");
        (seen, lines(&text))
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TEXT: &str = "Verdict: 1";

/// A chat request with a judge's fixed system prompt and item `i`.
fn chat_body(i: usize) -> Value {
    json!({"model": "gpt-judge", "messages": [
        {"role": "system", "content": "You are a judge. Answer Verdict: 1 or Verdict: 0."},
        {"role": "user", "content": format!("item {i}")},
    ]})
}

/// An OpenAI batch input file of `n` chat requests, ids `item-0` ...
fn jsonl(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"custom_id": format!("item-{i}"), "method": "POST",
                   "url": "/v1/chat/completions", "body": chat_body(i)})
            .to_string()
                + "\n"
        })
        .collect()
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Drops every null-valued field, at every depth.
fn without_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(without_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(without_nulls),
        _ => {}
    }
}

/// Checks `value` against OpenAI's published schema `name` (see the fixture). The API sends
/// `null` for fields not set yet (`output_file_id`, `completed_at`, ...) where the spec types
/// them as plain strings or integers, so null fields are left out first (a required field that
/// is null is then missing, and still refused).
fn check_schema(name: &str, value: &Value) {
    let mut doc: Value =
        serde_json::from_str(include_str!("fixtures/openai-batch-schemas.json")).unwrap();
    let schema = doc["components"]["schemas"][name].clone();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(!required.is_empty());
    doc["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::validator_for(&doc).unwrap();
    let mut value = value.clone();
    without_nulls(&mut value);
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?} in {value}");
    // The check can fail: without a required field the object is refused.
    let mut broken = value.clone();
    broken.as_object_mut().unwrap().remove(required[0]);
    assert!(
        !validator.is_valid(&broken),
        "{name} without {}",
        required[0]
    );
}

#[tokio::test]
async fn an_openai_batch_goes_from_upload_to_output_and_error_files() {
    let mock = Mock::start(&[
        "--batch-delay-ms",
        "600",
        "--batch-fail-pct",
        "20",
        "--batch-seed",
        "3",
        "--cached-tokens",
        "100",
        "--text",
        TEXT,
    ]);
    let input = jsonl(50);
    let (status, file) = mock.upload("judge.jsonl", &input).await;
    assert_eq!(status, 200, "{file}");
    check_schema("OpenAIFile", &file);
    let file_id = file["id"].as_str().unwrap();
    assert!(file_id.starts_with("file-"), "{file_id}");
    assert_eq!(file["bytes"], input.len());
    assert_eq!(
        (&file["purpose"], &file["filename"], &file["object"]),
        (&json!("batch"), &json!("judge.jsonl"), &json!("file"))
    );
    assert_eq!(mock.get(&format!("/v1/files/{file_id}")).await.1, file);
    let (status, content) = mock.text(&format!("/v1/files/{file_id}/content")).await;
    assert_eq!((status, content.as_str()), (200, input.as_str()));

    let (status, batch) = mock
        .post(
            "/v1/batches",
            &json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                    "completion_window": "24h", "metadata": {"job": "nightly"}}),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    check_schema("Batch", &batch);
    let id = batch["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("batch_"), "{id}");
    assert_eq!(batch["status"], "validating");
    assert_eq!(
        batch["request_counts"],
        json!({"total": 0, "completed": 0, "failed": 0})
    );
    assert_eq!(batch["metadata"], json!({"job": "nightly"}));
    assert!(batch["output_file_id"].is_null() && batch["in_progress_at"].is_null());

    let seen = mock
        .poll(&format!("/v1/batches/{id}"), |b| b["status"] == "completed")
        .await;
    let statuses: Vec<&str> = seen.iter().map(|b| b["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"in_progress"), "{statuses:?}");
    let order = ["validating", "in_progress", "finalizing", "completed"];
    let ranks: Vec<usize> = statuses
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{statuses:?}");
    // Counts grow from poll to poll, and some poll saw the batch part done.
    let done: Vec<u64> = seen
        .iter()
        .map(|b| {
            b["request_counts"]["completed"].as_u64().unwrap()
                + b["request_counts"]["failed"].as_u64().unwrap()
        })
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert!(done.iter().any(|d| (1..50).contains(d)), "{done:?}");
    for b in &seen {
        check_schema("Batch", b);
    }

    let batch = seen.last().unwrap();
    assert_eq!(
        batch["request_counts"],
        json!({"total": 50, "completed": 40, "failed": 10})
    );
    for field in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(batch[field].as_u64().is_some(), "{field}: {batch}");
    }
    assert_eq!(batch["model"], "gpt-judge");
    // One request wrote the shared prefix to the cache; the other 39 read it.
    assert_eq!(
        batch["usage"]["input_tokens_details"]["cached_tokens"],
        39 * 100
    );
    assert_eq!(batch["usage"]["input_tokens"], 40 * 150);

    let output_id = batch["output_file_id"].as_str().unwrap();
    let (_, out_file) = mock.get(&format!("/v1/files/{output_id}")).await;
    check_schema("OpenAIFile", &out_file);
    assert_eq!(out_file["purpose"], "batch_output");
    let output = mock.file_lines(&batch["output_file_id"]).await;
    let errors = mock.file_lines(&batch["error_file_id"]).await;
    assert_eq!((output.len(), errors.len()), (40, 10));
    let mut cached = Vec::new();
    for line in &output {
        assert!(line["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(line["error"].is_null());
        let response = &line["response"];
        assert_eq!(response["status_code"], 200);
        assert!(response["request_id"].as_str().unwrap().starts_with("req_"));
        let body = &response["body"];
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-judge");
        assert_eq!(body["choices"][0]["message"]["content"], TEXT);
        cached.push(
            body["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(
        cached[0], 0,
        "the first request of the prefix writes the cache"
    );
    assert!(cached[1..].iter().all(|c| *c == 100), "{cached:?}");
    for line in &errors {
        assert_eq!(line["response"]["status_code"], 500);
        assert_eq!(line["response"]["body"]["error"]["type"], "server_error");
        assert!(line["error"].is_null());
    }
    // Every request exactly once, across both files.
    let ids: Vec<&str> = output
        .iter()
        .chain(&errors)
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (50, 50));
    assert!((0..50).all(|i| unique.contains(format!("item-{i}").as_str())));

    // The same under the paths without /v1, and in the list.
    let (status, again) = mock.get(&format!("/batches/{id}")).await;
    assert_eq!((status, &again["status"]), (200, &json!("completed")));
    let (_, list) = mock.get("/v1/batches?limit=1").await;
    check_schema("ListBatchesResponse", &list);
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(list["has_more"], false);

    let stats = &mock.stats().await["batches"]["openai"];
    assert_eq!(stats["files_uploaded"], 1);
    assert_eq!(stats["batches_created"], 1);
    assert_eq!(stats["polls"], seen.len() + 1);
    assert_eq!(stats["results_fetched"], 3);
    assert_eq!(stats["lists"], 1);
    assert_eq!(stats["cancels"], 0);
}

#[tokio::test]
async fn an_openai_cancel_keeps_what_was_done() {
    let mock = Mock::start(&["--batch-delay-ms", "2000"]);
    let (batch, _) = mock
        .openai_batch(&jsonl(40), |b| {
            b["request_counts"]["completed"].as_u64() > Some(0)
        })
        .await;
    let id = batch["id"].as_str().unwrap();
    let (status, cancelling) = mock
        .post(&format!("/v1/batches/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{cancelling}");
    check_schema("Batch", &cancelling);
    assert_eq!(cancelling["status"], "cancelling");
    assert!(cancelling["cancelling_at"].as_u64().is_some());
    let seen = mock
        .poll(&format!("/v1/batches/{id}"), |b| b["status"] == "cancelled")
        .await;
    let done = seen.last().unwrap();
    assert!(done["cancelled_at"].as_u64().is_some());
    assert!(done["finalizing_at"].is_null() && done["completed_at"].is_null());
    let completed = done["request_counts"]["completed"].as_u64().unwrap();
    assert!((1..40).contains(&completed), "{done}");
    assert_eq!(done["request_counts"]["failed"], 0);
    let output = mock.file_lines(&done["output_file_id"]).await;
    assert_eq!(output.len() as u64, completed);
    assert!(done["error_file_id"].is_null());
    // A batch that is over cannot be cancelled again.
    let (status, refused) = mock
        .post(&format!("/v1/batches/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    assert_eq!(mock.stats().await["batches"]["openai"]["cancels"], 2);
}

#[tokio::test]
async fn openai_expiry_fills_the_error_file_with_batch_expired() {
    // A share of the requests expires: the batch ends expired.
    let mock = Mock::start(&["--batch-delay-ms", "100", "--batch-expire-pct", "10"]);
    let (_, seen) = mock
        .openai_batch(&jsonl(30), |b| b["status"] == "expired")
        .await;
    let done = seen.last().unwrap();
    check_schema("Batch", done);
    assert_eq!(
        done["request_counts"],
        json!({"total": 30, "completed": 27, "failed": 3})
    );
    assert!(done["expired_at"].as_u64().is_some() && done["completed_at"].is_null());
    let errors = mock.file_lines(&done["error_file_id"]).await;
    assert_eq!(errors.len(), 3);
    for line in &errors {
        assert!(line["response"].is_null(), "{line}");
        assert_eq!(line["error"]["code"], "batch_expired");
    }

    // The whole batch expires before it is done: what was not processed by then expired.
    let mock = Mock::start(&["--batch-delay-ms", "5000", "--batch-expire-after-ms", "200"]);
    let (batch, seen) = mock
        .openai_batch(&jsonl(30), |b| b["status"] == "expired")
        .await;
    let created = batch["created_at"].as_u64().unwrap();
    assert!(
        batch["expires_at"].as_u64().unwrap() <= created + 1,
        "{batch}"
    );
    let counts = &seen.last().unwrap()["request_counts"];
    assert_eq!(counts["total"], 30);
    assert_eq!(
        counts["completed"].as_u64().unwrap() + counts["failed"].as_u64().unwrap(),
        30
    );
    assert!(counts["failed"].as_u64().unwrap() > 20, "{counts}");
}

/// The error body of an OpenAI refusal, checked for its four fields.
fn openai_error(status: u16, body: &Value, want_status: u16) -> &Value {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert!(e["message"].is_string() && e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    e
}

#[tokio::test]
async fn openai_refuses_bad_requests_and_fails_bad_files() {
    let mock = Mock::start(&["--batch-delay-ms", "50"]);
    // Uploads: no purpose, a batch file that is not .jsonl, not multipart at all.
    let form = Form::new().part("file", Part::bytes(b"{}".to_vec()).file_name("a.jsonl"));
    let resp = mock
        .client
        .post(mock.url("/v1/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
    assert_eq!(openai_error(status, &body, 400)["param"], "purpose");
    let (status, body) = mock.upload("notes.txt", "{}").await;
    let e = openai_error(status, &body, 400);
    assert_eq!(
        e["message"],
        "Invalid file format for Batch API. Must be .jsonl"
    );
    let (status, body) = mock.post("/v1/files", &json!({"purpose": "batch"})).await;
    openai_error(status, &body, 400);

    // Batch creation: missing fields, unknown file, wrong endpoint or window.
    let (_, file) = mock.upload("in.jsonl", &jsonl(2)).await;
    let good = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                      "completion_window": "24h"});
    for field in ["input_file_id", "endpoint", "completion_window"] {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        let (status, answer) = mock.post("/v1/batches", &body).await;
        let e = openai_error(status, &answer, 400);
        assert_eq!(
            (&e["param"], &e["code"]),
            (&json!(field), &json!("missing_required_parameter"))
        );
    }
    let mut body = good.clone();
    body["input_file_id"] = json!("file-nope");
    let (status, answer) = mock.post("/v1/batches", &body).await;
    openai_error(status, &answer, 404);
    for (field, value) in [("endpoint", "/v1/nothing"), ("completion_window", "1h")] {
        let mut body = good.clone();
        body[field] = json!(value);
        let (status, answer) = mock.post("/v1/batches", &body).await;
        assert_eq!(openai_error(status, &answer, 400)["param"], field);
    }
    let (status, answer) = mock.get("/v1/batches/batch_nope").await;
    openai_error(status, &answer, 404);

    // A bad input file is taken, then the batch fails once validated.
    let bad = format!(
        "{}{}\n{}",
        jsonl(1),
        "{not json",
        jsonl(1).replace("/v1/chat/completions", "/v1/embeddings")
    );
    let (_, file) = mock.upload("bad.jsonl", &bad).await;
    let mut body = good.clone();
    body["input_file_id"] = file["id"].clone();
    let (status, batch) = mock.post("/v1/batches", &body).await;
    assert_eq!((status, &batch["status"]), (200, &json!("validating")));
    let seen = mock
        .poll(
            &format!("/v1/batches/{}", batch["id"].as_str().unwrap()),
            |b| b["status"] != "validating",
        )
        .await;
    let failed = seen.last().unwrap();
    check_schema("Batch", failed);
    assert_eq!(failed["status"], "failed");
    assert!(failed["failed_at"].as_u64().is_some());
    let errors: Vec<(&str, u64)> = failed["errors"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(errors, [("invalid_json_line", 2), ("url_mismatch", 3)]);
    assert_eq!(failed["request_counts"]["total"], 0);

    // Over 50,000 lines fails the batch too.
    let line = r#"{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{}}"#;
    let many = format!("{line}\n").repeat(50_001);
    let (_, seen) = mock
        .openai_batch(&many, |b| b["status"] != "validating")
        .await;
    assert_eq!(
        seen.last().unwrap()["errors"]["data"][0]["code"],
        "too_many_tasks"
    );

    // A body the online API would refuse fails that request alone, with its 400.
    let mixed = format!(
        "{}{}\n",
        jsonl(1),
        json!({"custom_id": "no-messages", "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": "gpt-judge"}})
    );
    let (_, seen) = mock
        .openai_batch(&mixed, |b| b["status"] == "completed")
        .await;
    let done = seen.last().unwrap();
    assert_eq!(
        done["request_counts"],
        json!({"total": 2, "completed": 1, "failed": 1})
    );
    let errors = mock.file_lines(&done["error_file_id"]).await;
    assert_eq!(errors[0]["custom_id"], "no-messages");
    assert_eq!(errors[0]["response"]["status_code"], 400);
    assert_eq!(errors[0]["response"]["body"]["error"]["param"], "messages");
    assert!(mock.stats().await["batches"]["openai"]["refused"].as_u64() >= Some(10));
}

/// An Anthropic Message Batches creation body of `n` requests, ids `item-0` ..., each marking
/// its system prompt for caching.
fn message_batch(n: usize) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            json!({"custom_id": format!("item-{i}"), "params": {
                "model": "claude-judge", "max_tokens": 16,
                "system": [{"type": "text", "text": "You are a judge.",
                            "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": format!("item {i}")}],
            }})
        })
        .collect();
    json!({ "requests": requests })
}

fn custom_ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["custom_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_anthropic_batch_ends_with_shuffled_complete_results() {
    let flags = [
        "--batch-delay-ms",
        "300",
        "--batch-fail-pct",
        "10",
        "--batch-expire-pct",
        "10",
        "--batch-seed",
        "5",
        "--cached-tokens",
        "100",
        "--text",
        TEXT,
    ];
    let mock = Mock::start(&flags);
    let (status, batch) = mock.post("/v1/messages/batches", &message_batch(40)).await;
    assert_eq!(status, 200, "{batch}");
    let id = batch["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msgbatch_"), "{id}");
    assert_eq!(batch["type"], "message_batch");
    assert_eq!(batch["processing_status"], "in_progress");
    assert!(batch["results_url"].is_null() && batch["ended_at"].is_null());
    for field in ["created_at", "expires_at"] {
        let t = batch[field].as_str().unwrap();
        assert!(t.ends_with('Z') && t.contains('T'), "{field}: {t}");
    }
    // Before the end, no results.
    let (status, early) = mock
        .text(&format!("/v1/messages/batches/{id}/results"))
        .await;
    assert_eq!(status, 400, "{early}");
    assert!(early.contains("\"invalid_request_error\""));

    let seen = mock
        .poll(&format!("/v1/messages/batches/{id}"), |b| {
            b["processing_status"] == "ended"
        })
        .await;
    // As with Anthropic, the tallies stay at zero until the batch ends.
    for b in &seen[..seen.len() - 1] {
        assert_eq!(
            b["request_counts"],
            json!({"processing": 40, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
        );
    }
    let ended = seen.last().unwrap();
    assert_eq!(
        ended["request_counts"],
        json!({"processing": 0, "succeeded": 32, "errored": 4, "canceled": 0, "expired": 4})
    );
    assert!(ended["ended_at"].is_string());
    let results_url = ended["results_url"].as_str().unwrap();
    assert_eq!(
        results_url,
        mock.url(&format!("/v1/messages/batches/{id}/results"))
    );

    let (status, text) = mock.text(results_url).await;
    assert_eq!(status, 200);
    let results = lines(&text);
    let ids = custom_ids(&results);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (40, 40));
    let input_order: Vec<String> = (0..40).map(|i| format!("item-{i}")).collect();
    assert_ne!(ids, input_order, "results are not in the input order");
    let mut kinds = std::collections::BTreeMap::new();
    let mut cache = (0, 0);
    for r in &results {
        let result = &r["result"];
        *kinds
            .entry(result["type"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
        match result["type"].as_str().unwrap() {
            "succeeded" => {
                let m = &result["message"];
                assert_eq!(
                    (&m["type"], &m["model"]),
                    (&json!("message"), &json!("claude-judge"))
                );
                assert_eq!(m["content"][0]["text"], TEXT);
                let usage = &m["usage"];
                cache.0 += usage["cache_creation_input_tokens"].as_u64().unwrap();
                cache.1 += usage["cache_read_input_tokens"].as_u64().unwrap();
                assert_eq!(usage["input_tokens"], 50);
            }
            "errored" => {
                assert_eq!(result["error"]["type"], "error");
                assert_eq!(result["error"]["error"]["type"], "api_error");
            }
            "expired" => {}
            other => panic!("unexpected result {other}"),
        }
    }
    assert_eq!(
        kinds,
        [
            ("errored".into(), 4),
            ("expired".into(), 4),
            ("succeeded".into(), 32)
        ]
        .into()
    );
    assert_eq!(
        cache,
        (100, 31 * 100),
        "one request writes the prefix, the rest read it"
    );

    let stats = &mock.stats().await["batches"]["anthropic"];
    assert_eq!(stats["batches_created"], 1);
    assert_eq!(stats["polls"], seen.len());
    assert_eq!(stats["results_fetched"], 2);

    // The order is drawn from the seed: the same again with the same seed, another with another.
    let (_, same) = Mock::start(&flags).message_batch(&message_batch(40)).await;
    assert_eq!(custom_ids(&same), ids);
    let mut other_flags = flags.to_vec();
    other_flags[7] = "6";
    let (_, other) = Mock::start(&other_flags)
        .message_batch(&message_batch(40))
        .await;
    assert_ne!(custom_ids(&other), ids);
}

#[tokio::test]
async fn an_anthropic_cancel_and_expiry_end_the_batch() {
    let mock = Mock::start(&["--batch-delay-ms", "3000"]);
    let (_, batch) = mock.post("/v1/messages/batches", &message_batch(30)).await;
    let id = batch["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, canceling) = mock
        .post(&format!("/v1/messages/batches/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{canceling}");
    assert_eq!(canceling["processing_status"], "canceling");
    assert!(canceling["cancel_initiated_at"].is_string());
    let seen = mock
        .poll(&format!("/v1/messages/batches/{id}"), |b| {
            b["processing_status"] == "ended"
        })
        .await;
    let counts = &seen.last().unwrap()["request_counts"];
    let (succeeded, canceled) = (
        counts["succeeded"].as_u64().unwrap(),
        counts["canceled"].as_u64().unwrap(),
    );
    assert_eq!(succeeded + canceled, 30, "{counts}");
    assert!(succeeded > 0 && canceled > 0, "{counts}");
    let results = lines(
        &mock
            .text(&format!("/v1/messages/batches/{id}/results"))
            .await
            .1,
    );
    let canceled_lines = results
        .iter()
        .filter(|r| r["result"] == json!({"type": "canceled"}))
        .count();
    assert_eq!(canceled_lines as u64, canceled);
    let (status, refused) = mock
        .post(&format!("/v1/messages/batches/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused["type"], "error");
    assert_eq!(mock.stats().await["batches"]["anthropic"]["cancels"], 2);

    let mock = Mock::start(&["--batch-delay-ms", "5000", "--batch-expire-after-ms", "200"]);
    let (_, batch) = mock.post("/v1/messages/batches", &message_batch(30)).await;
    let seen = mock
        .poll(
            &format!("/v1/messages/batches/{}", batch["id"].as_str().unwrap()),
            |b| b["processing_status"] == "ended",
        )
        .await;
    let counts = &seen.last().unwrap()["request_counts"];
    let expired = counts["expired"].as_u64().unwrap();
    assert_eq!(
        counts["succeeded"].as_u64().unwrap() + expired,
        30,
        "{counts}"
    );
    assert!(expired > 20, "{counts}");
}

/// The error body of an Anthropic refusal.
fn anthropic_error<'a>(status: u16, body: &'a Value, want_status: u16, kind: &str) -> &'a str {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"].as_str().unwrap()
}

#[tokio::test]
async fn anthropic_refuses_bad_batches_and_errors_bad_params() {
    let mock = Mock::start(&["--batch-delay-ms", "50"]);
    let mut dup = message_batch(2);
    dup["requests"][1]["custom_id"] = json!("item-0");
    let mut bad_id = message_batch(2);
    bad_id["requests"][1]["custom_id"] = json!("item 1!");
    let mut long_id = message_batch(1);
    long_id["requests"][0]["custom_id"] = json!("x".repeat(65));
    for body in [
        dup,
        bad_id,
        long_id,
        json!({"requests": []}),
        json!({"nope": 1}),
    ] {
        let (status, answer) = mock.post("/v1/messages/batches", &body).await;
        anthropic_error(status, &answer, 400, "invalid_request_error");
    }
    let many: Vec<Value> = (0..100_001)
        .map(|i| json!({"custom_id": format!("r{i}"), "params": {}}))
        .collect();
    let (status, answer) = mock
        .post("/v1/messages/batches", &json!({ "requests": many }))
        .await;
    let message = anthropic_error(status, &answer, 400, "invalid_request_error");
    assert!(message.contains("100000"), "{message}");
    let (status, answer) = mock.get("/v1/messages/batches/msgbatch_nope").await;
    anthropic_error(status, &answer, 404, "not_found_error");

    // Params are checked when processed: that request alone errors.
    let mut body = message_batch(2);
    body["requests"][1]["params"]
        .as_object_mut()
        .unwrap()
        .remove("max_tokens");
    let (seen, results) = mock.message_batch(&body).await;
    assert_eq!(seen.last().unwrap()["request_counts"]["errored"], 1);
    let errored = results.iter().find(|r| r["custom_id"] == "item-1").unwrap();
    assert_eq!(errored["result"]["type"], "errored");
    assert_eq!(
        errored["result"]["error"]["error"]["type"],
        "invalid_request_error"
    );
    assert_eq!(mock.stats().await["batches"]["anthropic"]["refused"], 7);
}

#[tokio::test]
async fn online_answers_report_cached_tokens() {
    let mock = Mock::start(&["--cached-tokens", "100"]);
    let m = &mock;
    let chat = |body: Value| async move {
        let (status, answer) = m.post("/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        answer["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(chat(chat_body(1)).await, 0);
    assert_eq!(chat(chat_body(2)).await, 100);
    let mut other = chat_body(3);
    other["messages"][0]["content"] = json!("Another judge.");
    assert_eq!(chat(other).await, 0);

    let message = |body: Value| async move {
        let (status, answer) = m.post("/v1/messages", &body).await;
        assert_eq!(status, 200);
        let u = &answer["usage"];
        (
            u["input_tokens"].as_u64().unwrap(),
            u["cache_creation_input_tokens"].as_u64().unwrap(),
            u["cache_read_input_tokens"].as_u64().unwrap(),
        )
    };
    let params = |i| message_batch(i + 1)["requests"][i]["params"].clone();
    assert_eq!(message(params(0)).await, (50, 100, 0));
    assert_eq!(message(params(1)).await, (50, 0, 100));
    let mut unmarked = params(2);
    unmarked["system"] = json!("You are a judge.");
    assert_eq!(
        message(unmarked).await,
        (150, 0, 0),
        "no cache_control, no cache"
    );
    // A reset empties the cache.
    mock.client
        .post(mock.url("/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat(chat_body(4)).await, 0);

    // Off by default.
    let plain = Mock::start(&[]);
    let (_, a) = plain.post("/v1/chat/completions", &chat_body(1)).await;
    let (_, b) = plain.post("/v1/chat/completions", &chat_body(2)).await;
    for answer in [a, b] {
        assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    }
}

/// Sends `req` and reads its JSON answer, checking it came over HTTP/2.
async fn h2_json(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn batch_endpoints_answer_over_h2c_too() {
    let mock = Mock::start(&["--batch-delay-ms", "0"]);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let form = Form::new().text("purpose", "batch").part(
        "file",
        Part::bytes(jsonl(3).into_bytes()).file_name("in.jsonl"),
    );
    let file = h2_json(h2.post(mock.url("/files")).multipart(form)).await;
    assert!(file["id"].as_str().unwrap().starts_with("file-"), "{file}");
    let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                        "completion_window": "24h"});
    let batch = h2_json(h2.post(mock.url("/batches")).json(&create)).await;
    let path = format!("/batches/{}", batch["id"].as_str().unwrap());
    let done = h2_json(h2.get(mock.url(&path))).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["request_counts"]["completed"], 3);

    let batch = h2_json(
        h2.post(mock.url("/v1/messages/batches"))
            .json(&message_batch(3)),
    )
    .await;
    let path = format!("/v1/messages/batches/{}", batch["id"].as_str().unwrap());
    let ended = h2_json(h2.get(mock.url(&path))).await;
    let url = ended["results_url"].as_str().unwrap();
    assert_eq!(url, mock.url(&format!("{path}/results")));
    let text = h2.get(url).send().await.unwrap().text().await.unwrap();
    assert_eq!(lines(&text).len(), 3);
}
