//! Persistent jobs: every endpoint, idempotency, cancellation, expiry, and resuming after the
//! server is killed in the middle of a job.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Counts calls per prediction text and answers after `delay`.
#[derive(Clone)]
struct Counting {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    delay: Duration,
}
impl Counting {
    fn new(delay_ms: u64) -> Self {
        Self {
            calls: Arc::default(),
            delay: Duration::from_millis(delay_ms),
        }
    }
}
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

impl Respond for Counting {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let key = user
            .rsplit("Candidate answer:\n")
            .next()
            .unwrap_or_default()
            .to_string();
        let n: u64 = key.trim_start_matches("item-").parse().unwrap_or(0);
        *self.calls.lock().unwrap().entry(key).or_default() += 1;
        ResponseTemplate::new(200)
            .set_body_json(openai_answer(if n % 4 == 0 {
                "Verdict: 0"
            } else {
                "Verdict: 1"
            }))
            .set_delay(self.delay)
    }
}

fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("item-{i}")}))
        .collect()
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

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

fn start_server(port: u16, data_dir: &std::path::Path, provider: &MockServer) -> Child {
    Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env_clear()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_API_URL", format!("{}/v1", provider.uri()))
        .env("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

#[tokio::test]
async fn a_job_resumes_after_sigkill_without_judging_finished_items_again() {
    const N: usize = 2000;
    let provider = MockServer::start().await;
    let counting = Counting::new(5);
    Mock::given(method("POST"))
        .respond_with(counting.clone())
        .mount(&provider)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = start_server(port, data.path(), &provider);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&client, &format!("{base}/healthz"))
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted: Value = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"items": items(N), "max_concurrent": 16}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    // Let it get part of the way.
    loop {
        let v = get_json(&client, &format!("{base}/v1/jobs/{id}"))
            .await
            .unwrap();
        if v["progress"]["done"].as_u64().unwrap() >= 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = client
        .get(format!("{base}/v1/jobs/{id}/results"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let committed: HashSet<String> = ndjson(&before)
        .iter()
        .map(|r| format!("item-{}", r["index"]))
        .collect();
    assert!(
        committed.len() >= 300 && committed.len() < N,
        "{}",
        committed.len()
    );
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();

    let mut server = start_server(port, data.path(), &provider);
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        if let Some(v) = get_json(&client, &format!("{base}/v1/jobs/{id}")).await
            && v["status"] == "completed"
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after = client
        .get(format!("{base}/v1/jobs/{id}/results"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows = ndjson(&after);
    server.kill().unwrap();
    server.wait().unwrap();

    let indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(
        indices,
        (0..N as u64).collect::<Vec<u64>>(),
        "every item has exactly one result"
    );
    assert!(rows.iter().all(|r| r["status"] == "ok"));
    let calls = counting.calls.lock().unwrap().clone();
    for item in &committed {
        assert_eq!(
            calls.get(item),
            Some(&1),
            "{item} was finished before the kill and must not be judged again"
        );
    }
    let resent: usize = calls.values().filter(|c| **c > 1).count();
    assert!(
        resent <= 16 + 256,
        "only items in flight or uncommitted at the kill may be sent twice: {resent}"
    );
    assert_eq!(finished["progress"]["done"], N);
    assert_eq!(finished["summary"]["correct"], N - N / 4);
    assert_eq!(finished["summary"]["incorrect"], N / 4);
    assert_eq!(finished["summary"]["total"], N);
}

#[tokio::test]
async fn an_ndjson_upload_streams_items_to_disk_and_reports_bad_lines_by_number() {
    let app = spawn("", &[]).await;
    let body = "{\"question\":\"2+2?\",\"answer\":\"4\",\"prediction\":\"4\"}\n\n{not json}\n[1,2]\n{\"question\":\"3+3?\",\"answer\":\"6\",\"prediction\":\"7\"}";
    let r = app
        .client
        .post(app.url("/v1/jobs?kind=binary&idempotency_key=upload-1"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |v| v["status"] == "completed").await;
    assert_eq!(done["total"], 4, "blank lines are not items: {done}");
    let (_, text) = app.get(&format!("/v1/jobs/{id}/results")).await;
    let rows = ndjson(&text);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["verdict"], "correct");
    assert_eq!(rows[1]["error"]["code"], "invalid_line");
    assert!(
        rows[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 3:"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 4:"),
        "{}",
        rows[2]
    );
    assert_eq!(rows[3]["verdict"], "incorrect");
    // the same key returns the same job without reading a new upload
    let r = app
        .client
        .post(app.url("/v1/jobs?idempotency_key=upload-1"))
        .header("content-type", "application/x-ndjson")
        .body("{}")
        .send()
        .await
        .unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["created"], false);
    // a bad judge is refused before anything is stored
    let r = app
        .client
        .post(app.url("/v1/jobs?judge=nobody"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}
