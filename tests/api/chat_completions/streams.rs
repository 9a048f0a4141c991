//! Streamed chat completions: OpenAI's and Anthropic's events translated into OpenAI's chunks,
//! a stream failing before its first piece falls back, one failing after it or going quiet ends
//! with an error event instead of `[DONE]`.

use std::time::Duration;

use futures::StreamExt;
use wiremock::matchers::path;

use super::*;

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
    // As OpenAI streams it: `usage` is null in every chunk before the last.
    for c in &chunks[..chunks.len() - 1] {
        assert!(c.get("usage").is_some_and(Value::is_null), "{c}");
    }
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
