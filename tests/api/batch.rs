//! Batches: input order, a failing item in the middle, parallel arrays, bounded concurrency and
//! the summary.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers after a delay that shrinks with the item number (so completion order is reversed),
/// and fails items whose prediction says FAIL with a 400.
#[derive(Clone, Default)]
struct Standin;

impl Respond for Standin {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let user = body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let n: u64 = fenced(&user, "CANDIDATE")
            .rsplit("item-")
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let delay = Duration::from_millis(60u64.saturating_sub(n * 5));
        if user.contains("FAIL") {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"error":{"message":"bad request","type":"invalid_request_error","param":null,"code":null}}))
                .set_delay(delay);
        }
        let reply = if n.is_multiple_of(2) {
            "Verdict: 1"
        } else {
            "Verdict: 0"
        };
        ResponseTemplate::new(200)
            .set_body_json(openai_answer(reply))
            .set_delay(delay)
    }
}

#[tokio::test]
async fn results_come_back_in_input_order_and_a_failing_item_does_not_sink_the_batch() {
    let server = MockServer::start().await;
    let standin = Standin;
    Mock::given(method("POST"))
        .respond_with(standin.clone())
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let mut items: Vec<Value> = (0..10)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("item-{i}")}))
        .collect();
    items[4] = json!({"question": "q", "answer": "a", "prediction": "FAIL item-4"});
    items[6] = json!({"question": "q", "answer": "a"}); // invalid: no prediction
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"kind":"binary","max_concurrent":3,"items": items}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "{r}");
    }
    assert_eq!(results[4]["status"], "error");
    assert_eq!(results[4]["error"]["code"], "provider_rejected_request");
    assert_eq!(results[4]["attempts"][0]["status"], 400);
    assert_eq!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("FAIL"))
            .count(),
        1,
        "400 is not retried"
    );
    assert_eq!(results[6]["status"], "error");
    assert_eq!(results[6]["error"]["code"], "invalid_item");
    assert_eq!(results[6]["error"]["field"], "items[6].prediction");
    for i in [0, 2, 8] {
        assert_eq!(results[i]["verdict"], "correct", "{}", results[i]);
    }
    for i in [1, 3, 5, 7, 9] {
        assert_eq!(results[i]["verdict"], "incorrect");
    }
    let s = &body["summary"];
    assert_eq!(s["total"], 10);
    assert_eq!(s["correct"], 3);
    assert_eq!(s["incorrect"], 5);
    assert_eq!(s["errors"], 2);
    assert_eq!(s["unscored"], 0);
    assert!((s["accuracy"].as_f64().unwrap() - 3.0 / 8.0).abs() < 1e-9);
    // Its 95% Wilson interval (statsmodels: proportion_confint(3, 8, method="wilson")).
    let interval = s["accuracy_interval"].as_array().expect("an interval");
    assert!(
        (interval[0].as_f64().unwrap() - 0.136_844).abs() < 1e-5,
        "{interval:?}"
    );
    assert!(
        (interval[1].as_f64().unwrap() - 0.694_256).abs() < 1e-5,
        "{interval:?}"
    );
    assert_eq!(s["usage"]["prompt_tokens"], 8 * 120);
    assert!(s["items_per_second"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_malformed_item_names_its_field_and_no_position_in_the_body() {
    let app = spawn("", &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"items": [
                {"question": "q", "answer": "4", "prediction": "4"},
                {"question": 3, "answer": "a", "prediction": "p"},
                "just text",
                {"question": "q", "answer": "a", "prediction": "p", "colour": "red"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r = &body["results"];
    assert_eq!(r[0]["verdict"], "correct", "{body}");
    assert_eq!(r[1]["error"]["field"], "items[1].question");
    assert_eq!(
        r[1]["error"]["message"],
        "invalid type: integer `3`, expected a string"
    );
    assert_eq!(r[2]["error"]["field"], "items[2]");
    assert!(
        r[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid type: string \"just text\""),
        "{body}"
    );
    assert_eq!(r[3]["error"]["field"], "items[3].colour");
    for i in 1..4 {
        assert_eq!(r[i]["error"]["code"], "invalid_item");
        assert!(
            !r[i]["error"]["message"].as_str().unwrap().contains("line"),
            "{body}"
        );
    }
    assert_eq!(body["summary"]["errors"], 3);
}

#[tokio::test]
async fn parallel_arrays_and_per_item_judges() {
    let app = spawn("", &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"questions":["What is 2+2?","Capital of France?"],"answers":["4","Paris"],"predictions":["4.0","London"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["verdict"], "correct");
    assert_eq!(body["results"][1]["verdict"], "incorrect");
    assert_eq!(body["summary"]["accuracy"], 0.5);
    let (_, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"items":[{"question":"q","answer":"4","prediction":"4","judge":"rules"},{"question":"q","answer":"4","prediction":"4","judge":"nobody"}]}),
        )
        .await;
    assert_eq!(body["results"][0]["status"], "ok");
    assert_eq!(body["results"][1]["error"]["code"], "unknown_judge");
    assert_eq!(body["results"][1]["error"]["field"], "items[1].judge");
}

#[tokio::test]
async fn score_and_compare_batches_summarise_their_own_way() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("Score: 6")))
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let (_, body) = app
        .post("/v1/judge/batch", &json!({"kind":"score","items":[{"question":"q","prediction":"p1"},{"question":"q","prediction":"p2","max":5}]}))
        .await;
    assert_eq!(body["results"][0]["score"], 6.0);
    assert_eq!(
        body["results"][1]["verdict"], "unscored",
        "6 is above max 5"
    );
    assert_eq!(body["summary"]["mean_score"], 6.0);
    assert_eq!(body["summary"]["unscored"], 1);
}

#[tokio::test]
async fn max_concurrent_bounds_the_calls_in_flight() {
    let (base, gauge) = counting_standin("Verdict: 1", Duration::from_millis(30)).await;
    let toml = format!(
        "[providers.openai]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key = \"k\"\n[routes]\ndefault = [\"openai:gpt-4o\"]\n"
    );
    let app = spawn(&toml, &[]).await;
    let items: Vec<Value> = (0..30)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("p{i}")}))
        .collect();
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"max_concurrent": 3, "items": items}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["correct"], 30);
    assert_eq!(gauge.calls.load(Ordering::SeqCst), 30);
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(max <= 3, "max_concurrent 3 was exceeded: {max}");
    assert!(max >= 2, "the batch ran concurrently: {max}");
}

/// On a multi-threaded runtime, as the service runs, a batch's items (each a task of its own)
/// are judged once each, within `max_concurrent`, and answered in input order, as a whole and
/// as a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_batch_on_worker_threads_judges_each_item_once_in_order() {
    let threads = 3;
    {
        let (base, gauge) = counting_standin("Verdict: 1", Duration::from_millis(20)).await;
        let toml = format!(
            "[providers.openai]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key = \"k\"\n[routes]\ndefault = [\"openai:gpt-4o\"]\n"
        );
        let app = spawn(&toml, &[]).await;
        let items: Vec<Value> = (0..24)
            .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("p{i}")}))
            .collect();
        let (status, body) = app
            .post(
                "/v1/judge/batch",
                &json!({"max_concurrent": 5, "items": items}),
            )
            .await;
        assert_eq!(status, 200, "{threads} threads: {body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 24);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r["index"], i, "{threads} threads: input order");
            assert_eq!(r["status"], "ok", "{threads} threads: {r}");
        }
        assert_eq!(body["summary"]["correct"], 24, "{threads} threads");
        assert_eq!(gauge.calls.load(Ordering::SeqCst), 24, "{threads} threads");
        let max = gauge.max.load(Ordering::SeqCst);
        assert!((2..=5).contains(&max), "{threads} threads: {max} in flight");

        // Other predictions, so the verdict cache answers none of them.
        let items: Vec<Value> = (0..24)
            .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("s{i}")}))
            .collect();
        let streamed = app
            .client
            .post(app.url("/v1/judge/batch"))
            .header("accept", "application/x-ndjson")
            .json(&json!({"max_concurrent": 5, "items": items}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut seen: Vec<u64> = streamed
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v["index"].as_u64())
            .collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..24).collect::<Vec<u64>>(),
            "{threads} threads: each item once"
        );
        assert!(
            streamed.contains("\"correct\":24"),
            "{threads} threads: the summary counts every item: {streamed}"
        );
        assert_eq!(gauge.calls.load(Ordering::SeqCst), 48, "{threads} threads");
    }
}

/// Items are judged on tasks of their own; when the client goes away they are aborted with the
/// batch, so no provider call keeps running (or holds a concurrency slot) for an answer nobody
/// will read, and no further item is started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_dropped_by_its_client_stops_its_items() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("Verdict: 1"))
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let in_flight = || {
        app.state
            .judge
            .pool()
            .status()
            .into_iter()
            .find(|p| p.name == "openai")
            .map(|p| p.in_flight)
            .unwrap()
    };
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("p{i}")}))
        .collect();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // The answer's head comes at once (results are written as they come); the client gives up
    // while reading it, before the provider answers.
    let read = async {
        impatient
            .post(app.url("/v1/judge/batch"))
            .json(&json!({"max_concurrent": 4, "items": items}))
            .send()
            .await?
            .bytes()
            .await
    };
    assert!(
        read.await.is_err(),
        "the client gives up before the provider answers"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while in_flight() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} provider calls still in flight after the client left",
            in_flight()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "only the first max_concurrent items were ever sent"
    );
}

/// `max_concurrent` counts items still being judged: a slow first item does not hold back the
/// ones after it once their own calls finish (no head-of-line blocking).
#[tokio::test]
async fn a_slow_item_does_not_hold_back_the_items_after_it() {
    struct SlowFirst;
    impl Respond for SlowFirst {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let body: Value = req.body_json().unwrap();
            let user = body["messages"][1]["content"].as_str().unwrap_or_default();
            let delay = if user.contains("SLOW") {
                Duration::from_millis(1500)
            } else {
                Duration::ZERO
            };
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("Verdict: 1"))
                .set_delay(delay)
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(SlowFirst)
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let mut items = vec![json!({"question": "q", "answer": "a", "prediction": "SLOW"})];
    items.extend(
        (0..20).map(|i| json!({"question": "q", "answer": "a", "prediction": format!("fast {i}")})),
    );
    let body = json!({"kind": "binary", "max_concurrent": 2, "items": items});
    // While the slow item is still waiting on its answer, the other 20 all get theirs.
    let calls_meanwhile = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        server.received_requests().await.unwrap().len()
    };
    let ((status, resp), calls) = tokio::join!(app.post("/v1/judge/batch", &body), calls_meanwhile);
    assert_eq!(
        calls, 21,
        "calls made while the first item was still in flight"
    );
    assert_eq!(status, 200);
    let results = resp["results"].as_array().unwrap();
    assert_eq!(results.len(), 21);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "results stay in input order");
        assert_eq!(r["status"], "ok");
    }
    assert_eq!(resp["summary"]["correct"], 21);
}
