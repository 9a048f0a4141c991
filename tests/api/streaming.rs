//! Streamed batches: one line per item as it completes, progress lines, the summary last, and
//! cancellation when the client goes away.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Slower for lower item numbers, so items complete in reverse order.
struct Reverse;
impl Respond for Reverse {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let n: u64 = fenced(user, "CANDIDATE")
            .rsplit("item-")
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        ResponseTemplate::new(200)
            .set_body_json(openai_answer(if n.is_multiple_of(2) {
                "Verdict: 1"
            } else {
                "Verdict: 0"
            }))
            .set_delay(Duration::from_millis(400 - n * 40))
    }
}

#[tokio::test]
async fn items_stream_as_they_complete_with_progress_and_the_summary_last() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Reverse)
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("item-{i}")}))
        .collect();
    let mut items = items;
    items.push(json!({"question":"q"})); // invalid: an error line, not a failed stream
    let r = app
        .client
        .post(app.url("/v1/judge/batch"))
        .header("accept", "application/x-ndjson")
        .json(&json!({"items": items, "max_concurrent": 9, "progress_interval_ms": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let entries: Vec<&Value> = lines.iter().filter(|l| l.get("index").is_some()).collect();
    assert_eq!(entries.len(), 9);
    let order: Vec<u64> = entries
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(order[0], 8, "the invalid item is done first: {order:?}");
    assert_eq!(
        &order[1..],
        &[7, 6, 5, 4, 3, 2, 1, 0],
        "completion order, not input order"
    );
    let progress: Vec<&Value> = lines.iter().filter_map(|l| l.get("progress")).collect();
    assert!(
        !progress.is_empty(),
        "progress lines are interleaved: {text}"
    );
    let done: Vec<u64> = progress
        .iter()
        .map(|p| p["done"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert!(progress.iter().all(|p| p["total"] == 9));
    let last = lines.last().unwrap();
    let summary = &last["summary"];
    assert_eq!(summary["total"], 9);
    assert_eq!(summary["correct"], 4);
    assert_eq!(summary["incorrect"], 4);
    assert_eq!(summary["errors"], 1);
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_remaining_work() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("1"))
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("p{i}")}))
        .collect();
    let r = app
        .client
        .post(app.url("/v1/judge/batch"))
        .header("accept", "application/x-ndjson")
        .json(&json!({"items": items, "max_concurrent": 2}))
        .send()
        .await
        .unwrap();
    let mut r = r;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"{\"index\""), "{first:?}");
    drop(r);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let seen = server.received_requests().await.unwrap().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = server.received_requests().await.unwrap().len();
    assert_eq!(seen, later, "no new provider calls after the client left");
    assert!(
        later < 20,
        "the remaining items were cancelled: {later} calls"
    );
}
