//! `llm-judge run` as a user runs it: the real binary with a clean environment, on files in a
//! temporary directory, with the rules judge, a stand-in OpenAI server, or a spawned service.

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

#[tokio::test]
async fn gzip_input_is_read_by_extension_or_magic_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(std::fs::read(SAMPLE).unwrap().as_slice())
        .unwrap();
    let bytes = gz.finish().unwrap();
    let plain = run(&["--input", SAMPLE], &[]).await;
    for name in ["items.jsonl.gz", "items-without-extension"] {
        let input = dir.path().join(name);
        std::fs::write(&input, &bytes).unwrap();
        let r = run(&["--input", path_str(&input)], &[]).await;
        assert!(r.status.success(), "{}", r.stderr);
        assert!(r.stderr.contains("gzip"), "{}", r.stderr);
        assert_eq!(by_index(&lines(&r.stdout)), by_index(&lines(&plain.stdout)));
    }
}

#[tokio::test]
async fn csv_input_maps_columns_to_fields() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.csv");
    std::fs::write(
        &input,
        "question,answer,prediction,prompt\n\
         \"What is 2+2?\nAnswer briefly.\",4,4.0,\n\
         Capital of France?,Paris,London,\n\
         ,x,y,\n\
         \"Which is a fruit?\nA. Carrot\nB. Apple\",B,\"The answer is B.\",\n",
    )
    .unwrap();
    let r = run(&["--input", path_str(&input)], &[]).await;
    assert!(r.status.success(), "{}", r.stderr);
    let entries = lines(&r.stdout);
    let v = by_index(&entries);
    assert_eq!(v[&0], "correct");
    assert_eq!(v[&1], "incorrect");
    assert_eq!(
        v[&2], "error:invalid_item",
        "an empty cell is an absent field"
    );
    assert_eq!(v[&3], "correct");
    let line_of = |i: u64| entries.iter().find(|e| e["index"] == i).unwrap()["line"].clone();
    assert_eq!(line_of(0), 2);
    assert_eq!(line_of(3), 6, "a quoted cell may span lines");
}

#[tokio::test]
async fn a_malformed_line_is_reported_with_its_line_number_and_the_rest_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    let good =
        |p: &str| json!({"question": "What is 2+2?", "answer": "4", "prediction": p}).to_string();
    std::fs::write(
        &input,
        format!(
            "{}\n{{\"question\": \"cut\n{}\n\n[1, 2]\n{}\n",
            good("4"),
            good("5"),
            good("4.0")
        ),
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let r = run(
        &["--input", path_str(&input), "--output", path_str(&out)],
        &[],
    )
    .await;
    assert!(r.status.success(), "{}", r.stderr);
    let entries = read_lines(&out);
    let v = by_index(&entries);
    let expected: BTreeMap<u64, String> = [
        (0, "correct"),
        (1, "error:invalid_line"),
        (2, "incorrect"),
        (3, "error:invalid_line"),
        (4, "correct"),
    ]
    .into_iter()
    .map(|(i, s)| (i, s.to_string()))
    .collect();
    assert_eq!(v, expected);
    let bad = entries.iter().find(|e| e["index"] == 1).unwrap();
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("line 2"),
        "{bad}"
    );
    assert_eq!(bad["line"], 2);
    let array = entries.iter().find(|e| e["index"] == 3).unwrap();
    assert!(
        array["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 5: expected a JSON object"),
        "{array}"
    );
    assert!(
        r.stderr.contains("line 2:") && r.stderr.contains("line 5:"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("errors     2"), "{}", r.stderr);
}

#[tokio::test]
async fn resume_judges_only_missing_and_error_items_and_keeps_one_ok_line_per_index() {
    let standin = crate::support::openai_standin("1").await;
    let base = format!("{}/v1", standin.uri());
    let env = [
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_API_URL", base.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    write_items(&input, &binary_items(6));
    let out = dir.path().join("out.jsonl");
    let earlier = |i: usize| json!({"index": i, "status": "ok", "verdict": "correct", "result": 1, "from": "earlier", "usage": {"prompt_tokens": 1, "completion_tokens": 1}, "cost_usd": null});
    std::fs::write(
        &out,
        format!(
            "{}\n{}\n{}\n{}\n{{\"index\": 4, \"stat",
            earlier(0),
            json!({"index": 1, "status": "error", "error": {"code": "all_providers_failed", "message": "boom"}}),
            earlier(2),
            earlier(3),
        ),
    )
    .unwrap();
    let r = run(
        &["--input", path_str(&input), "--output", path_str(&out)],
        &env,
    )
    .await;
    assert!(r.status.success(), "{}", r.stderr);
    let received = standin.received_requests().await.unwrap().len();
    assert_eq!(
        received, 3,
        "items 1 (error), 4 and 5 (missing) are judged; {}",
        r.stderr
    );
    let entries = read_lines(&out);
    assert_eq!(entries.len(), 6, "{entries:?}");
    let v = by_index(&entries);
    assert!(v.values().all(|s| s == "correct"), "{v:?}");
    assert_eq!(
        v.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    for i in [0, 2, 3] {
        let e = entries.iter().find(|e| e["index"] == i).unwrap();
        assert_eq!(e["from"], "earlier", "kept as it was: {e}");
    }
    let fresh = entries.iter().find(|e| e["index"] == 1).unwrap();
    assert_eq!(fresh["provider"], "openai");
    assert_eq!(fresh["raw_response"], "1");
    assert!(
        r.stderr.contains("3 this run, 3 from an earlier run"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("resuming"), "{}", r.stderr);

    // Everything done: a second resume judges nothing.
    let again = run(
        &["--input", path_str(&input), "--output", path_str(&out)],
        &env,
    )
    .await;
    assert!(again.status.success(), "{}", again.stderr);
    assert_eq!(standin.received_requests().await.unwrap().len(), 3);
    assert_eq!(read_lines(&out).len(), 6);
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
async fn server_mode_gives_the_same_verdicts_as_judging_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[auth]\ntokens = [\"cli-secret-token\"]\n").unwrap();
    let (_server, url) = spawn_server(&[], Some(&config)).await;
    let local = run(&["--input", SAMPLE], &[]).await;
    assert!(local.status.success(), "{}", local.stderr);

    let refused = run(&["--input", SAMPLE, "--server", &url], &[]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);

    let token = [("LLM_JUDGE_TOKEN", "cli-secret-token")];
    let out = dir.path().join("out.jsonl");
    let remote = run(
        &[
            "--input",
            SAMPLE,
            "--server",
            &url,
            "--concurrency",
            "5",
            "--output",
            path_str(&out),
        ],
        &token,
    )
    .await;
    assert!(remote.status.success(), "{}", remote.stderr);
    assert!(!remote.stderr.contains("cli-secret-token"));
    let entries = read_lines(&out);
    assert_eq!(by_index(&entries), by_index(&lines(&local.stdout)));
    let line_of = |e: &Value| e["line"].as_u64().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| line_of(e) == e["index"].as_u64().unwrap() + 1)
    );

    let unknown = run(
        &["--input", SAMPLE, "--server", &url, "--judge", "nope"],
        &token,
    )
    .await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        unknown.stderr.contains("unknown judge \"nope\""),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn sigint_finishes_items_in_flight_writes_them_and_exits_130() {
    let standin = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::support::openai_answer("1"))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&standin)
        .await;
    let base = format!("{}/v1", standin.uri());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.jsonl");
    write_items(&input, &binary_items(20));
    let out: PathBuf = dir.path().join("out.jsonl");
    let mut child = llm_judge(&[("OPENAI_API_KEY", "sk-test"), ("OPENAI_API_URL", &base)])
        .args([
            "run",
            "--input",
            path_str(&input),
            "--output",
            path_str(&out),
            "--concurrency",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let a few items finish, then interrupt with some in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while standin.received_requests().await.unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "the run did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after the items in flight")
        .unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let entries = lines(&text);
    let sent = standin.received_requests().await.unwrap().len();
    assert!(sent < 20, "it stopped taking items ({sent} sent)");
    assert_eq!(
        entries.len(),
        sent,
        "every item sent was finished and written:\n{stderr}"
    );
    assert_eq!(by_index(&entries).len(), sent);
    assert!(entries.iter().all(|e| e["status"] == "ok"));
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains(&format!("done       {sent}")), "{stderr}");
}

/// The project's stand-in provider answering every item right, through its batch APIs too.
fn judging_standin() -> crate::support::standin::Standin {
    crate::support::standin::Standin::judging(&["--batch-delay-ms", "200"])
}

fn provider_batch_config(dir: &Path, standin: &crate::support::standin::Standin) -> PathBuf {
    let config = dir.join("batch.toml");
    std::fs::write(
        &config,
        format!(
            "[judge]\nrules_precheck = false\n[providers.openai]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-test\"\nbatch_poll_s = 0.02\nbatch_poll_max_s = 0.1\n[routes]\ndefault = [\"openai:judge-model\"]\n[prices]\n\"judge-model\" = {{ prompt_per_mtok = 2.0, completion_per_mtok = 8.0 }}\n",
            standin.base
        ),
    )
    .unwrap();
    config
}

/// Every entry came from one provider batch, and the stand-in saw that batch and no online call.
async fn assert_one_batch(entries: &[Value], n: usize, standin: &crate::support::standin::Standin) {
    assert_eq!(entries.len(), n);
    assert!(by_index(entries).values().all(|v| v == "correct"));
    let batch = entries[0]["provider_batch"].clone();
    assert!(batch.is_string(), "{}", entries[0]);
    for e in entries {
        assert_eq!(e["provider_batch"], batch, "{e}");
    }
    let stats = standin.stats().await;
    assert_eq!(stats["calls"], 0, "{stats}");
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
}

/// `llm-judge run --provider-batch` on 60 items with `args` besides: its entries.
async fn provider_batch_run(dir: &Path, args: &[&str]) -> Vec<Value> {
    let input = dir.join("in.jsonl");
    write_items(&input, &binary_items(60));
    let out = dir.join("out.jsonl");
    let mut all = vec![
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--provider-batch",
    ];
    all.extend_from_slice(args);
    let r = run(&all, &[]).await;
    assert!(r.status.success(), "{}", r.stderr);
    read_lines(&out)
}

#[tokio::test]
async fn provider_batch_runs_send_the_items_as_one_provider_batch_in_process() {
    let standin = judging_standin();
    let dir = tempfile::tempdir().unwrap();
    let config = provider_batch_config(dir.path(), &standin);
    let entries = provider_batch_run(dir.path(), &["--config", path_str(&config)]).await;
    assert_one_batch(&entries, 60, &standin).await;
}

#[tokio::test]
async fn provider_batch_runs_go_through_a_servers_jobs() {
    let standin = judging_standin();
    let dir = tempfile::tempdir().unwrap();
    let config = provider_batch_config(dir.path(), &standin);
    let (_server, url) = spawn_server(&[], Some(&config)).await;
    let entries = provider_batch_run(dir.path(), &["--server", &url]).await;
    assert!(
        entries
            .iter()
            .all(|e| e["line"].as_u64() == Some(e["index"].as_u64().unwrap() + 1))
    );
    assert_one_batch(&entries, 60, &standin).await;
    // The run went as a job.
    let jobs: Value = reqwest::get(format!("{url}/v1/jobs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
}
