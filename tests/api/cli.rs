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

/// Runs `llm-judge ARGS` with its standard output read for at most `take` bytes and then
/// closed, as `| head -c take` does; the exit code and what it wrote to standard error.
fn with_output_closed(args: &[&str], take: usize) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(args)
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; take];
    out.read_exact(&mut buf).unwrap();
    drop(out);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn commands_end_quietly_when_their_reader_goes_away() {
    let (code, err) = with_output_closed(&["openapi"], 10);
    assert_eq!(code, Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    let line = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    std::fs::write(&input, format!("{line}\n").repeat(20_000)).unwrap();
    let input = input.display().to_string();
    let (code, err) = with_output_closed(&["run", "--input", &input, "--judge", "rules"], 100);
    assert_eq!(code, Some(141), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn a_config_syntax_error_names_the_file_and_key_but_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    for (text, secret, key) in [
        (
            "[providers.openai]\nkind = \"openai\"\napi_key = \"sk-do-not-print-me\n",
            "sk-do-not-print-me",
            "api_key",
        ),
        (
            "[redis]\nurl = \"redis://:hunter2-do-not-print@127.0.0.1:6379/0\n",
            "hunter2-do-not-print",
            "url",
        ),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
            .args(["serve", "--config"])
            .arg(&file)
            .env_clear()
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(!err.contains(secret), "the value is printed: {err}");
        assert!(err.contains(key) && err.contains("bad.toml"), "{err}");
    }
}

#[test]
fn a_start_that_cannot_listen_says_so_once_and_creates_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .env_clear()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("cannot listen").count(), 1, "said once: {err}");
    assert!(err.contains("--listen"), "says what to do: {err}");
    assert!(
        !data.exists(),
        "nothing is created before the service has started"
    );
}
