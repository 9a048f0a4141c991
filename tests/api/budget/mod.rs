//! Spend budgets: `max_cost_usd` / `max_tokens` on a batch stop it before it overspends, the
//! items left are `budget_exhausted` entries and the summary says so; a client token's daily
//! budget is refused with 429 once spent; a budget in dollars with an unpriced model is a 422.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

mod concurrency;

/// Every answer costs 128 tokens (openai_answer's usage), $0.128 at $1,000 per million.
const ITEM_COST: f64 = 0.128;

fn config(base: &str, extra: &str) -> String {
    format!(
        r#"
[judge]
cache_entries = 0
max_tokens = 16
[providers.paid]
kind = "openai"
base_url = "{base}"
api_key = "sk-test"
[providers.free]
kind = "openai"
base_url = "{base}"
api_key = "sk-test"
[routes]
default = ["paid:gpt-test"]
unpriced = ["free:no-price-model"]
[prices]
"gpt-test" = {{ prompt_per_mtok = 1000.0, completion_per_mtok = 1000.0 }}
{extra}
"#
    )
}

fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"question": format!("What is {i} + 1?"), "answer": format!("{}", i + 1), "prediction": format!("{}", i + 1)}))
        .collect()
}

/// The ok entries' indices, checking that they come first and every later entry is a
/// `budget_exhausted` error.
fn sent_prefix(results: &[Value]) -> usize {
    let sent = results.iter().take_while(|r| r["status"] == "ok").count();
    for r in &results[sent..] {
        assert_eq!(r["error"]["code"], "budget_exhausted", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the batch's budget"),
            "{r}"
        );
    }
    sent
}

#[tokio::test]
async fn a_batch_stops_at_its_dollar_budget_and_never_overspends() {
    let (base, calls) = counting_standin("Verdict: 1", Duration::from_millis(5)).await;
    let app = spawn(&config(&base, ""), &[]).await;
    for (concurrency, max) in [(1, 1.0), (8, 3.0)] {
        let before = calls.calls.load(std::sync::atomic::Ordering::SeqCst);
        let (status, body) = app
            .post(
                "/v1/judge/batch",
                &json!({"items": items(60), "max_concurrent": concurrency, "max_cost_usd": max}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let results = body["results"].as_array().unwrap();
        let sent = sent_prefix(results);
        let s = &body["summary"];
        let spent = s["cost_usd"].as_f64().unwrap();
        assert!((spent - sent as f64 * ITEM_COST).abs() < 1e-9, "{s}");
        // Never over the budget (each call cost less than its estimate) ...
        assert!(spent <= max, "spent {spent} of {max}: {s}");
        // ... and not stopped long before it: what is left is less than one item's estimate
        // (about 270 tokens at $1,000 per million) plus what was in flight.
        let in_flight = concurrency as f64 * 0.3;
        assert!(
            max - spent < 0.3 + in_flight,
            "stopped early: {spent} of {max}"
        );
        assert!(sent < 60, "the budget stopped the batch");
        let b = &s["budget"];
        assert_eq!(b["exhausted"], true, "{s}");
        assert_eq!(b["not_sent"], 60 - sent);
        assert_eq!(b["max_cost_usd"], max);
        assert!((b["spent_cost_usd"].as_f64().unwrap() - spent).abs() < 1e-9);
        assert_eq!(s["errors"], 60 - sent);
        // Nothing was sent for the refused items.
        let made = calls.calls.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(made, sent);
    }
    // A budget that covers everything stops nothing, and says so.
    let (_, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"items": items(3), "max_cost_usd": 100.0}),
        )
        .await;
    assert_eq!(body["summary"]["budget"]["exhausted"], false, "{body}");
    assert_eq!(body["summary"]["budget"]["not_sent"], 0);
}

#[tokio::test]
async fn a_token_budget_needs_no_prices_and_streams_its_summary() {
    let (base, _) = counting_standin("Verdict: 1", Duration::ZERO).await;
    let app = spawn(&config(&base, ""), &[]).await;
    let body =
        json!({"items": items(20), "judge": "unpriced", "max_tokens": 1000, "max_concurrent": 1});
    let resp = app
        .client
        .post(app.url("/v1/judge/batch"))
        .header("accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    let b = &summary["budget"];
    assert_eq!(b["exhausted"], true, "{summary}");
    assert!(b["spent_tokens"].as_u64().unwrap() <= 1000, "{b}");
    assert_eq!(b["spent_cost_usd"], Value::Null, "no price: no dollars");
    let exhausted = lines
        .iter()
        .filter(|l| l["error"]["code"] == "budget_exhausted")
        .count();
    assert_eq!(b["not_sent"], exhausted);
    assert!(exhausted > 0 && exhausted < 20);
}

#[tokio::test]
async fn budgets_are_checked_before_anything_is_sent() {
    let server = openai_standin("Verdict: 1").await;
    let app = spawn(&config(&format!("{}/v1", server.uri()), ""), &[]).await;
    // A budget in dollars and a model with no price: refused, naming the model.
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"items": items(2), "judge": "unpriced", "max_cost_usd": 1.0}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unpriced_model");
    assert_eq!(body["error"]["field"], "max_cost_usd");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("free:no-price-model") && msg.contains("[prices]"),
        "{msg}"
    );
    // The same when only an item names that judge.
    let mut mixed = items(2);
    mixed[1]["judge"] = json!("unpriced");
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"items": mixed, "max_cost_usd": 1.0}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    // A batch and a job check their budget the same way.
    for path in ["/v1/judge/batch", "/v1/jobs"] {
        for (bad, field) in [
            (json!({"max_cost_usd": 0}), "max_cost_usd"),
            (json!({"max_cost_usd": -2.5}), "max_cost_usd"),
            (json!({"max_tokens": 0}), "max_tokens"),
        ] {
            let mut req = bad.clone();
            req["items"] = json!(items(1));
            let (status, body) = app.post(path, &req).await;
            assert_eq!(status, 422, "{path} {bad}: {body}");
            assert_eq!(body["error"]["field"], field);
        }
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

/// A POST with a client token: the status, the header `header`, and the JSON answer.
async fn post_as(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Value,
    header: &str,
) -> (u16, Option<String>, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let h = r
        .headers()
        .get(header)
        .map(|v| v.to_str().unwrap().to_string());
    (status, h, r.json::<Value>().await.unwrap())
}

/// A GET with a client token: the answer's text.
async fn get_as(app: &TestApp, token: &str, path: &str) -> String {
    let r = app.client.get(app.url(path)).bearer_auth(token).send();
    r.await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_client_tokens_daily_budget_is_refused_with_429_once_spent() {
    let server = standin_600().await;
    let extra = "[auth]\ntokens = [\"alice-token\", \"bob-token\"]\ndaily_budget_tokens = 1000\n";
    let app = spawn(&config(&format!("{}/v1", server.uri()), extra), &[]).await;
    let post = |token: &'static str, path: &'static str, body: Value| {
        post_as(&app, token, path, body, "retry-after")
    };
    let item = items(1)[0].clone();
    for _ in 0..2 {
        let (status, _, body) = post("alice-token", "/v1/judge/binary", item.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    // 1,200 tokens spent of 1,000: every new piece of work is refused, jobs included.
    for (path, body) in [
        ("/v1/judge/binary", item.clone()),
        ("/v1/judge/batch", json!({"items": items(2)})),
        ("/v1/jobs", json!({"items": items(2)})),
    ] {
        let (status, retry, body) = post("alice-token", path, body).await;
        assert_eq!(status, 429, "{path}: {body}");
        assert_eq!(body["error"]["code"], "daily_budget_exhausted");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("00:00 UTC"), "{msg}");
        assert!(!msg.contains("alice-token"), "{msg}");
        let secs: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=86_400).contains(&secs));
    }
    // Another token has its own day.
    let (status, _, body) = post("bob-token", "/v1/judge/binary", item.clone()).await;
    assert_eq!(status, 200, "{body}");
    // A batch under bob's token stops where bob's day runs out.
    let (status, _, body) = post(
        "bob-token",
        "/v1/judge/batch",
        json!({"items": items(5), "max_concurrent": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(codes[0], "ok", "{body}");
    assert!(
        codes[1..].iter().all(|c| *c == "budget_exhausted"),
        "{codes:?}"
    );
    assert!(
        body["results"][1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily budget")
    );
    assert_eq!(body["summary"]["budget"]["not_sent"], 4);
}

#[tokio::test]
async fn a_daily_budget_in_dollars_refuses_an_unpriced_route() {
    let server = openai_standin("Verdict: 1").await;
    let extra = "[auth]\ntokens = [\"carol-token\"]\ndaily_budget_usd = 5.0\n";
    let app = spawn(&config(&format!("{}/v1", server.uri()), extra), &[]).await;
    let mut item = items(1)[0].clone();
    item["judge"] = json!("unpriced");
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .bearer_auth("carol-token")
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unpriced_model", "{body}");
    assert_eq!(body["error"]["field"], "auth.daily_budget_usd");
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

/// `llm-judge run` with a clean environment; its exit status, results and standard error.
async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-judge"))
            .env_clear()
            .envs(env.iter().copied())
            .arg("run")
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("llm-judge run finishes")
    .expect("llm-judge starts");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_entries(path: &std::path::Path) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by_key(|e| e["index"].as_u64());
    v
}

#[tokio::test]
async fn run_stops_at_its_budget_in_process_and_through_a_server() {
    let (base, calls) = counting_standin("Verdict: 1", Duration::from_millis(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("llm-judge.toml");
    std::fs::write(&cfg, config(&base, "")).unwrap();
    let input = dir.path().join("items.jsonl");
    let text: String = items(40).iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let check = |entries: &[Value], max: f64| {
        assert_eq!(entries.len(), 40);
        let sent = entries.iter().take_while(|e| e["status"] == "ok").count();
        assert!(sent > 0 && sent < 40, "{sent} sent");
        assert!(
            entries[sent..]
                .iter()
                .all(|e| e["error"]["code"] == "budget_exhausted"),
            "every item after the stop is budget_exhausted"
        );
        let spent: f64 = entries[..sent]
            .iter()
            .map(|e| e["cost_usd"].as_f64().unwrap())
            .sum();
        assert!(spent <= max + 1e-9, "spent {spent} of {max}");
        sent
    };

    // In process.
    let out = dir.path().join("local.jsonl");
    let summary = dir.path().join("local-summary.json");
    let (status, stderr) = run_cli(
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--concurrency",
            "4",
            "--max-cost-usd",
            "2.0",
            "--summary-json",
            summary.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(status.success(), "{stderr}");
    let sent = check(&read_entries(&out), 2.0);
    assert!(stderr.contains("\n  budget "), "{stderr}");
    assert!(stderr.contains("exhausted"), "{stderr}");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["budget"]["not_sent"], 40 - sent, "{s}");
    assert_eq!(s["budget"]["exhausted"], true);
    assert!(s["stopped"].as_str().unwrap().contains("budget"), "{s}");
    let made = calls.calls.swap(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(made, sent);

    // An unpriced judge with a dollar budget is refused before anything runs.
    let (status, stderr) = run_cli(
        &[
            "--input",
            input.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--judge",
            "unpriced",
            "--max-cost-usd",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("free:no-price-model"), "{stderr}");

    // Through a server: chunks go one at a time, each with what is left of the budget.
    let server = spawn(&config(&base, ""), &[]).await;
    let out = dir.path().join("remote.jsonl");
    let (status, stderr) = run_cli(
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--server",
            &server.url(""),
            "--concurrency",
            "6",
            "--max-cost-usd",
            "2.0",
        ],
        &[],
    )
    .await;
    assert!(status.success(), "{stderr}");
    let sent = check(&read_entries(&out), 2.0);
    assert!(stderr.contains("exhausted"), "{stderr}");
    assert_eq!(calls.calls.load(std::sync::atomic::Ordering::SeqCst), sent);
}

/// The OpenAI-compatible endpoint and calibration runs spend a client token's day like
/// judgments do: each is held to the budget before it is sent, counted with what it cost, and
/// refused (429, no retry asked of the SDKs) once the day is spent.
#[tokio::test]
async fn chat_completions_and_calibration_runs_spend_the_client_tokens_day() {
    let server = standin_600().await;
    let extra = "[auth]\ntokens = [\"dana-token\", \"erin-token\"]\ndaily_budget_tokens = 1000\n";
    let app = spawn(&config(&format!("{}/v1", server.uri()), extra), &[]).await;
    let post = |token: &'static str, path: &'static str, body: Value| {
        post_as(&app, token, path, body, "x-should-retry")
    };
    let chat = |n: usize| {
        json!({"model": "default", "max_tokens": 16, "temperature": 0.5,
               "messages": [{"role": "user", "content": format!("question {n}")}]})
    };
    for n in 0..2 {
        let (status, _, body) = post("dana-token", "/v1/chat/completions", chat(n)).await;
        assert_eq!(status, 200, "{body}");
    }
    // 1,200 tokens spent of 1,000.
    let (status, should_retry, body) = post("dana-token", "/v1/chat/completions", chat(2)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "daily_budget_exhausted", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(should_retry.as_deref(), Some("false"));
    let calibration = json!({"kind": "binary", "judges": ["default"], "items": [
        {"question": "2+2?", "answer": "4", "prediction": "four", "label": "correct"},
        {"question": "2+3?", "answer": "5", "prediction": "six", "label": "incorrect"},
        {"question": "2+4?", "answer": "6", "prediction": "six", "label": "correct"},
        {"question": "2+5?", "answer": "7", "prediction": "eight", "label": "incorrect"}
    ], "max_concurrent": 1});
    let (status, _, body) = post("dana-token", "/v1/calibrate", calibration.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    // A calibration run under another token stops where that token's day runs out: the first
    // item fits, the second is sent while 600 are spent, the rest are not sent.
    let (status, _, body) = post("erin-token", "/v1/calibrate", calibration).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["budget"]["exhausted"], true, "{body}");
    assert_eq!(body["budget"]["spent_tokens"], 1200, "{body}");
    assert_eq!(body["budget"]["not_sent"], 2, "{body}");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

/// A job sent with a client token spends the token's day: it stops where the day runs out (its
/// remaining items `budget_exhausted`), and what it spent counts against the token's other work.
#[tokio::test]
async fn a_job_spends_its_client_tokens_day() {
    let server = standin_600().await;
    let extra = "[auth]\ntokens = [\"fay-token\", \"gus-token\"]\ndaily_budget_tokens = 1000\n";
    let app = spawn(&config(&format!("{}/v1", server.uri()), extra), &[]).await;
    let body = json!({"items": items(5), "max_concurrent": 1});
    let (status, _, accepted) = post_as(&app, "fay-token", "/v1/jobs", body, "location").await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let text = get_as(&app, "fay-token", &format!("/v1/jobs/{id}")).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["status"] == "completed" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let budget = &job["summary"]["budget"];
    assert_eq!(budget["exhausted"], true, "{job}");
    assert_eq!(budget["spent_tokens"], 1200, "{job}");
    assert_eq!(budget["not_sent"], 3, "{job}");
    let results = ndjson(&get_as(&app, "fay-token", &format!("/v1/jobs/{id}/results")).await);
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "ok",
            "budget_exhausted",
            "budget_exhausted",
            "budget_exhausted"
        ]
    );
    let msg = results[2]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("daily budget"), "{msg}");
    // The day is spent for the token's other work; another token's is not.
    let judge = |token: &'static str| {
        app.client
            .post(app.url("/v1/judge/binary"))
            .bearer_auth(token)
            .json(&items(1)[0])
            .send()
    };
    assert_eq!(judge("fay-token").await.unwrap().status(), 429);
    assert_eq!(judge("gus-token").await.unwrap().status(), 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}
