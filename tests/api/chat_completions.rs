//! The OpenAI-compatible endpoints against stand-in providers: answers in OpenAI's shape with
//! llm-judge's account, fallback, streams translated from OpenAI's and Anthropic's events, a
//! stream failing before or after its first piece, the verdict cache at temperature 0, errors in
//! OpenAI's shape, and the client's token kept from providers.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into_bytes(), "text/event-stream")
}

/// OpenAI's events for `pieces`, with usage at the end; `done` adds the end marker.
fn openai_events(pieces: &[&str], finish: bool, done: bool) -> String {
    let mut out = String::from(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    );
    for p in pieces {
        let chunk = json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":p},"finish_reason":null}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    if finish {
        out.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        out.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n");
    }
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out
}

/// Anthropic's events for `pieces`.
fn anthropic_events(pieces: &[&str]) -> String {
    let mut out = String::new();
    let mut ev =
        |name: &str, data: Value| out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    ev(
        "message_start",
        json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":21,"output_tokens":1}}}),
    );
    ev(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    ev("ping", json!({"type":"ping"}));
    for p in pieces {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    ev(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}),
    );
    ev("message_stop", json!({"type":"message_stop"}));
    out
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

/// The `data:` payloads of an SSE body, with the event names that came with them.
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|block| {
            let mut name = String::new();
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data = Some(d.trim_start().to_string());
                }
            }
            data.map(|d| (name, d))
        })
        .collect()
}

/// The chunks of a stream that ended with `[DONE]`.
fn done_chunks(evs: &[(String, String)]) -> Vec<Value> {
    assert_eq!(evs.last().unwrap().1, "[DONE]");
    evs[..evs.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect()
}

/// The answer text the chunks carry.
fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
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
async fn errors_are_in_openais_shape_on_these_endpoints_only() {
    let up = openai_standin("x").await;
    let bad = down().await;
    let toml = config(
        &[("a", "openai", &up), ("z", "openai", &bad)],
        "default = [\"a:gpt-a\"]\ndead = [\"z:m\"]",
    ) + "[auth]\ntokens = [\"client-secret-token-1\"]\n";
    let app = spawn(&toml, &[]).await;
    let send = |body: Value, token: Option<&'static str>| {
        let mut b = app.client.post(app.url("/v1/chat/completions")).json(&body);
        if let Some(t) = token {
            b = b.bearer_auth(t);
        }
        async move {
            let r = b.send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("x-should-retry")
                .map(|v| v.to_str().unwrap().to_string());
            (status, r.json::<Value>().await.unwrap(), retry)
        }
    };
    let tok = Some("client-secret-token-1");
    let shape = |v: &Value| {
        let e = v["error"].as_object().unwrap();
        for k in ["message", "type", "param", "code"] {
            assert!(e.contains_key(k), "{k} missing in {v}");
        }
    };
    let (s, v, _) = send(chat("default", "hi"), None).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    shape(&v);
    let (s, v, _) = send(chat("nope", "hi"), tok).await;
    assert_eq!(
        (s, v["error"]["code"].as_str(), v["error"]["param"].as_str()),
        (404, Some("model_not_found"), Some("model"))
    );
    let (s, v, _) = send(json!({"model": "default", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}), tok).await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("temperature"))
    );
    shape(&v);
    let (s, v, _) = send(
        json!({"model": "default", "messages": [{"role": "tool", "content": "hi"}]}),
        tok,
    )
    .await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("invalid_request_error")),
        "{v}"
    );
    assert_eq!(v["error"]["param"], "messages[0].role");
    let (s, v, _) = send(json!({"model": "default", "messages": [], "bogus": 1}), tok).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("bogus"),
        "{v}"
    );
    let (s, v, _) = send(chat("rules", "hi"), tok).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("not_a_chat_model"))
    );
    let (s, v, retry) = send(chat("dead", "hi"), tok).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (502, Some("server_error"))
    );
    assert_eq!(
        retry.as_deref(),
        Some("false"),
        "the route was already retried"
    );
    assert_eq!(v["x_llm_judge"]["attempts"].as_array().unwrap().len(), 2);
    // Malformed JSON, and a GET where only POST is served.
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("client-secret-token-1")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    shape(&r.json().await.unwrap());
    let r = app
        .client
        .get(app.url("/v1/chat/completions"))
        .bearer_auth("client-secret-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    shape(&r.json().await.unwrap());
    let r = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    shape(&r.json().await.unwrap());
    // Other endpoints keep the service's own body.
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    assert!(v["error"].get("type").is_none(), "{v}");
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
async fn streams_are_translated_from_openai_and_anthropic_events() {
    let oa = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(openai_events(&["Ver", "dict", ": 1"], true, true)))
        .mount(&oa)
        .await;
    let an = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse(anthropic_events(&["Yes", ", it is."])))
        .mount(&an)
        .await;
    let toml = config(
        &[("o", "openai", &oa), ("c", "anthropic", &an)],
        "default = [\"o:gpt-x\"]\nclaude = [\"c:claude-x\"]",
    );
    let app = spawn(&toml, &[]).await;

    let mut body = chat("default", "Is 2+2=4?");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = post_stream(&app, &body).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["x-llm-judge-provider"], "o");
    let chunks = done_chunks(&events(&text));
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content(&chunks), "Verdict: 1");
    let finish = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 12);
    assert_eq!(last["x_llm_judge"]["provider"], "o");
    // 9 prompt tokens at $0.50 and 3 completion tokens at $1.
    assert_eq!(last["x_llm_judge"]["cost_usd"], 7.5);
    let sent: Value = oa.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(
        (
            sent["stream"].as_bool(),
            sent["stream_options"]["include_usage"].as_bool()
        ),
        (Some(true), Some(true))
    );

    // Anthropic's events, without include_usage: the finish chunk carries the account.
    let mut body = chat("claude", "Is 2+2=4?");
    body["stream"] = json!(true);
    let (status, headers, text) = post_stream(&app, &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-llm-judge-provider"], "c");
    let chunks = done_chunks(&events(&text));
    assert_eq!(content(&chunks), "Yes, it is.");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["x_llm_judge"]["model"], "claude-x");
    assert!(last.get("usage").is_none());
    let sent: Value = an.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["stream"], true);
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("llm_judge_streams_total{")
                && l.contains("provider=\"c\"")
                && l.contains("outcome=\"complete\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_failing_before_its_first_piece_falls_back() {
    // Anthropic answers 200 and then reports overload in the stream before any text.
    let an = MockServer::start().await;
    let overloaded = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    Mock::given(method("POST"))
        .respond_with(sse(overloaded.into()))
        .mount(&an)
        .await;
    let oa = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(openai_events(&["fine"], true, true)))
        .mount(&oa)
        .await;
    let toml = config(
        &[("c", "anthropic", &an), ("o", "openai", &oa)],
        "default = [\"c:claude-x\", \"o:gpt-x\"]",
    );
    let app = spawn(&toml, &[]).await;
    let mut body = chat("default", "hi");
    body["stream"] = json!(true);
    let (status, headers, text) = post_stream(&app, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-llm-judge-provider"], "o");
    assert_eq!(headers["x-llm-judge-fallback"], "true");
    let evs = events(&text);
    assert_eq!(evs.last().unwrap().1, "[DONE]");
    let last: Value = serde_json::from_str(&evs[evs.len() - 2].1).unwrap();
    let attempts = last["x_llm_judge"]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        3,
        "overload is retried once, then the next step: {last}"
    );
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{last}"
    );
    assert_eq!(an.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_stream_failing_after_its_first_piece_ends_with_an_error_event_not_done() {
    // The provider sends part of the answer and the connection ends: no finish, no [DONE].
    let cut = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(openai_events(&["Verdict", ":"], false, false)))
        .mount(&cut)
        .await;
    let other = openai_standin("never asked").await;
    let toml = config(
        &[("o", "openai", &cut), ("p", "openai", &other)],
        "default = [\"o:gpt-x\", \"p:gpt-x\"]",
    );
    let app = spawn(&toml, &[]).await;
    let mut body = chat("default", "hi");
    body["stream"] = json!(true);
    let (status, _, text) = post_stream(&app, &body).await;
    assert_eq!(status, 200);
    let evs = events(&text);
    assert!(
        evs.iter().all(|(_, d)| d != "[DONE]"),
        "a broken answer must not end cleanly: {text}"
    );
    let (name, data) = evs.last().unwrap();
    assert_eq!(name, "error");
    let err: Value = serde_json::from_str(data).unwrap();
    assert_eq!(err["error"]["code"], "provider_stream_failed");
    assert_eq!(err["error"]["type"], "server_error");
    let text: String = evs[..evs.len() - 1]
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Verdict:", "what came is passed on");
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "no fallback after the first piece"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("llm_judge_streams_total{") && l.contains("outcome=\"failed\""))
    );
}

#[tokio::test]
async fn a_stream_that_goes_quiet_ends_with_an_error_after_the_providers_timeout() {
    // A provider that sends its first piece and then nothing, keeping the connection open.
    let app_standin = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            let first = openai_events(&["partial"], false, false);
            let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(
                bytes::Bytes::from(first),
            )])
            .chain(futures::stream::pending());
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(body),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app_standin).await.unwrap() });
    let toml = format!(
        "[providers.q]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"k-0123456789\"\ntimeout_s = 0.3\n[routes]\ndefault = [\"q:m\"]\n"
    );
    let app = spawn(&toml, &[]).await;
    let mut body = chat("default", "hi");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let (_, _, text) = tokio::time::timeout(Duration::from_secs(10), post_stream(&app, &body))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let evs = events(&text);
    assert_eq!(evs.last().unwrap().0, "error", "{text}");
    assert!(text.contains("partial"));
}

use futures::StreamExt;

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
