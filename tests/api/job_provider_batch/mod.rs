//! Jobs with `provider_batch`: items whose route's first step has a batch API go as provider
//! batches to the stand-in (`llm-judge-mock`, which speaks both batch APIs), read as online
//! answers, priced at the batch price; failed, expired and late items finish online (through
//! fallback when the step's provider is down); the batches survive a SIGKILL of the service,
//! are cancelled by `DELETE`, and a job budget stops the job.

mod endings;
mod restarts;

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
    let text = get_text(client, &format!("{base}/v1/jobs/{id}/results")).await;
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
