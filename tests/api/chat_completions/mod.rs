//! The OpenAI-compatible endpoints against stand-in providers: answers in OpenAI's shape with
//! llm-judge's account, fallback, streams translated from OpenAI's and Anthropic's events, a
//! stream failing before or after its first piece, the verdict cache at temperature 0, errors in
//! OpenAI's shape, and the client's token kept from providers.

mod errors;
mod streams;

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn config(providers: &[(&str, &str, &MockServer)], routes: &str) -> String {
    let mut toml = String::from("[retry]\nbase_delay_ms = 5\nmax_delay_ms = 20\n");
    for (name, kind, server) in providers {
        let base = if *kind == "anthropic" {
            server.uri()
        } else {
            format!("{}/v1", server.uri())
        };
        toml.push_str(&format!(
            "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{base}\"\napi_key = \"sk-test-{name}-0123456789\"\nmax_attempts = 2\n"
        ));
    }
    toml.push_str("[routes]\n");
    toml.push_str(routes);
    toml.push_str(
        "\n[prices]\n\"gpt-x\" = { prompt_per_mtok = 500000.0, completion_per_mtok = 1000000.0 }\n",
    );
    toml
}

async fn down() -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error":{"message":"overloaded","type":"server_error","param":null,"code":null}})))
        .mount(&s)
        .await;
    s
}

async fn post_stream(app: &TestApp, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn a_completion_falls_back_past_a_step_that_is_down() {
    let first = down().await;
    let second = openai_standin("Verdict: 1").await;
    let toml = config(
        &[("a", "openai", &first), ("b", "openai", &second)],
        "fb = [\"a:gpt-a\", \"b:gpt-x\"]",
    );
    let app = spawn(&toml, &[]).await;
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&chat("fb", "Is 2+2=4?"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llm-judge-provider"], "b");
    assert_eq!(r.headers()["x-llm-judge-fallback"], "true");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "gpt-x");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": "Verdict: 1", "refusal": null})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 120);
    assert_eq!(v["usage"]["total_tokens"], 128);
    let meta = &v["x_llm_judge"];
    assert_eq!(
        (meta["provider"].as_str(), meta["fallback"].as_bool()),
        (Some("b"), Some(true))
    );
    assert_eq!(meta["route"], "fb");
    assert_eq!(meta["cached"], false);
    // 120 prompt tokens at $0.50 each and 8 completion tokens at $1 each.
    assert!(
        (meta["cost_usd"].as_f64().unwrap() - 68.0).abs() < 1e-9,
        "{meta}"
    );
    let attempts = meta["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "two attempts at a, one at b: {meta}");
    assert_eq!(
        (
            attempts[0]["provider"].as_str(),
            attempts[0]["status"].as_u64()
        ),
        (Some("a"), Some(503))
    );
    assert_eq!(attempts[2]["outcome"], "ok");
    // The fallback and the tokens are in the metrics like a judge call's.
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("llm_judge_fallbacks_total{")
                && l.contains("route=\"fb\"")
                && l.contains("from=\"a\"")),
        "no fallback counted"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("llm_judge_tokens_total{")
                && l.contains("provider=\"b\"")
                && l.contains("model=\"gpt-x\""))
    );
}

#[tokio::test]
async fn parameters_and_images_reach_the_provider_and_the_rules_join_system_messages() {
    let server = openai_standin("{\"ok\": true}").await;
    let toml = config(&[("a", "openai", &server)], "default = [\"a:gpt-a\"]");
    let app = spawn(&toml, &[]).await;
    let png = "data:image/png;base64,iVBORw0KGgo=";
    let (status, v) = app
        .post(
            "/v1/chat/completions",
            &json!({
                "model": "default",
                "messages": [
                    {"role": "system", "content": "Grade strictly."},
                    {"role": "developer", "content": "Answer in JSON."},
                    {"role": "user", "content": [{"type": "text", "text": "Is this a cat?"}, {"type": "image_url", "image_url": {"url": png, "detail": "high"}}]},
                ],
                "temperature": 0.3, "max_completion_tokens": 33, "stop": ["END"], "seed": 11,
                "response_format": {"type": "json_object"}, "user": "someone"
            }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let sent: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "Grade strictly.\n\nAnswer in JSON."},
            {"role": "user", "content": [{"type": "text", "text": "Is this a cat?"}, {"type": "image_url", "image_url": {"url": png}}]}
        ])
    );
    assert_eq!(sent["model"], "gpt-a");
    assert_eq!(
        (sent["max_tokens"].as_u64(), sent["seed"].as_i64()),
        (Some(33), Some(11))
    );
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert!(
        sent.get("user").is_none() && sent.get("stream").is_none(),
        "{sent}"
    );
}

#[tokio::test]
async fn models_lists_the_routes_that_can_answer() {
    let server = openai_standin("x").await;
    let toml = config(
        &[("a", "openai", &server)],
        "default = [\"a:gpt-a\"]\nfb = [\"a:gpt-a\", \"rules\"]",
    );
    let app = spawn(&toml, &[]).await;
    let (status, body) = app.get("/v1/models").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["default", "fb"],
        "the rules judge alone is no chat model"
    );
    assert_eq!(
        v["data"][1]["x_llm_judge"]["steps"],
        json!(["a:gpt-a", "rules:rules"])
    );
    assert_eq!(v["data"][0]["x_llm_judge"]["default"], true);
    assert_eq!(v["data"][0]["object"], "model");
}

#[tokio::test]
async fn the_clients_token_never_reaches_a_provider() {
    let server = openai_standin("ok").await;
    let toml = config(&[("a", "openai", &server)], "default = [\"a:gpt-a\"]")
        + "[auth]\ntokens = [\"client-secret-token-2\"]\n";
    let app = spawn(&toml, &[]).await;
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("client-secret-token-2")
        .json(&chat("default", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = &server.received_requests().await.unwrap()[0];
    let auth = got.headers.get("authorization").unwrap().to_str().unwrap();
    assert_eq!(
        auth, "Bearer sk-test-a-0123456789",
        "the provider's own key, not the client's"
    );
    for (_, v) in got.headers.iter() {
        assert!(!v.to_str().unwrap_or("").contains("client-secret-token-2"));
    }
}

#[tokio::test]
async fn at_temperature_zero_an_identical_request_is_answered_from_the_cache() {
    let server = openai_standin("Verdict: 1").await;
    let toml = config(&[("a", "openai", &server)], "default = [\"a:gpt-x\"]");
    let app = spawn(&toml, &[]).await;
    let mut body = chat("default", "cache me");
    body["temperature"] = json!(0);
    let (_, first) = app.post("/v1/chat/completions", &body).await;
    let (_, second) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(first["x_llm_judge"]["cached"], false);
    assert_eq!(second["x_llm_judge"]["cached"], true);
    assert_eq!(second["choices"][0]["message"]["content"], "Verdict: 1");
    assert_eq!(second["x_llm_judge"]["cost_usd"], 0.0);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // Another seed, another route spelling or a fresh answer asked for: the provider again.
    let mut seeded = body.clone();
    seeded["seed"] = json!(5);
    app.post("/v1/chat/completions", &seeded).await;
    let mut adhoc = body.clone();
    adhoc["model"] = json!("a:gpt-x");
    app.post("/v1/chat/completions", &adhoc).await;
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("cache-control", "no-cache")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-llm-judge-cached"], "false");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
    // A streamed request is answered from the same cache, as one piece.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, headers, text) = post_stream(&app, &streamed).await;
    assert_eq!(headers["x-llm-judge-cached"], "true");
    assert!(
        text.contains("Verdict: 1") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
    // Above temperature 0, never.
    let mut warm = body.clone();
    warm["temperature"] = json!(0.7);
    app.post("/v1/chat/completions", &warm).await;
    app.post("/v1/chat/completions", &warm).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}
