//! Persistent jobs: every endpoint, idempotency, cancellation, expiry, and resuming after the
//! server is killed in the middle of a job.

mod restarts;
mod uploads;

use std::collections::HashSet;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The service with one OpenAI-wire provider: a stand-in answering after `delay_ms`.
async fn app_over_counting(delay_ms: u64) -> (MockServer, TestApp) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Counting::new(delay_ms))
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    (server, app)
}

async fn wait_for(app: &TestApp, id: &str, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = app.get(&format!("/v1/jobs/{id}")).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        if what(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {v}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn start_server(port: u16, data_dir: &std::path::Path, provider: &MockServer) -> Child {
    serve_process(port, data_dir, provider, |_| {})
}

/// Records when each call for each prediction started; answers at once for item indices below
/// `fast_below` and after `slow` above it (a job gets far quickly, then crawls).
#[derive(Clone)]
struct Recording {
    calls: Arc<Mutex<Vec<(String, Instant)>>>,
    fast_below: u64,
    slow: Duration,
}

impl Respond for Recording {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let key = prediction_of(req);
        let index: u64 = key.rsplit('-').next().unwrap().parse().unwrap_or(0);
        self.calls.lock().unwrap().push((key, Instant::now()));
        // A long answer, so that each stored result weighs what a real one does.
        let text = format!(
            "{}\nVerdict: 1",
            "The candidate states the reference answer. ".repeat(40)
        );
        let r = ResponseTemplate::new(200).set_body_json(openai_answer(&text));
        if index < self.fast_below {
            r
        } else {
            r.set_delay(self.slow)
        }
    }
}

#[tokio::test]
async fn a_job_runs_in_the_background_and_its_results_are_readable_in_either_order() {
    let (_server, app) = app_over_counting(20).await;
    let mut list = items(40);
    list.push(json!({"question":"q"})); // invalid item: an error entry in the job
    let r = app
        .client
        .post(app.url("/v1/jobs"))
        .json(&json!({"items": list, "max_concurrent": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let accepted: Value = r.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(accepted["created"], true);

    let done = wait_for(&app, &id, |v| v["status"] == "completed").await;
    assert_eq!(done["progress"]["done"], 41);
    assert_eq!(done["progress"]["total"], 41);
    assert_eq!(done["summary"]["correct"], 30);
    assert_eq!(done["summary"]["incorrect"], 10);
    assert_eq!(done["summary"]["errors"], 1);

    let (status, text) = app.get(&format!("/v1/jobs/{id}/results")).await;
    assert_eq!(status, 200);
    let rows = ndjson(&text);
    let indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..41).collect::<Vec<u64>>(), "index order");
    assert_eq!(rows[40]["status"], "error");
    let (_, text) = app.get(&format!("/v1/jobs/{id}/results?after=29")).await;
    let rest = ndjson(&text);
    assert_eq!(rest.first().unwrap()["index"], 30);
    assert_eq!(rest.len(), 11);
    let (_, text) = app
        .get(&format!("/v1/jobs/{id}/results?order=completion"))
        .await;
    let by_completion = ndjson(&text);
    assert_eq!(by_completion.len(), 41);
    let seqs: Vec<u64> = by_completion
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..41).collect::<Vec<u64>>());
    let (_, text) = app
        .get(&format!("/v1/jobs/{id}/results?order=completion&after=39"))
        .await;
    assert_eq!(ndjson(&text).len(), 1);
    let (status, _) = app
        .get(&format!("/v1/jobs/{id}/results?order=sideways"))
        .await;
    assert_eq!(status, 422);

    // events of a finished job: one summary event
    let (status, text) = app.get(&format!("/v1/jobs/{id}/events")).await;
    assert_eq!(status, 200);
    assert!(text.contains("event: summary"), "{text}");

    let (status, body) = app.get("/v1/jobs/job_nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "job_not_found"
    );
}

#[tokio::test]
async fn events_stream_progress_then_the_summary() {
    let (_server, app) = app_over_counting(100).await;
    let (_, accepted) = app
        .post(
            "/v1/jobs",
            &json!({"items": items(20), "max_concurrent": 2}),
        )
        .await;
    let id = accepted["id"].as_str().unwrap();
    let text = app
        .client
        .get(app.url(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let progress = text.matches("event: progress").count();
    assert!(progress >= 2, "{text}");
    assert_eq!(text.matches("event: summary").count(), 1);
    assert!(
        text.trim_end()
            .lines()
            .rev()
            .find(|l| l.starts_with("data:"))
            .unwrap()
            .contains("\"completed\""),
        "{text}"
    );
}

#[tokio::test]
async fn idempotency_listing_and_cancellation() {
    let (_server, app) = app_over_counting(150).await;
    let body = json!({"items": items(30), "max_concurrent": 2, "idempotency_key": "run-42"});
    let (s1, first) = app.post("/v1/jobs", &body).await;
    let (s2, again) = app.post("/v1/jobs", &body).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["created"], false);
    let mut changed = body.clone();
    changed["items"] = json!(items(31));
    let (s3, conflict) = app.post("/v1/jobs", &changed).await;
    assert_eq!(s3, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "idempotency_conflict");
    assert_eq!(conflict["error"]["field"], "idempotency_key");
    assert!(
        conflict["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"run-42\""),
        "{conflict}"
    );
    let (_, other) = app.post("/v1/jobs", &json!({"items": items(2)})).await;
    let (_, listing) = app.get("/v1/jobs").await;
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let ids: Vec<&str> = listing["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listing}");
    assert_eq!(ids[0], other["id"].as_str().unwrap(), "newest first");

    let id = first["id"].as_str().unwrap();
    wait_for(&app, id, |v| v["progress"]["done"].as_u64().unwrap() >= 2).await;
    let r = app
        .client
        .delete(app.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["status"], "cancelling",
        "a running job stops its calls first: {answer}"
    );
    let cancelled = wait_for(&app, id, |v| v["status"] == "cancelled").await;
    let done = cancelled["progress"]["done"].as_u64().unwrap();
    assert!(done < 30, "{cancelled}");
    let (_, text) = app.get(&format!("/v1/jobs/{id}/results")).await;
    assert_eq!(
        ndjson(&text).len() as u64,
        done,
        "finished results stay readable"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, text) = app.get(&format!("/v1/jobs/{id}/results")).await;
    assert_eq!(
        ndjson(&text).len() as u64,
        done,
        "nothing runs after cancelling"
    );
}

/// A DELETE right after a submit wins too: the job never runs past the calls it had started.
#[tokio::test]
async fn a_cancel_right_after_a_submit_wins() {
    const ROUNDS: usize = 20;
    const CONCURRENCY: usize = 2;
    let provider = MockServer::start().await;
    let recording = Recording {
        calls: Arc::default(),
        fast_below: 0,
        slow: Duration::from_millis(30),
    };
    Mock::given(method("POST"))
        .respond_with(recording.clone())
        .mount(&provider)
        .await;
    let app = spawn(&openai_config("openai", &provider, "gpt-4o"), &[]).await;
    let mut answered = Vec::new();
    for round in 0..ROUNDS {
        let list: Vec<Value> = (0..20)
            .map(|i| json!({"question":"q","answer":"a","prediction":format!("n{round}-{i}")}))
            .collect();
        let (_, accepted) = app
            .post(
                "/v1/jobs",
                &json!({"items": list, "max_concurrent": CONCURRENCY}),
            )
            .await;
        let id = accepted["id"].as_str().unwrap().to_string();
        let r = app
            .client
            .delete(app.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        answered.push((id, Instant::now()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = recording.calls.lock().unwrap().clone();
    for (round, (id, at)) in answered.iter().enumerate() {
        let v = wait_for(&app, id, |v| v["status"].as_str().unwrap().ends_with("ed")).await;
        assert_eq!(v["status"], "cancelled", "{v}");
        let tag = format!("n{round}-");
        let after = calls
            .iter()
            .filter(|(k, t)| k.starts_with(&tag) && t > at)
            .count();
        assert!(
            after <= CONCURRENCY,
            "round {round}: {after} calls after the DELETE"
        );
    }
}

#[tokio::test]
async fn finished_jobs_expire_after_the_retention() {
    let app = spawn(
        "[jobs]\nretention_hours = 0.0002\njanitor_interval_s = 0.1\n",
        &[(
            "LLM_JUDGE__JOBS__DATA_DIR",
            &tempfile::tempdir().unwrap().keep().display().to_string(),
        )],
    )
    .await;
    let (_, accepted) = app
        .post(
            "/v1/jobs",
            &json!({"items": [{"question":"q","answer":"4","prediction":"4"}]}),
        )
        .await;
    let id = accepted["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.get(&format!("/v1/jobs/{id}")).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
