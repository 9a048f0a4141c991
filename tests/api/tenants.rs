//! Client tokens are tenants: a job, its results, events and idempotency key, and a calibration
//! run belong to the token that made them; another token gets 404 and lists only its own; an
//! admin token sees everything.

use crate::support::*;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[auth]
tokens = ["token-alice", "token-bob"]
admin_tokens = ["token-admin"]
"#;

const ALICE: &str = "token-alice";
const BOB: &str = "token-bob";
const ADMIN: &str = "token-admin";

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    call(app, reqwest::Method::GET, path, token, None).await
}

/// A job of `n` items with an idempotency key: whether it was created (or an earlier one came
/// back), and its id.
async fn submit(app: &TestApp, token: &str, key: &str, n: usize) -> (bool, String) {
    let body = json!({"items": items(n), "idempotency_key": key});
    let (status, v) = call(app, reqwest::Method::POST, "/v1/jobs", token, Some(&body)).await;
    assert_eq!(status, 202, "{v}");
    (v["created"] == true, v["id"].as_str().unwrap().to_string())
}

fn ids(list: &Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_finished(app: &TestApp, id: &str, token: &str) {
    for _ in 0..200 {
        let (_, v) = get(app, &format!("/v1/jobs/{id}"), token).await;
        if v["status"] == "completed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test]
async fn another_tokens_job_is_not_there() {
    let app = spawn(CONFIG, &[]).await;
    let (_, job) = submit(&app, ALICE, "k", 3).await;
    wait_finished(&app, &job, ALICE).await;
    let missing = "job_0000000000000000";
    let (_, nothing) = get(&app, &format!("/v1/jobs/{missing}"), BOB).await;
    for path in ["", "/results", "/events"] {
        let (status, body) = get(&app, &format!("/v1/jobs/{job}{path}"), BOB).await;
        assert_eq!(status, 404, "bob reads {path}: {body}");
        // The same answer as for a job that does not exist: nothing tells it is there.
        assert_eq!(body["error"]["code"], nothing["error"]["code"]);
        let (status, _) = get(&app, &format!("/v1/jobs/{job}{path}"), ALICE).await;
        assert_eq!(status, 200, "alice reads {path}");
    }
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/jobs/{job}"),
        BOB,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, v) = get(&app, &format!("/v1/jobs/{job}"), ALICE).await;
    assert_eq!(v["status"], "completed", "bob's cancel did nothing");
}

#[tokio::test]
async fn each_token_lists_its_own_and_an_admin_lists_all() {
    let app = spawn(CONFIG, &[]).await;
    let (_, a) = submit(&app, ALICE, "a1", 1).await;
    let (_, b) = submit(&app, BOB, "b1", 1).await;
    assert_eq!(ids(&get(&app, "/v1/jobs", ALICE).await.1), vec![a.clone()]);
    assert_eq!(ids(&get(&app, "/v1/jobs", BOB).await.1), vec![b.clone()]);
    let all = ids(&get(&app, "/v1/jobs", ADMIN).await.1);
    assert!(all.contains(&a) && all.contains(&b), "{all:?}");
    // An admin reads and cancels any tenant's job.
    assert_eq!(get(&app, &format!("/v1/jobs/{b}"), ADMIN).await.0, 200);
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/jobs/{a}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    // No token, or a wrong one: 401.
    assert_eq!(get(&app, "/v1/jobs", "nobody").await.0, 401);
}

#[tokio::test]
async fn an_idempotency_key_is_the_tokens_own() {
    let app = spawn(CONFIG, &[]).await;
    let (created, alices) = submit(&app, ALICE, "same-key", 2).await;
    assert!(created);
    // The same key (and the same request) from another token is that token's new job, neither
    // alice's job nor a conflict naming it.
    let (created, bobs) = submit(&app, BOB, "same-key", 2).await;
    assert!(created);
    assert_ne!(alices, bobs);
    // Alice's retry still finds her own job.
    assert_eq!(
        submit(&app, ALICE, "same-key", 2).await,
        (false, alices.clone())
    );
    // An NDJSON upload with that key is bob's own too.
    let r = app
        .client
        .post(app.url("/v1/jobs?idempotency_key=same-key"))
        .bearer_auth(BOB)
        .header("content-type", "application/x-ndjson")
        .body(format!("{}\n", items(1)[0]))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["id"], alices.as_str(), "{status} {v}");
}

#[tokio::test]
async fn calibration_runs_belong_to_their_token() {
    let app = spawn(CONFIG, &[]).await;
    let body = json!({"kind": "binary", "judges": ["rules"], "name": "alice's", "items": [
        {"question": "2+2?", "answer": "4", "prediction": "4", "label": "correct"},
        {"question": "2+3?", "answer": "5", "prediction": "6", "label": "incorrect"}
    ]});
    let (status, run) = call(
        &app,
        reqwest::Method::POST,
        "/v1/calibrate",
        ALICE,
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let listed = |v: &Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, alice) = get(&app, "/v1/calibrate/runs", ALICE).await;
    assert_eq!(listed(&alice), vec![run_id.clone()]);
    // The owner is kept with the run, never listed.
    assert!(alice["runs"][0].get("owner").is_none(), "{alice}");
    let (_, bob) = get(&app, "/v1/calibrate/runs", BOB).await;
    assert!(listed(&bob).is_empty(), "{bob}");
    let (_, admin) = get(&app, "/v1/calibrate/runs", ADMIN).await;
    assert_eq!(listed(&admin), [run_id]);
}
