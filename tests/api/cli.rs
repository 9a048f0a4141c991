//! The binary as a user runs it: `serve` with no keys judges with the rules judge and says so.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

#[tokio::test]
async fn serve_with_no_keys_uses_the_rules_judge_and_says_how_to_add_a_provider() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("LLM_JUDGE_DATA_DIR", tempfile::tempdir().unwrap().keep())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start llm-judge");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !lines.iter().any(|l: &String| l.contains("listening")) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let log = lines.join("\n");
    let rules_line = lines
        .iter()
        .filter(|l| l.contains("rules") && l.contains("OPENAI_API_KEY"))
        .count();
    assert_eq!(
        rules_line, 1,
        "one clear line about the rules judge and how to add a provider:\n{log}"
    );
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/judge/binary"))
        .header("content-type", "application/json")
        .body(r#"{"question":"What is 2+2?","answer":"4","prediction":"The answer is 4."}"#)
        .send()
        .await
        .expect("the server answers");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["verdict"], "correct", "{body}");
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn an_invalid_config_file_fails_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[providers.openai]\nmax_in_flight = \"lots\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env_clear()
        .env("LLM_JUDGE_DATA_DIR", tempfile::tempdir().unwrap().keep())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_in_flight"), "{err}");
}

#[test]
fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/llm-judge.example.toml");
    let s = llm_judge::config::Settings::from_sources(llm_judge::config::Sources {
        file: Some(std::path::Path::new(path)),
        toml: None,
        env: Vec::new(),
    })
    .expect("llm-judge.example.toml loads");
    assert!(s.rules_only);
}

#[test]
fn an_out_of_range_number_fails_start_up_with_exit_2_naming_the_key() {
    for (var, value, key) in [
        (
            "LLM_JUDGE__JOBS__RETENTION_HOURS",
            "inf",
            "jobs.retention_hours",
        ),
        (
            "LLM_JUDGE__SERVER__SHUTDOWN_GRACE_S",
            "1e300",
            "server.shutdown_grace_s",
        ),
        (
            "LLM_JUDGE__JOBS__JANITOR_INTERVAL_S",
            "1e300",
            "jobs.janitor_interval_s",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_clear()
            .env("LLM_JUDGE_DATA_DIR", tempfile::tempdir().unwrap().keep())
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(
            err.contains(&format!("{key} = {value}")) && err.contains("out of range"),
            "{var}={value}: {err}"
        );
    }
}
