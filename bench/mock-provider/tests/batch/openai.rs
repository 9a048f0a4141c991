//! OpenAI's Files and Batch API end to end: a batch from upload to its files, cancels, expiry,
//! refusals and failed input files.

use std::collections::HashSet;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::mock::{Mock, TEXT};
use crate::requests::jsonl;
use crate::schema::check_schema;

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
    let file_id = upload_the_input(&mock).await;
    let id = create_the_batch(&mock, &file_id).await;
    let seen = poll_to_the_end(&mock, &id).await;
    let batch = seen.last().unwrap();
    check_the_end(batch);
    check_the_files(&mock, batch).await;

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

/// Uploads 50 chat requests and checks the File object and its content; the file's id.
async fn upload_the_input(mock: &Mock) -> String {
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
    file_id.to_owned()
}

/// Makes a batch of input file `file_id` and checks it as created; the batch's id.
async fn create_the_batch(mock: &Mock, file_id: &str) -> String {
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
    id
}

/// Polls batch `id` until it is completed, checking the statuses and counts seen; every answer.
async fn poll_to_the_end(mock: &Mock, id: &str) -> Vec<Value> {
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
    seen
}

/// Checks a completed batch: its counts, timestamps, model and usage.
fn check_the_end(batch: &Value) {
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
}

/// Checks the output and error files of a completed batch.
async fn check_the_files(mock: &Mock, batch: &Value) {
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
    refuses_bad_uploads(&mock).await;
    let good = refuses_bad_creations(&mock).await;

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

/// Uploads without a purpose, of a batch file that is not .jsonl, and not multipart at all.
async fn refuses_bad_uploads(mock: &Mock) {
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
}

/// Creations with a field missing, an unknown file, a wrong endpoint or window, and a poll of
/// an unknown batch; a good creation body.
async fn refuses_bad_creations(mock: &Mock) -> Value {
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
    good
}
