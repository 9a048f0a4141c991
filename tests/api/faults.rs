//! Faults at the provider: retries and their headers, timeouts, malformed answers, circuit
//! breaking, fallback across providers with their own model names, and a whole route failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The verdict cache is off so that every request reaches the provider.
const ITEM: &str = r#"{"question":"q","answer":"a","prediction":"p","options":{"cache":false}}"#;

fn item() -> Value {
    serde_json::from_str(ITEM).unwrap()
}

fn error(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error":{"message":format!("status {status}"),"type":"server_error","param":null,"code":null}}))
}

/// Answers the first `n` calls with `first`, then with a verdict.
async fn failing_then_ok(first: ResponseTemplate, n: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(n)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("Verdict: 1")))
        .mount(&server)
        .await;
    server
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_429_with_retry_after_one_second_waits_about_a_second_then_succeeds() {
    let server = failing_then_ok(error(429).insert_header("retry-after", "1"), 1).await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let started = Instant::now();
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct");
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 429);
    assert_eq!(attempts[1]["outcome"], "ok");
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let server = failing_then_ok(error(503).insert_header("retry-after-ms", "300"), 1).await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let started = Instant::now();
    let (status, _) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn x_should_retry_false_stops_retries() {
    let server = failing_then_ok(error(503).insert_header("x-should-retry", "false"), 1).await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(calls(&server).await, 1);
    assert_eq!(body["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn overloaded_529_and_503_are_retried_but_400_is_not() {
    for code in [529, 503, 500, 408, 409] {
        let server = failing_then_ok(error(code), 2).await;
        let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
        let (status, body) = app.post("/v1/judge/binary", &item()).await;
        assert_eq!(status, 200, "{code}: {body}");
        assert_eq!(calls(&server).await, 3, "{code}");
    }
    for code in [400, 422] {
        let server = failing_then_ok(error(code), 1).await;
        let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
        let (status, body) = app.post("/v1/judge/binary", &item()).await;
        assert_eq!(status, 502, "{code}: {body}");
        assert_eq!(body["error"]["code"], "provider_rejected_request");
        assert_eq!(calls(&server).await, 1, "{code} is not retried");
    }
}

#[tokio::test]
async fn a_timeout_is_retried_and_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("1"))
                .set_delay(Duration::from_secs(5)),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("1")))
        .mount(&server)
        .await;
    let toml = openai_config("openai", &server, "gpt-4o")
        .replace("api_key = ", "timeout_s = 0.3\napi_key = ");
    let app = spawn(&toml, &[]).await;
    let started = Instant::now();
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(body["attempts"][0]["error"], "timed out");
    assert_eq!(body["attempts"][1]["outcome"], "ok");
}

#[tokio::test]
async fn an_unreadable_answer_is_not_bought_again_and_an_empty_one_is_unscored() {
    // A whole 200 that cannot be read was billed: the same provider is not asked again, the
    // route moves on (here there is no next step: the item fails, after one call).
    let server = failing_then_ok(
        ResponseTemplate::new(200).set_body_string("{\"choices\": [ trunc"),
        1,
    )
    .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(calls(&server).await, 1, "bought once");
    assert!(
        body["attempts"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreadable")),
        "{body}"
    );

    let server = openai_standin("").await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200);
    assert_eq!(body["verdict"], "unscored");
    assert_eq!(body["unscored_reason"], "empty_response");
    assert_eq!(calls(&server).await, 1, "an empty answer is not retried");
}

/// A primary that answers every call with `answer`, a backup that judges; the judgment, the
/// primary's calls and the fallback metric's reasons.
async fn falls_back_from(answer: ResponseTemplate) -> (u16, Value, usize, String) {
    let primary = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&primary)
        .await;
    let backup = openai_standin("Verdict: 1").await;
    let app = spawn(&two_step_config(&primary.uri(), &backup, ""), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    let metrics = get_text(&app.client, &app.url("/metrics")).await;
    let reasons = metrics
        .lines()
        .filter(|l| l.starts_with("llm_judge_fallbacks_total"))
        .collect::<Vec<_>>()
        .join("\n");
    (status, body, calls(&primary).await, reasons)
}

#[tokio::test]
async fn a_step_that_cannot_answer_this_request_here_hands_it_to_the_next() {
    // Told not to retry here, redirected elsewhere, or unreadable: another provider may answer.
    for (answer, reason) in [
        (
            error(500).insert_header("x-should-retry", "false"),
            "server_error",
        ),
        (
            error(503).insert_header("x-should-retry", "false"),
            "server_error",
        ),
        (
            ResponseTemplate::new(302).insert_header("location", "http://127.0.0.1:9/v1"),
            "redirect",
        ),
        (
            ResponseTemplate::new(200).set_body_string("not json at all"),
            "decode_error",
        ),
    ] {
        let (status, body, primary_calls, reasons) = falls_back_from(answer).await;
        assert_eq!(status, 200, "{reason}: {body}");
        assert_eq!(body["provider"], "backup", "{reason}: {body}");
        assert_eq!(primary_calls, 1, "{reason}: not asked again");
        assert!(
            reasons.contains(&format!("reason=\"{reason}\"")),
            "{reasons}"
        );
    }
}

#[tokio::test]
async fn only_a_request_every_provider_would_refuse_ends_the_route() {
    for status in [400, 413, 422] {
        let (answer, body, primary_calls, _) = falls_back_from(error(status)).await;
        assert_eq!(answer, 502, "{status}: {body}");
        assert_eq!(body["error"]["code"], "provider_rejected_request", "{body}");
        assert_eq!(primary_calls, 1);
    }
}

fn two_step_config(primary: &str, secondary: &MockServer, extra: &str) -> String {
    format!(
        r#"
[providers.primary]
kind = "openai"
base_url = "{primary}/v1"
api_key = "sk-primary"
breaker_failures = 1
breaker_cooldown_s = 60
{extra}
[providers.backup]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-backup"
[retry]
base_delay_ms = 5
max_delay_ms = 20
[routes]
default = ["primary:model-primary", "backup:model-backup"]
"#,
        secondary.uri()
    )
}

#[tokio::test]
async fn fallback_steps_use_their_own_model_names() {
    let primary = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(401))
        .mount(&primary)
        .await;
    let backup = openai_standin("Verdict: 0").await;
    let app = spawn(&two_step_config(&primary.uri(), &backup, ""), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fallback"], true);
    assert_eq!(body["provider"], "backup");
    assert_eq!(body["model"], "model-backup");
    assert_eq!(calls(&primary).await, 1, "401 is not retried");
    let sent_primary: Value = primary.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    let sent_backup: Value = backup.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent_primary["model"], "model-primary");
    assert_eq!(sent_backup["model"], "model-backup");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(
        (
            attempts[0]["provider"].as_str(),
            attempts[0]["status"].as_u64()
        ),
        (Some("primary"), Some(401))
    );
    assert_eq!(attempts[1]["provider"], "backup");
}

#[tokio::test]
async fn a_refused_primary_falls_back_and_is_skipped_once_its_circuit_is_open() {
    // A port nothing listens on: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let backup = openai_standin("Verdict: 1").await;
    let app = spawn(
        &two_step_config(&dead_url, &backup, "max_attempts = 1"),
        &[],
    )
    .await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"][0]["outcome"], "error");
    assert!(
        body["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{body}"
    );
    // the circuit is open now: the primary is skipped without a connection attempt
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = app.post("/v1/judge/binary", &item()).await;
        assert_eq!(status, 200);
        assert_eq!(body["attempts"][0]["outcome"], "skipped", "{body}");
        assert_eq!(body["attempts"][0]["error"], "circuit open");
        assert_eq!(body["fallback"], true);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    let (_, providers) = app.get("/v1/providers").await;
    let providers: Value = serde_json::from_str(&providers).unwrap();
    let primary = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "primary")
        .unwrap();
    assert_eq!(primary["circuit"], "open");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("llm_judge_circuit_state{provider=\"primary\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("llm_judge_fallbacks_total{route=\"default\",from=\"primary\",to=\"backup\",reason=\"circuit_open\"}"));
}

#[tokio::test]
async fn the_whole_route_failing_gives_502_with_every_attempt() {
    let a = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(500))
        .mount(&a)
        .await;
    let b = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(503))
        .mount(&b)
        .await;
    let toml = two_step_config(&a.uri(), &b, "")
        .replace("breaker_failures = 1", "breaker_failures = 100")
        .replace("[providers.backup]", "[providers.backup]\nmax_attempts = 2");
    let app = spawn(&toml, &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "all_providers_failed");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3 + 2, "{body}");
    assert!(
        attempts[..3]
            .iter()
            .all(|a| a["provider"] == "primary" && a["status"] == 500)
    );
    assert!(
        attempts[3..]
            .iter()
            .all(|a| a["provider"] == "backup" && a["status"] == 503)
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("503"));
}

/// Fails 30% of calls (a third of them 429, the rest 500), chosen by a hash of the call number,
/// and counts calls.
#[derive(Clone, Default)]
struct Flaky {
    n: Arc<AtomicUsize>,
}
impl Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.n.fetch_add(1, Ordering::SeqCst) as u64;
        let roll = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % 100;
        match roll {
            0..10 => error(429),
            10..30 => error(500),
            _ => ResponseTemplate::new(200).set_body_json(openai_answer("Verdict: 1")),
        }
    }
}

#[tokio::test]
async fn a_thousand_items_against_a_provider_failing_30_percent_all_get_scored() {
    let server = MockServer::start().await;
    let flaky = Flaky::default();
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(flaky.clone())
        .mount(&server)
        .await;
    // At a 30% failure rate, ten attempts leave each item a 0.3^10 (6e-6) chance of failing.
    let toml = openai_config("openai", &server, "gpt-4o").replace(
        "api_key = ",
        "max_attempts = 10\nbreaker_failures = 50\napi_key = ",
    );
    let app = spawn(&toml, &[]).await;
    let items: Vec<Value> = (0..1000).map(|i| json!({"question":"q","answer":"a","prediction":format!("p{i}"),"options":{"cache":false}})).collect();
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"kind":"binary","max_concurrent":100,"items":items}),
        )
        .await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    let not_ok: Vec<&Value> = results.iter().filter(|r| r["status"] != "ok").collect();
    assert!(
        not_ok.is_empty(),
        "{} items lost, e.g. {}",
        not_ok.len(),
        not_ok[0]
    );
    assert_eq!(body["summary"]["correct"], 1000);
    let total_calls = flaky.n.load(Ordering::SeqCst);
    assert!(
        total_calls >= 1400,
        "30% of calls failed, so there were retries: {total_calls}"
    );
}
