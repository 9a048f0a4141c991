//! Anthropic's Message Batches end to end: a batch to its shuffled results, cancels, expiry,
//! refused creations and params errored when processed.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::mock::{Mock, TEXT, lines};
use crate::requests::message_batch;

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
    let id = create_forty(&mock).await;
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
    check_results(results);

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

/// Makes a batch of 40 requests and checks it as created; the batch's id.
async fn create_forty(mock: &Mock) -> String {
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
    id
}

/// Checks each result of the batch and the tallies of its kinds and cache tokens.
fn check_results(results: Vec<Value>) {
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
