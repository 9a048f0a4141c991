//! Persistent jobs: every endpoint, idempotency, cancellation, expiry, and resuming after the
//! server is killed in the middle of a job.

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
    serve_process(port, data_dir, provider, |_| {})
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
    let port = free_port();
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
    let accepted: Value = post_json(
        &client,
        &format!("{base}/v1/jobs"),
        &json!({"items": items(N), "max_concurrent": 16}),
    )
    .await;
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
    let before = get_text(&client, &format!("{base}/v1/jobs/{id}/results")).await;
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
    let after = get_text(&client, &format!("{base}/v1/jobs/{id}/results")).await;
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
    // the same key and the same upload return the same job; another upload under it is a 409
    let again = |body: &'static str| {
        app.client
            .post(app.url("/v1/jobs?idempotency_key=upload-1"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let r = again(body).await.unwrap();
    assert_eq!(r.status(), 202);
    let again_v: Value = r.json().await.unwrap();
    assert_eq!(again_v["id"], id.as_str());
    assert_eq!(again_v["created"], false);
    let r = again("{}").await.unwrap();
    assert_eq!(r.status(), 409);
    let conflict: Value = r.json().await.unwrap();
    assert_eq!(
        conflict["error"]["code"], "idempotency_conflict",
        "{conflict}"
    );
    assert_eq!(conflict["error"]["field"], "idempotency_key", "{conflict}");
    assert!(
        conflict["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"upload-1\""),
        "{conflict}"
    );
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

/// Starts an NDJSON upload on a raw connection (chunked, so it can stay open) and sends its
/// first line; dropping the stream aborts the upload.
async fn start_upload(app: &TestApp, key: &str, first_line: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let line = format!("{first_line}\n");
    let head = format!(
        "POST /v1/jobs?idempotency_key={key} HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{line}\r\n",
        app.addr,
        line.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.flush().await.unwrap();
    tcp
}

async fn post_ndjson(app: &TestApp, key: &str, body: &'static str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/v1/jobs?idempotency_key={key}")))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_key_in_use_by_an_unfinished_upload_is_a_409_and_an_aborted_upload_frees_it() {
    let app = spawn("", &[]).await;
    let line = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    let upload = start_upload(&app, "k-1", line).await;
    // Wait until the first upload's job exists (it is listed as uploading).
    let deadline = Instant::now() + Duration::from_secs(10);
    let first_id = loop {
        let (_, listing) = app.get("/v1/jobs").await;
        let listing: Value = serde_json::from_str(&listing).unwrap();
        if let Some(j) = listing["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["status"] == "uploading")
        {
            break j["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // A second upload with the key is refused while the first is arriving: it does not get
    // an id that would turn into a 404 if the first one broke off.
    let body = "{\"question\":\"3+3?\",\"answer\":\"6\",\"prediction\":\"6\"}\n";
    let (s, v) = post_ndjson(&app, "k-1", body).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "idempotency_in_progress", "{v}");
    assert_eq!(v["error"]["field"], "idempotency_key", "{v}");
    // So is a JSON submission with it.
    let (s, v) = app
        .post(
            "/v1/jobs",
            &json!({"items": items(1), "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("idempotency_in_progress")),
        "{v}"
    );

    // The client goes away mid-upload: the upload is removed and the key is free again.
    drop(upload);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (s, v) = loop {
        let (s, v) = post_ndjson(&app, "k-1", body).await;
        if s != 409 {
            break (s, v);
        }
        assert!(Instant::now() < deadline, "the key was never released: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["created"], true, "{v}");
    let id = v["id"].as_str().unwrap();
    assert_ne!(id, first_id);
    assert_eq!(app.get(&format!("/v1/jobs/{first_id}")).await.0, 404);
    let done = wait_for(&app, id, |v| v["status"] == "completed").await;
    assert_eq!(done["total"], 1);
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

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(client, &format!("{base}/healthz")).await.is_none() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A DELETE right after a restart, while the jobs are being resumed, must win: the job ends
/// `cancelled` and no call for it starts after the DELETE was answered (beyond the few that a
/// runner may have been starting at that instant).
#[tokio::test]
async fn a_cancel_during_resume_wins_and_no_provider_calls_follow_it() {
    const ROUNDS: usize = 3;
    const JOBS: usize = 4;
    const ITEMS: usize = 1200;
    const FAST: u64 = 800;
    const CONCURRENCY: usize = 8;
    let provider = MockServer::start().await;
    let recording = Recording {
        calls: Arc::default(),
        fast_below: FAST,
        slow: Duration::from_millis(100),
    };
    Mock::given(method("POST"))
        .respond_with(recording.clone())
        .mount(&provider)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for round in 0..ROUNDS {
        let mut server = start_server(port, data.path(), &provider);
        wait_healthy(&client, &base).await;
        let mut ids = Vec::new();
        for j in 0..JOBS {
            let list: Vec<Value> = (0..ITEMS)
                .map(|i| json!({"question":"q","answer":"a","prediction":format!("r{round}j{j}-{i}")}))
                .collect();
            let accepted: Value = post_json(
                &client,
                &format!("{base}/v1/jobs"),
                &json!({"items": list, "max_concurrent": CONCURRENCY}),
            )
            .await;
            ids.push(accepted["id"].as_str().unwrap().to_string());
        }
        // Every job gets most of its fast items committed, then the server is killed.
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in &ids {
            loop {
                let v = get_json(&client, &format!("{base}/v1/jobs/{id}"))
                    .await
                    .unwrap();
                if v["progress"]["done"].as_u64().unwrap() >= FAST * 3 / 4 {
                    break;
                }
                assert!(Instant::now() < deadline, "round {round}: {v}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        server.kill().unwrap();
        server.wait().unwrap();

        // Restart and cancel every job as soon as the server answers.
        let mut server = start_server(port, data.path(), &provider);
        wait_healthy(&client, &base).await;
        let answers = futures::future::join_all(ids.iter().map(|id| {
            let client = client.clone();
            let url = format!("{base}/v1/jobs/{id}");
            async move {
                let r = client.delete(url).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body, Instant::now())
            }
        }))
        .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut finals = Vec::new();
        for id in &ids {
            let v = loop {
                let v = get_json(&client, &format!("{base}/v1/jobs/{id}"))
                    .await
                    .unwrap();
                if v["status"] == "cancelled" || v["status"] == "completed" {
                    break v;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: never finished: {v}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            finals.push(v);
        }
        // Long enough for a call started by a runner that missed the cancel to show up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.kill().unwrap();
        server.wait().unwrap();

        let calls = recording.calls.lock().unwrap().clone();
        for (j, ((status, answer, answered), fin)) in answers.iter().zip(&finals).enumerate() {
            let tag = format!("r{round}j{j}-");
            let after = calls
                .iter()
                .filter(|(k, at)| k.starts_with(&tag) && at > answered)
                .count();
            assert_eq!(
                fin["status"], "cancelled",
                "round {round} job {j}: the cancel was lost: {fin}"
            );
            assert!(
                after <= CONCURRENCY,
                "round {round} job {j}: {after} calls started after the DELETE was answered"
            );
            assert_eq!(*status, 200, "{answer}");
            assert!(
                answer["status"] == "cancelled" || answer["status"] == "cancelling",
                "{answer}"
            );
        }
    }
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
