//! Operating the service: client tokens, request ids, secrets kept out of every output, and a
//! graceful shutdown that lets a running batch finish.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn client_tokens_guard_the_api_but_not_the_probes() {
    let app = spawn("[auth]\ntokens = [\"tok-one\", \"tok-two\"]\n", &[]).await;
    let item = json!({"question":"q","answer":"4","prediction":"4"});
    let url = app.url("/v1/judge/binary");
    let r = app.client.post(&url).json(&item).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = app
        .client
        .post(&url)
        .bearer_auth("tok-wrong")
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(&url)
        .bearer_auth("tok-tw")
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a prefix of a token is not a token");
    for token in ["tok-one", "tok-two"] {
        let r = app
            .client
            .post(&url)
            .bearer_auth(token)
            .json(&item)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(app.get(open).await.0, 200, "{open} stays open");
    }
    let r = app
        .client
        .get(app.url("/v1/providers"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn("", &[]).await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .body("{")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "x".repeat(129))
        .send()
        .await
        .unwrap();
    let other = r.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(other.len(), 32, "an id over 128 characters is replaced");
    assert_ne!(other, id, "every request gets an id of its own");
}

#[tokio::test]
async fn request_metrics_are_labelled_by_route_template_never_by_raw_path() {
    let app = spawn("", &[]).await;
    let item = json!({"question":"q","answer":"4","prediction":"4"});
    for _ in 0..3 {
        let r = app
            .client
            .post(app.url("/v1/judge/binary"))
            .json(&item)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.get("/v1/jobs/no-such-job").await.0, 404);
    assert_eq!(app.get("/wp-admin/setup.php").await.0, 404);
    let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"llm_judge_http_requests_total{endpoint="/v1/judge/binary",status="200"} 3"#,
        r#"llm_judge_http_requests_total{endpoint="/v1/jobs/{id}",status="404"} 1"#,
        r#"llm_judge_http_requests_total{endpoint="unmatched",status="404"} 1"#,
        r#"llm_judge_http_requests_total{endpoint="/healthz",status="405"} 1"#,
        r#"llm_judge_http_request_duration_seconds_count{endpoint="/v1/judge/binary"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(!text.contains("wp-admin") && !text.contains("no-such-job"));
}

#[tokio::test]
async fn at_the_default_level_each_request_has_one_access_line_with_its_id() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log.txt");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("LLM_JUDGE_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    wait_ready(port).await;
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/judge/binary"))
        .header("x-request-id", "trace-me-7")
        .json(&json!({"question":"q","answer":"4","prediction":"4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = stop_and_read_log(&mut child, &log_path);
    let access = access_lines(&log, "trace-me-7");
    for field in [
        " INFO ",
        "request done",
        "method=POST",
        "endpoint=/v1/judge/binary",
        "status=200",
        "latency_ms=",
    ] {
        assert!(access[0].contains(field), "{field} in {}", access[0]);
    }
}

/// Stops the service with SIGTERM and returns what it logged.
fn stop_and_read_log(child: &mut std::process::Child, log_path: &std::path::Path) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    std::fs::read_to_string(log_path).unwrap()
}

/// The one access line of the request with this id.
fn access_lines<'a>(log: &'a str, request_id: &str) -> Vec<&'a str> {
    let needle = format!("request_id={request_id} ");
    let access: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
    assert_eq!(
        access.len(),
        1,
        "one access line for {request_id} in\n{log}"
    );
    access
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not start");
}

const SECRET: &str = "sk-live-SECRET-4f9a8b7c6d5e";

#[tokio::test]
async fn a_provider_key_appears_in_no_log_line_error_metric_or_response() {
    let provider = MockServer::start().await;
    // A provider that echoes the key it was sent, in its error body, as some do when rejecting it.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error":{"message":format!("Incorrect API key provided: {SECRET}"),"type":"invalid_request_error","param":null,"code":"invalid_api_key"}})))
        .mount(&provider)
        .await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log_path) = serve_with_the_secret(port, dir.path(), &provider);
    wait_ready(port).await;
    let (outputs, ids) = every_output(port).await;
    let log = stop_and_read_log(&mut child, &log_path);
    assert!(
        outputs[1].contains("[redacted]"),
        "the provider's echo was scrubbed, not dropped: {}",
        outputs[1]
    );
    check_the_debug_log(&log, &ids);
    for (i, text) in outputs.iter().chain(std::iter::once(&log)).enumerate() {
        assert!(!text.contains(SECRET), "output {i} leaks the key:\n{text}");
        assert!(
            !text.contains("SECRET-4f9a"),
            "output {i} leaks part of the key:\n{text}"
        );
    }
}

/// The service as a process on `port` with the [`SECRET`] key for its provider (and in the
/// environment), logging JSON at the debug level into a file in `dir`: the process and its log.
fn serve_with_the_secret(
    port: u16,
    dir: &std::path::Path,
    provider: &MockServer,
) -> (std::process::Child, std::path::PathBuf) {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.openai]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"{SECRET}\"\n[routes]\ndefault = [\"openai:gpt-4o\"]\n",
            provider.uri()
        ),
    )
    .unwrap();
    let log_path = dir.join("log.txt");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .env_clear()
        .env("LLM_JUDGE_DATA_DIR", tempfile::tempdir().unwrap().keep())
        .env("RUST_LOG", "debug")
        .env("TOGETHER_API_KEY", SECRET)
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    (child, log_path)
}

/// What every endpoint answers (headers and bodies of judgments that fail at the provider, and
/// the metrics, providers and OpenAPI documents), with the request ids of the judgments.
async fn every_output(port: u16) -> (Vec<String>, Vec<String>) {
    let client = reqwest::Client::new();
    let mut outputs = Vec::new();
    let mut ids = Vec::new();
    for (path, body) in [
        (
            "/v1/judge/binary",
            json!({"question":"q","answer":"a","prediction":"p"}),
        ),
        (
            "/v1/judge/batch",
            json!({"items":[{"question":"q","answer":"a","prediction":"p"}]}),
        ),
        (
            "/v1/judge/binary",
            json!({"question":"q","answer":"a","prediction":"p","judge":"nobody"}),
        ),
    ] {
        let r = client
            .post(format!("http://127.0.0.1:{port}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
        outputs.push(format!("{:?}", r.headers()));
        outputs.push(r.text().await.unwrap());
    }
    for path in ["/metrics", "/v1/providers", "/openapi.json"] {
        outputs.push(
            client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    (outputs, ids)
}

/// The debug log has the failed attempts; each request's access line carries its id, and a
/// debug line written while serving it carries the id through the request's span.
fn check_the_debug_log(log: &str, ids: &[String]) {
    assert!(log.lines().count() > 5, "debug logging was on: {log}");
    assert!(log.contains("provider attempt failed"), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let access = lines
        .iter()
        .find(|l| l["message"] == "request done" && l["request_id"] == ids[0].as_str())
        .unwrap_or_else(|| panic!("no access line for {}: {log}", ids[0]));
    assert_eq!(access["endpoint"], "/v1/judge/binary");
    assert_eq!(access["status"], 502, "{access}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "provider attempt failed"
                && l["span"]["request_id"] == ids[0].as_str()),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_during_a_batch_lets_it_finish_then_exits_zero() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("Verdict: 1"))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&provider)
        .await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("LLM_JUDGE_DATA_DIR", tempfile::tempdir().unwrap().keep())
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_API_URL", format!("{}/v1", provider.uri()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port).await;
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("p{i}")}))
        .collect();
    let client = reqwest::Client::new();
    let batch = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/v1/judge/batch"))
                .json(&json!({"max_concurrent": 5, "items": items}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // new work is refused while the batch drains
    let refused = client
        .post(format!("http://127.0.0.1:{port}/v1/judge/binary"))
        .json(&json!({"question":"q","answer":"a","prediction":"p"}))
        .send()
        .await;
    match refused {
        Ok(r) => assert_eq!(r.status(), 503),
        Err(e) => assert!(e.is_connect(), "{e}"),
    }
    let body = batch.await.unwrap();
    assert_eq!(body["summary"]["total"], 20);
    assert_eq!(
        body["summary"]["correct"], 20,
        "every item finished: {}",
        body["summary"]
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Holds its answer until the test releases it (or 20 s pass).
struct Held(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl wiremock::Respond for Held {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let _ = self.0.lock().unwrap().recv_timeout(Duration::from_secs(20));
        ResponseTemplate::new(200).set_body_json(openai_answer("Verdict: 1"))
    }
}

/// A batch's JSON answer is written as it goes: the results before an item still being judged
/// reach the client while it waits, and the request's access line and duration metric cover
/// the whole answer, not just its head.
#[tokio::test]
async fn a_batch_answer_is_sent_as_it_goes_and_its_request_is_timed_to_the_last_byte() {
    let provider = MockServer::start().await;
    let (release, held) = std::sync::mpsc::channel();
    Mock::given(method("POST"))
        .respond_with(Held(std::sync::Mutex::new(held)))
        .mount(&provider)
        .await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("LLM_JUDGE_DATA_DIR", dir.path().join("data"))
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_API_URL", format!("{}/v1", provider.uri()))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    wait_ready(port).await;
    let client = reqwest::Client::new();
    let held_for = a_batch_with_a_held_item(&client, port, &release).await;
    check_the_batch_was_timed_to_its_last_byte(port, held_for).await;
    a_client_that_leaves_after_the_head(&client, port).await;
    release.send(()).unwrap();
    let log = stop_and_read_log(&mut child, &log_path);
    let cut = access_lines(&log, "cut-batch");
    assert!(cut[0].contains("complete=false"), "{}", cut[0]);
    let access = access_lines(&log, "held-batch");
    assert!(!access[0].contains("complete="), "{}", access[0]);
    let latency_ms: f64 = access[0]
        .split("latency_ms=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        latency_ms >= held_for.as_secs_f64() * 1000.0 - 50.0,
        "{}",
        access[0]
    );
}

/// A batch of 600 items the rules judge answers at once, then one held by the provider: the
/// results before the held item arrive while it is held, the rest once `release` lets it go.
/// How long the answer took at least.
async fn a_batch_with_a_held_item(
    client: &reqwest::Client,
    port: u16,
    release: &std::sync::mpsc::Sender<()>,
) -> Duration {
    let mut items: Vec<Value> = (0..600)
        .map(|i| json!({"question": "q", "answer": "4", "prediction": format!("{}", i % 2 * 4), "judge": "rules"}))
        .collect();
    items.push(json!({"question": "q", "answer": "a", "prediction": "p"}));
    let started = Instant::now();
    let sent = client
        .post(format!("http://127.0.0.1:{port}/v1/judge/batch"))
        .header("x-request-id", "held-batch")
        .json(&json!({"max_concurrent": 8, "items": items}))
        .send();
    let mut resp = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .expect("the answer's head arrives while an item is held")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let mut body = Vec::new();
    while body.len() < 64 * 1024 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("the results before the held item arrive while it is held")
            .unwrap()
            .expect("the answer does not end while an item is held");
        body.extend_from_slice(&chunk);
    }
    assert!(body.starts_with(br#"{"results":[{"index":0,"#));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held_for = started.elapsed();
    release.send(()).unwrap();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 601);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["status"], "ok", "{r}");
    }
    assert_eq!(results[600]["provider"], "openai");
    assert_eq!(doc["summary"]["total"], 601);
    assert_eq!(doc["summary"]["correct"], 301);
    assert_eq!(doc["summary"]["incorrect"], 300);
    held_for
}

/// The batch's duration metric counts the whole answer, held item included.
async fn check_the_batch_was_timed_to_its_last_byte(port: u16, held_for: Duration) {
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{endpoint=\"/v1/judge/batch\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("llm_judge_http_request_duration_seconds_count"), 1.0);
    let timed = value("llm_judge_http_request_duration_seconds_sum");
    assert!(
        timed >= held_for.as_secs_f64() - 0.05,
        "the batch request was timed at {timed} s; its answer took over {held_for:?}"
    );
}

/// A client that leaves after the head: the service notices it has gone and cancels the item
/// still in flight (its request is logged as cut off).
async fn a_client_that_leaves_after_the_head(client: &reqwest::Client, port: u16) {
    let cut = client
        .post(format!("http://127.0.0.1:{port}/v1/judge/batch"))
        .header("x-request-id", "cut-batch")
        .json(&json!({"items": [{"question": "q", "answer": "a", "prediction": "not cached"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    let in_flight = || async {
        let v: Value = reqwest::get(format!("http://127.0.0.1:{port}/v1/providers"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "openai")
            .map(|p| p["in_flight"].as_u64().unwrap())
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight().await == 0 {
        assert!(
            Instant::now() < deadline,
            "the item never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(cut);
    // The service notices the client has gone and cancels the item still in flight.
    while in_flight().await > 0 {
        assert!(Instant::now() < deadline, "the item outlived its client");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
