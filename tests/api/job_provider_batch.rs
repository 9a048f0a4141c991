//! Jobs with `provider_batch`: items whose route's first step has a batch API go as provider
//! batches to the stand-in (`llm-judge-mock`, which speaks both batch APIs), read as online
//! answers, priced at the batch price; failed, expired and late items finish online (through
//! fallback when the step's provider is down); the batches survive a SIGKILL of the service,
//! are cancelled by `DELETE`, and a job budget stops the job.

use std::time::{Duration, Instant};

use crate::support::standin::Standin;
use crate::support::*;
use serde_json::{Value, json};

const MODEL: &str = "judge-model";

/// One batch-capable provider `p` of `kind` at the stand-in, polled every 20 to 100 ms, priced;
/// `extra` is added to the configuration.
fn config(kind: &str, s: &Standin, route: &str, extra: &str) -> String {
    let base = match kind {
        "openai" => format!("{}/v1", s.base),
        _ => s.base.clone(),
    };
    format!(
        r#"
[judge]
rules_precheck = false
[providers.p]
kind = "{kind}"
base_url = "{base}"
api_key = "sk-batch-secret-key"
batch_poll_s = 0.02
batch_poll_max_s = 0.1
[routes]
default = [{route}]
[prices]
"{MODEL}" = {{ prompt_per_mtok = 2.0, completion_per_mtok = 8.0 }}
{extra}
"#
    )
}

/// What one stand-in answer costs online: 300 prompt and 9 completion tokens.
const ONLINE_COST: f64 = (300.0 * 2.0 + 9.0 * 8.0) / 1_000_000.0;

async fn job_state(client: &reqwest::Client, base: &str, id: &str) -> Value {
    get_json(client, &format!("{base}/v1/jobs/{id}"))
        .await
        .unwrap_or(Value::Null)
}

/// Polls the job until `what` holds (at most 60 s).
async fn wait_job(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = job_state(client, base, id).await;
        if what(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every result of a finished job, in index order.
async fn results(client: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let text = get_text(client, &format!("{base}/v1/jobs/{id}/results?limit=100000")).await;
    ndjson(&text)
}

async fn submit(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let r = client
        .post(format!("{base}/v1/jobs"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// Submits `body` as a job to `app` and waits until it completes: its id and its final state.
async fn completed_job(app: &TestApp, body: &Value) -> (String, Value) {
    let base = format!("http://{}", app.addr);
    let id = submit(&app.client, &base, body).await;
    let done = wait_job(&app.client, &base, &id, |v| v["status"] == "completed").await;
    (id, done)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A 1,000-item provider-batch job through one API: every result present and parsed, at the
/// batch price, from a provider batch, and the stand-in saw batch calls only.
async fn thousand_items_through(kind: &str, api: &str) {
    let s = Standin::judging(&["--batch-delay-ms", "300"]);
    let app = spawn(&config(kind, &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(1000), "provider_batch": true, "max_concurrent": 8}),
    )
    .await;
    let done = wait_job(&app.client, &base, &id, |v| v["status"] == "completed").await;
    let all = results(&app.client, &base, &id).await;
    assert_eq!(all.len(), 1000);
    let mut batch_ids = std::collections::BTreeSet::new();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["index"], i, "{r}");
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["verdict"], "correct", "{r}");
        assert_eq!(r["parser"], "text", "{r}");
        assert_eq!(r["usage"]["prompt_tokens"], 300, "{r}");
        let b = r["provider_batch"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"));
        batch_ids.insert(b.to_string());
        assert!(
            close(r["cost_usd"].as_f64().unwrap(), ONLINE_COST / 2.0),
            "{r}"
        );
    }
    let summary = &done["summary"];
    assert!(
        close(
            summary["cost_usd"].as_f64().unwrap(),
            1000.0 * ONLINE_COST / 2.0
        ),
        "{summary}"
    );
    assert_eq!(
        summary["delivery"],
        json!({"provider_batch": 1000, "online": 0}),
        "{summary}"
    );
    assert_eq!(summary["correct"], 1000);
    // The job shows its batch, ended, with every request done.
    let shown = done["progress"]["provider_batches"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(shown.len(), batch_ids.len(), "{done}");
    for b in &shown {
        assert_eq!(b["phase"], "ended", "{b}");
        assert_eq!(b["provider"], "p");
        assert_eq!(b["done"], b["total"]);
        assert!(batch_ids.contains(b["id"].as_str().unwrap()));
    }
    let stats = s.stats().await;
    assert_eq!(stats["calls"], 0, "no online call: {stats}");
    assert_eq!(stats["batches"][api]["batches_created"], 1, "{stats}");
    assert!(
        stats["batches"][api]["polls"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}

#[tokio::test]
async fn a_thousand_item_job_goes_through_openais_batch_api_at_the_batch_price() {
    thousand_items_through("openai", "openai").await;
}

#[tokio::test]
async fn a_thousand_item_job_goes_through_anthropics_message_batches_at_the_batch_price() {
    thousand_items_through("anthropic", "anthropic").await;
}

#[tokio::test]
async fn failed_and_expired_batch_requests_finish_online_through_fallback() {
    // The batch provider's online API is down (every chat call 503); a second provider answers.
    let a = Standin::judging(&[
        "--batch-delay-ms",
        "200",
        "--batch-fail-pct",
        "5",
        "--batch-expire-pct",
        "3",
        "--fail-503",
        "100",
    ]);
    let b = Standin::judging(&[]);
    let extra = format!(
        "[providers.q]\nkind = \"together\"\nbase_url = \"{}/v1\"\napi_key = \"sk-q\"\n",
        b.base
    );
    let toml = config(
        "anthropic",
        &a,
        &format!("\"p:{MODEL}\", \"q:{MODEL}\""),
        &extra,
    )
    .replace("batch_poll_s", "max_attempts = 1\nbatch_poll_s");
    let app = spawn(&toml, &[]).await;
    let base = format!("http://{}", app.addr);
    let (id, done) =
        completed_job(&app, &json!({"items": items(200), "provider_batch": true})).await;
    let all = results(&app.client, &base, &id).await;
    assert_eq!(all.len(), 200);
    let (mut by_batch, mut online) = (0, 0);
    for r in &all {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["verdict"], "correct", "{r}");
        if r["provider_batch"].is_string() {
            by_batch += 1;
            assert_eq!(r["provider"], "p");
        } else {
            online += 1;
            // The batch's failure, p's online failure, then q's answer at the online price.
            assert_eq!(r["provider"], "q", "{r}");
            assert_eq!(r["fallback"], true, "{r}");
            let attempts = r["attempts"].as_array().unwrap();
            assert!(
                attempts[0]["error"]
                    .as_str()
                    .unwrap()
                    .contains("provider batch"),
                "{r}"
            );
            // p online: refused (503), or skipped once its circuit opened.
            assert_eq!(attempts[1]["provider"], "p", "{r}");
            assert_ne!(attempts[1]["outcome"], "ok", "{r}");
            assert!(close(r["cost_usd"].as_f64().unwrap(), ONLINE_COST), "{r}");
        }
    }
    // 5% errored and 3% expired, exactly (rounded), as the stand-in draws them.
    assert_eq!(online, 16, "{}", done["summary"]);
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": by_batch, "online": online})
    );
    let expected = by_batch as f64 * ONLINE_COST / 2.0 + online as f64 * ONLINE_COST;
    assert!(close(
        done["summary"]["cost_usd"].as_f64().unwrap(),
        expected
    ));
    let bs = b.stats().await;
    assert_eq!(bs["calls"], online, "{bs}");
    assert_eq!(
        a.stats().await["batches"]["anthropic"]["batches_created"],
        1
    );
}

#[tokio::test]
async fn the_deadline_cancels_the_batch_and_sends_the_rest_online() {
    // A batch that would take 20 s; the job gives it 1 s.
    let s = Standin::judging(&["--batch-delay-ms", "20000"]);
    let app = spawn(&config("openai", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    let started = Instant::now();
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(50), "provider_batch": true, "provider_batch_deadline_s": 1}),
    )
    .await;
    let done = wait_job(&app.client, &base, &id, |v| v["status"] == "completed").await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the job did not wait for the batch"
    );
    let all = results(&app.client, &base, &id).await;
    assert_eq!(all.len(), 50);
    let online = all
        .iter()
        .filter(|r| !r["provider_batch"].is_string())
        .count();
    assert!(all.iter().all(|r| r["status"] == "ok"), "{all:?}");
    // Requests the batch ran before the cancel keep their batch answer; the rest went online.
    assert!(online >= 40, "{online} online");
    let stats = s.stats().await;
    assert_eq!(stats["calls"], online, "{stats}");
    assert_eq!(stats["batches"]["openai"]["cancels"], 1, "{stats}");
    assert_eq!(done["summary"]["delivery"]["online"], online);
}

#[tokio::test]
async fn deleting_a_job_cancels_its_provider_batch() {
    let s = Standin::judging(&["--batch-delay-ms", "20000"]);
    let app = spawn(&config("anthropic", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(30), "provider_batch": true}),
    )
    .await;
    let running = wait_job(&app.client, &base, &id, |v| {
        v["progress"]["provider_batches"][0]["phase"] == "in_progress"
    })
    .await;
    let batch = running["progress"]["provider_batches"][0].clone();
    assert_eq!(batch["total"], 30, "{batch}");
    assert_eq!(batch["provider"], "p");
    // The job's progress events show the batch too.
    let mut events = app
        .client
        .get(format!("{base}/v1/jobs/{id}/events"))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let shown = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = events.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: progress") && seen.contains(batch["id"].as_str().unwrap()) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(shown, Ok(true), "{seen}");
    drop(events);
    let r = app
        .client
        .delete(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    wait_job(&app.client, &base, &id, |v| v["status"] == "cancelled").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = s.stats().await;
        if stats["batches"]["anthropic"]["cancels"] == 1 {
            assert_eq!(stats["calls"], 0, "nothing went online: {stats}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch was not cancelled: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_job_budget_stops_the_job_and_never_overspends() {
    let s = Standin::judging(&["--batch-delay-ms", "100"]);
    let app = spawn(&config("openai", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    // Each item's estimate is its prompt and its whole max_tokens (512): about 20 fit.
    let limit = 12_000u64;
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(100), "provider_batch": true, "max_tokens": limit}),
    )
    .await;
    let done = wait_job(&app.client, &base, &id, |v| v["status"] == "completed").await;
    let all = results(&app.client, &base, &id).await;
    let ok = all.iter().filter(|r| r["status"] == "ok").count();
    let refused: Vec<usize> = all
        .iter()
        .filter(|r| r["error"]["code"] == "budget_exhausted")
        .map(|r| r["index"].as_u64().unwrap() as usize)
        .collect();
    assert!(
        ok > 0 && !refused.is_empty(),
        "ok {ok}, refused {}",
        refused.len()
    );
    assert_eq!(ok + refused.len(), 100);
    // Items are admitted in input order: the refused ones are the last.
    assert_eq!(refused, (ok..100).collect::<Vec<_>>());
    let budget = &done["summary"]["budget"];
    assert_eq!(budget["exhausted"], true, "{budget}");
    assert_eq!(budget["not_sent"], refused.len());
    assert_eq!(budget["spent_tokens"], ok as u64 * 309);
    assert!(
        budget["spent_tokens"].as_u64().unwrap() <= limit,
        "{budget}"
    );
    let stats = s.stats().await;
    assert_eq!(stats["calls"], 0);
}

/// The service as a process on `port` with the configuration `toml` and jobs in `data`.
fn serve(port: u16, data: &std::path::Path, toml: &str) -> std::process::Child {
    let file = data.join("llm-judge.toml");
    std::fs::write(&file, toml).unwrap();
    let mut cmd = serve_command(port, data);
    cmd.arg("--config").arg(&file);
    cmd.spawn().unwrap()
}

/// Kills the service (SIGKILL), starts it again on the same data and configuration, and waits
/// until job `id` completes: its final state and its results.
async fn kill_and_finish(
    mut server: std::process::Child,
    port: u16,
    data: &std::path::Path,
    toml: &str,
    id: &str,
) -> (Value, Vec<Value>) {
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = serve(port, data, toml);
    wait_up(&client, &base).await;
    let done = wait_job(&client, &base, id, |v| v["status"] == "completed").await;
    let all = results(&client, &base, id).await;
    server.kill().unwrap();
    server.wait().unwrap();
    (done, all)
}

#[tokio::test]
async fn a_killed_service_resumes_polling_the_same_batch_and_keeps_the_jobs_spend() {
    let a = Standin::judging(&["--batch-delay-ms", "3000"]);
    let b = Standin::judging(&[]);
    // Items naming `online` go to a provider without a batch API.
    let extra = format!(
        "[providers.q]\nkind = \"together\"\nbase_url = \"{}/v1\"\napi_key = \"sk-q\"\n[routes.online]\nsteps = [\"q:{MODEL}\"]\n",
        b.base
    );
    let toml = config("anthropic", &a, &format!("\"p:{MODEL}\""), &extra);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = serve(port, data.path(), &toml);
    wait_up(&client, &base).await;
    let mut list = items(240);
    for item in list.iter_mut().take(40) {
        item["judge"] = json!("online");
    }
    let id = submit(
        &client,
        &base,
        &json!({"items": list, "provider_batch": true, "max_tokens": 10_000_000}),
    )
    .await;
    // Killed once the online items are stored and the batch runs.
    wait_job(&client, &base, &id, |v| {
        v["progress"]["provider_batches"][0]["phase"] == "in_progress"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while results(&client, &base, &id).await.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "the online items were not stored"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (done, all) = kill_and_finish(server, port, data.path(), &toml, &id).await;
    let stats = a.stats().await;
    assert_eq!(
        stats["batches"]["anthropic"]["batches_created"], 1,
        "{stats}"
    );
    assert_eq!(stats["calls"], 0, "{stats}");
    assert_eq!(b.stats().await["calls"], 40);
    let summary = &done["summary"];
    assert_eq!(
        summary["delivery"],
        json!({"provider_batch": 200, "online": 40}),
        "{summary}"
    );
    // The budget counts what was spent before the kill too.
    assert_eq!(summary["budget"]["spent_tokens"], 240 * 309, "{summary}");
    assert_eq!(summary["budget"]["exhausted"], false);
    let batch = done["progress"]["provider_batches"][0]["id"].clone();
    assert_eq!(all.len(), 240);
    for r in &all[40..] {
        assert_eq!(r["provider_batch"], batch, "{r}");
        assert_eq!(r["verdict"], "correct");
    }
}

#[tokio::test]
async fn provider_batch_fields_are_checked_in_a_body_and_an_upload() {
    let s = Standin::judging(&[]);
    let app = spawn(&config("openai", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    for (body, path, field) in [
        (
            json!({"provider_batch_deadline_s": 60}),
            "/v1/jobs",
            "provider_batch_deadline_s",
        ),
        (
            json!({"provider_batch": true, "provider_batch_deadline_s": 0}),
            "/v1/jobs",
            "provider_batch_deadline_s",
        ),
        (
            json!({"provider_batch": true, "provider_batch_deadline_s": 86_401}),
            "/v1/jobs",
            "provider_batch_deadline_s",
        ),
        (
            json!({"provider_batch": true}),
            "/v1/judge/batch",
            "provider_batch",
        ),
    ] {
        let mut req = body.clone();
        req["items"] = json!(items(1));
        let (status, answer) = app.post(path, &req).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // An NDJSON upload takes the same fields in its query string.
    let upload = |query: &str| {
        app.client
            .post(app.url(&format!("/v1/jobs?{query}")))
            .header("content-type", "application/x-ndjson")
            .body(
                items(20)
                    .iter()
                    .map(|i| format!("{i}\n"))
                    .collect::<String>(),
            )
            .send()
    };
    let refused = upload("provider_batch=true&provider_batch_deadline_s=0")
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let accepted: Value = upload("provider_batch=true")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["id"].as_str().unwrap();
    let base = format!("http://{}", app.addr);
    let done = wait_job(&app.client, &base, id, |v| v["status"] == "completed").await;
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": 20, "online": 0})
    );
    let stats = s.stats().await;
    assert_eq!(stats["calls"], 0);
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1);
}

/// The answer to a batch's creation is lost (the stand-in makes the batch and answers after
/// the service's timeout): the service finds the batch by its input file and uses it; it does
/// not send the items online as well, which would bill each of them twice.
#[tokio::test]
async fn a_batch_whose_creation_answer_is_lost_is_found_and_used() {
    let s = Standin::judging(&["--batch-delay-ms", "300", "--batch-create-stall-ms", "3000"]);
    let toml = config("openai", &s, &format!("\"p:{MODEL}\""), "")
        .replace("batch_poll_s = 0.02", "batch_poll_s = 0.02\ntimeout_s = 1");
    let app = spawn(&toml, &[]).await;
    let base = format!("http://{}", app.addr);
    let (id, done) =
        completed_job(&app, &json!({"items": items(50), "provider_batch": true})).await;
    let stats = s.stats().await;
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
    assert!(
        stats["batches"]["openai"]["lists"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(stats["calls"], 0, "nothing sent online: {stats}");
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": 50, "online": 0}),
        "{done}"
    );
    for r in results(&app.client, &base, &id).await {
        assert_eq!(r["verdict"], "correct", "{r}");
        assert!(r["provider_batch"].is_string(), "{r}");
    }
}

/// The service is killed after the provider made a batch and before its id was stored (the
/// creation's answer is still on its way): the restarted service finds the batch by the job's
/// label and polls it; the stand-in saw one batch made and no online call.
#[tokio::test]
async fn a_service_killed_while_a_batch_is_made_finds_that_batch_after_the_restart() {
    let s = Standin::judging(&[
        "--batch-delay-ms",
        "500",
        "--batch-create-stall-ms",
        "20000",
    ]);
    let toml = config("openai", &s, &format!("\"p:{MODEL}\""), "");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = serve(port, data.path(), &toml);
    wait_up(&client, &base).await;
    let id = submit(
        &client,
        &base,
        &json!({"items": items(60), "provider_batch": true}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats().await["batches"]["openai"]["batches_created"] != 1 {
        assert!(Instant::now() < deadline, "no batch was made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Made at the provider, its answer not yet back: nothing of it is stored.
    let state = job_state(&client, &base, &id).await;
    assert!(state["progress"]["provider_batches"].is_null(), "{state}");
    let (done, all) = kill_and_finish(server, port, data.path(), &toml, &id).await;
    let stats = s.stats().await;
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
    assert_eq!(stats["calls"], 0, "nothing sent online: {stats}");
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": 60, "online": 0}),
        "{done}"
    );
    let shown = &done["progress"]["provider_batches"];
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(all.len(), 60);
    for r in &all {
        assert_eq!(r["provider_batch"], shown[0]["id"], "{r}");
        assert_eq!(r["verdict"], "correct", "{r}");
    }
}
