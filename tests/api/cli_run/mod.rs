//! `llm-judge run` as a user runs it: the real binary with a clean environment, on files in a
//! temporary directory, with the rules judge, a stand-in OpenAI server, or a spawned service.

mod inputs;
mod outage;
mod provider_batch;
mod server;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.jsonl");

fn llm_judge(env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-judge"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LLM_JUDGE_DATA_DIR", tempfile::tempdir().unwrap().keep())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        llm_judge(env).arg("run").args(args).output(),
    )
    .await
    .expect("llm-judge run finishes")
    .expect("llm-judge starts");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn read_lines(path: &Path) -> Vec<Value> {
    lines(&std::fs::read_to_string(path).unwrap())
}

/// index -> verdict (or error code), checking each index appears once.
fn by_index(entries: &[Value]) -> BTreeMap<u64, String> {
    let mut map = BTreeMap::new();
    for e in entries {
        let v = if e["status"] == "ok" {
            e["verdict"].as_str().unwrap().to_string()
        } else {
            format!("error:{}", e["error"]["code"].as_str().unwrap())
        };
        let index = e["index"].as_u64().unwrap();
        assert!(map.insert(index, v).is_none(), "index {index} twice");
    }
    map
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_items(path: &Path, items: &[Value]) {
    let text: String = items.iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn binary_items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"question": format!("What is {i} + 1?"), "answer": format!("{}", i + 1), "prediction": format!("{}", i + 1)}))
        .collect()
}

/// `llm-judge serve` on a free port (killed on drop), once it answers /healthz.
async fn spawn_server(
    env: &[(&str, &str)],
    config: Option<&Path>,
) -> (tokio::process::Child, String) {
    let port = free_port();
    let mut cmd = llm_judge(env);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let child = cmd.spawn().expect("start llm-judge serve");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}

#[tokio::test]
async fn the_sample_file_is_judged_with_no_keys_one_line_per_item_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let r = run(
        &["--input", SAMPLE, "--summary-json", path_str(&summary)],
        &[],
    )
    .await;
    assert!(r.status.success(), "{}", r.stderr);
    let entries = lines(&r.stdout);
    let items = std::fs::read_to_string(SAMPLE).unwrap().lines().count();
    assert_eq!(entries.len(), items);
    let verdicts = by_index(&entries);
    assert_eq!(
        verdicts.keys().copied().collect::<Vec<_>>(),
        (0..items as u64).collect::<Vec<_>>()
    );
    for e in &entries {
        assert_eq!(e["status"], "ok", "{e}");
        for field in [
            "raw_response",
            "provider",
            "model",
            "template_version",
            "usage",
            "line",
        ] {
            assert!(!e[field].is_null(), "{field} in {e}");
        }
    }
    let count = |v: &str| verdicts.values().filter(|x| *x == v).count();
    assert!(
        count("correct") > count("incorrect") && count("incorrect") > 0 && count("unscored") > 0
    );
    for label in [
        "total",
        "correct",
        "incorrect",
        "unscored",
        "errors",
        "accuracy",
        "tokens",
        "cost",
        "duration",
        "items/s",
    ] {
        assert!(
            r.stderr.contains(&format!("\n  {label} ")),
            "{label} in\n{}",
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("rules"),
        "says it judges with the rules judge:\n{}",
        r.stderr
    );
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["total"], items);
    assert_eq!(s["correct"], count("correct"));
    assert_eq!(s["unscored"], count("unscored"));
    assert_eq!(s["done"], items);
}

#[tokio::test]
async fn fail_under_exits_3_below_the_accuracy_and_0_above() {
    let below = run(&["--input", SAMPLE, "--fail-under", "0.95"], &[]).await;
    assert_eq!(below.status.code(), Some(3), "{}", below.stderr);
    assert!(
        below.stderr.contains("below --fail-under 0.95"),
        "{}",
        below.stderr
    );
    let above = run(&["--input", SAMPLE, "--fail-under", "0.5"], &[]).await;
    assert_eq!(above.status.code(), Some(0), "{}", above.stderr);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("unscored.jsonl");
    write_items(
        &input,
        &[json!({"question": "q", "answer": "30", "prediction": "x >= 30"})],
    );
    let none = run(&["--input", path_str(&input), "--fail-under", "0"], &[]).await;
    assert_eq!(none.status.code(), Some(3), "{}", none.stderr);
    assert!(
        none.stderr
            .contains("nothing was graded correct or incorrect"),
        "{}",
        none.stderr
    );

    let bad = run(&["--input", SAMPLE, "--fail-under", "1.5"], &[]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
}

#[tokio::test]
async fn usage_problems_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let r = run(
        &[
            "--input",
            SAMPLE,
            "--judge",
            "nope",
            "--output",
            path_str(&out),
        ],
        &[],
    )
    .await;
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("unknown judge \"nope\""), "{}", r.stderr);
    assert!(!out.exists(), "nothing ran");

    let r = run(
        &["--input", path_str(&dir.path().join("missing.jsonl"))],
        &[],
    )
    .await;
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("missing.jsonl"), "{}", r.stderr);

    let data = dir.path().join("data.jsonl");
    std::fs::copy(SAMPLE, &data).unwrap();
    let r = run(
        &["--input", path_str(&data), "--output", path_str(&data)],
        &[],
    )
    .await;
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    let other = dir.path().join("notes.jsonl");
    std::fs::write(&other, "{\"question\":\"mine\"}\n").unwrap();
    let r = run(&["--input", SAMPLE, "--output", path_str(&other)], &[]).await;
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("does not look like"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "{\"question\":\"mine\"}\n"
    );

    let csv = dir.path().join("extra.csv");
    std::fs::write(&csv, "id,question,answer,prediction\n1,q,a,a\n").unwrap();
    let r = run(&["--input", path_str(&csv)], &[]).await;
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("\"id\""), "{}", r.stderr);
}
