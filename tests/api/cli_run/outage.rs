//! `llm-judge run` through an outage: judging in this process it waits for a provider that is
//! down and judges every item once it is back (the progress line says what waits); against a
//! service, `--retry-errors JOB` sends a finished job's errors again and writes its results.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::support::standin::Standin;
use crate::support::{TestApp, items, openai_answer, spawn};

const MODEL: &str = "gpt-4o-mini";

fn config(base: &str) -> String {
    format!(
        "[judge]\nrules_precheck = false\n[providers.p]\nkind = \"openai\"\nbase_url = \"{base}\"\n\
         api_key = \"sk-run-outage\"\n[retry]\nbase_delay_ms = 20\nmax_delay_ms = 100\n\
         [routes]\ndefault = [\"p:{MODEL}\"]\n"
    )
}

#[tokio::test]
async fn a_run_waits_for_a_provider_that_is_down_and_judges_every_item_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config(&format!("http://127.0.0.1:{port}/v1"))).unwrap();
    let input = dir.path().join("in.jsonl");
    write_items(&input, &binary_items(5));
    let out = dir.path().join("out.jsonl");
    let child = llm_judge(&[])
        .arg("run")
        .args(["--input", path_str(&input), "--output", path_str(&out)])
        .args(["--config", path_str(&cfg)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("llm-judge run starts");
    // Nothing listens for 4 s; then the provider comes up on its port.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let provider = Standin::judging_on(port, &[]);
    let done = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the run ends")
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    let verdicts = by_index(&read_lines(&out));
    assert_eq!(verdicts.len(), 5, "{verdicts:?}");
    assert!(verdicts.values().all(|v| v == "correct"), "{verdicts:?}");
    assert!(stderr.contains("items wait for the route"), "{stderr}");
    assert!(provider.stats().await["calls"].as_u64() >= Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_errors_sends_a_finished_jobs_errors_again_and_writes_its_results() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
        ))
        .mount(&provider)
        .await;
    let app: TestApp = spawn(&config(&format!("{}/v1", provider.uri())), &[]).await;
    let (status, v) = app.post("/v1/jobs", &json!({"items": items(5)})).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = app.get(&format!("/v1/jobs/{id}")).await;
        let job: Value = serde_json::from_str(&body).unwrap();
        if job["status"] == "completed" {
            assert_eq!(job["summary"]["errors"], 5, "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = format!("http://{}", app.addr);
    let r = run(&["--server", &server, "--retry-errors", "job_nope"], &[]).await;
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);

    provider.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("Verdict: correct")))
        .mount(&provider)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let r = run(
        &[
            "--server",
            &server,
            "--retry-errors",
            &id,
            "--output",
            path_str(&out),
        ],
        &[],
    )
    .await;
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stderr.contains("5 errored items sent again"),
        "{}",
        r.stderr
    );
    let verdicts = by_index(&read_lines(&out));
    assert_eq!(verdicts.len(), 5);
    assert!(verdicts.values().all(|v| v == "correct"), "{verdicts:?}");
}
