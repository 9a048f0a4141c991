//! Jobs ride out outages: a provider that stops answering pauses a job (its items go back to
//! its queue, its progress says it waits), the job resumes by itself when the provider answers
//! again, and ends with every item judged; items whose provider refuses them for good (a bad
//! key) end as errors at once, and `POST /v1/jobs/{id}/retry` judges them again once the
//! provider is fixed; a job that waits longer than its `max_wait_s` fails with the reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::standin::{Standin, down_at};
use crate::support::*;

const MODEL: &str = "gpt-4o-mini";

/// The service with one provider, `p`, an OpenAI-wire server at `base` (with `/v1`).
fn config(base: &str, extra: &str) -> String {
    format!(
        r#"
[server]
max_batch_items = 20000
[judge]
rules_precheck = false
[providers.p]
kind = "openai"
base_url = "{base}"
api_key = "sk-outage-test"
{extra}
[retry]
base_delay_ms = 20
max_delay_ms = 100
[routes]
default = ["p:{MODEL}"]
"#
    )
}

async fn job(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls the job until `what` holds (at most `limit`), noting whether it was ever seen waiting.
async fn until(
    app: &TestApp,
    id: &str,
    limit: Duration,
    seen_waiting: &mut Option<Value>,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let v = job(app, id).await;
        if seen_waiting.is_none() && !v["progress"]["waiting"].is_null() {
            *seen_waiting = Some(v["progress"]["waiting"].clone());
        }
        if what(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn submit(app: &TestApp, body: &Value) -> String {
    let (status, v) = app.post("/v1/jobs", body).await;
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn results(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, text) = app.get(&format!("/v1/jobs/{id}/results")).await;
    assert_eq!(status, 200);
    ndjson(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_out_a_provider_outage_and_judges_every_item() {
    const N: u64 = 20_000;
    let port = free_port();
    let mut provider = Standin::judging_on(port, &["--latency-ms", "20"]);
    let base = format!("{}/v1", provider.base);
    let app = spawn(&config(&base, ""), &[]).await;
    let id = submit(
        &app,
        &json!({"items": items(N as usize), "max_concurrent": 100}),
    )
    .await;
    let mut waiting = None;
    until(&app, &id, Duration::from_secs(60), &mut waiting, |v| {
        v["progress"]["done"].as_u64() >= Some(N / 10)
    })
    .await;

    // The provider goes down for 20 s: connections are closed as soon as they are made.
    drop(provider);
    let attempts = Arc::new(AtomicUsize::new(0));
    let down = down_at(port, attempts.clone());
    let outage = Instant::now();
    let mut during = None;
    while outage.elapsed() < Duration::from_secs(20) {
        let v = job(&app, &id).await;
        assert_eq!(v["status"], "running", "{v}");
        if during.is_none() && !v["progress"]["waiting"].is_null() {
            during = Some(v.clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    down.abort();
    let _ = down.await;
    let tried = attempts.load(Ordering::Relaxed);
    provider = Standin::judging_on(port, &["--latency-ms", "20"]);

    let during = during.expect("the job said it was waiting during the outage");
    let w = &during["progress"]["waiting"];
    assert_eq!(w["providers"], json!(["p"]), "{w}");
    assert!(w["reason"].as_str().is_some_and(|r| !r.is_empty()), "{w}");
    assert!(w["next_try_ms"].as_u64() >= w["since_ms"].as_u64(), "{w}");
    assert!(w["items"].as_u64() > Some(0), "{w}");
    let errors_then = during["progress"]["errors"].as_u64().unwrap();
    assert_eq!(errors_then, 0, "no item failed during the outage: {during}");
    // Without a storm: the breaker and the job's own waits keep the calls few.
    assert!(
        tried < 400,
        "{tried} connection attempts at a provider down for 20 s"
    );

    let done = until(&app, &id, Duration::from_secs(120), &mut waiting, |v| {
        v["status"] == "completed"
    })
    .await;
    let s = &done["summary"];
    assert_eq!(s["errors"], 0, "{s}");
    assert_eq!(s["correct"], N, "{s}");
    assert!(done["progress"]["waiting"].is_null(), "{done}");
    let all = results(&app, &id).await;
    assert_eq!(all.len() as u64, N);
    assert!(
        all.iter().all(|r| r["status"] == "ok"),
        "every result is a verdict"
    );
    let stats = provider.stats().await;
    assert!(stats["calls"].as_u64() > Some(0), "{stats}");
    let metrics = app.get("/metrics").await.1;
    assert!(metric(&metrics, "llm_judge_job_items_requeued_total", "") > 0.0);
    assert_eq!(metric(&metrics, "llm_judge_jobs_waiting", ""), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_ends_items_as_errors_and_retry_judges_them_once_fixed() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
        ))
        .mount(&provider)
        .await;
    let app = spawn(&config(&format!("{}/v1", provider.uri()), ""), &[]).await;
    let id = submit(&app, &json!({"items": items(30), "max_concurrent": 4})).await;
    let mut waiting = None;
    let failed = until(&app, &id, Duration::from_secs(30), &mut waiting, |v| {
        v["status"] == "completed"
    })
    .await;
    assert!(waiting.is_none(), "a refused key is no outage: {waiting:?}");
    assert_eq!(failed["summary"]["errors"], 30, "{failed}");

    // The key is fixed at the provider: the job's errors are sent again.
    provider.reset().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("Verdict: correct"))
                .set_delay(Duration::from_millis(100)),
        )
        .mount(&provider)
        .await;
    let (status, v) = app.post(&format!("/v1/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["requeued"], 30, "{v}");
    assert!(
        ["queued", "running"].contains(&v["job"]["status"].as_str().unwrap()),
        "{v}"
    );
    // Sent again while it runs: 409, and nothing changes.
    let (status, again) = app.post(&format!("/v1/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "job_not_finished", "{again}");

    let done = until(&app, &id, Duration::from_secs(30), &mut waiting, |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["summary"]["errors"], 0, "{done}");
    assert_eq!(done["summary"]["correct"], 30, "{done}");
    assert_eq!(done["progress"]["done"], 30, "{done}");
    let all = results(&app, &id).await;
    assert_eq!(all.len(), 30);
    assert!(all.iter().all(|r| r["verdict"] == "correct"), "{all:?}");

    // A finished job with nothing errored: harmless, nothing is sent again.
    let (status, v) = app.post(&format!("/v1/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["requeued"], 0, "{v}");
    let done = until(&app, &id, Duration::from_secs(30), &mut waiting, |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(done["summary"]["correct"], 30, "{done}");
    let (status, v) = app
        .post("/v1/jobs/job_0123456789abcdef/retry", &json!({}))
        .await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_waits_longer_than_its_max_wait_fails_with_the_reason() {
    // Nothing listens at the provider's port.
    let base = format!("http://127.0.0.1:{}/v1", free_port());
    let app = spawn(&config(&base, ""), &[]).await;
    let (status, v) = app
        .post("/v1/jobs", &json!({"items": items(5), "max_wait_s": 0}))
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["field"], "max_wait_s", "{v}");
    let (status, v) = app
        .post(
            "/v1/judge/batch",
            &json!({"items": items(5), "max_wait_s": 5}),
        )
        .await;
    assert_eq!(status, 422, "{v}");

    let id = submit(&app, &json!({"items": items(5), "max_wait_s": 3})).await;
    let mut waiting = None;
    let failed = until(&app, &id, Duration::from_secs(60), &mut waiting, |v| {
        v["status"] == "failed"
    })
    .await;
    let w = waiting.expect("the job said it was waiting");
    assert!(w["reason"].as_str().is_some(), "{w}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("max_wait_s (3)"), "{error}");
    assert!(error.contains("p"), "{error}");
    assert_eq!(
        failed["summary"]["errors"], 0,
        "no item was failed: {failed}"
    );
    assert!(failed["progress"]["waiting"].is_null(), "{failed}");
}
