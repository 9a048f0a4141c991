//! One conformance suite run against every HTTP adapter: the exact URL, headers and body each
//! sends for the same request; text and usage read from its answer; error bodies, statuses and
//! retry hints; compressed answers; no call without a key; no key in any error. Each adapter's
//! own file tests only what is its own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::adapter::Adapter;
use crate::answer::Answer;
use crate::http::{ClientOptions, HttpAdapter, Streamed, client};
use crate::wire::WireFormat;
use crate::{anthropic, azure, cohere, gemini, openai};
use llm_judge_chat::{ChatRequest, Part, ProviderError, Usage};

/// The request every adapter is sent.
pub fn request() -> ChatRequest {
    ChatRequest {
        model: "judge-model".into(),
        temperature: Some(0.0),
        max_tokens: Some(16),
        ..ChatRequest::user(
            Some("You are a strict grader.".into()),
            vec![Part::Text("Is 2+2=4?".into())],
        )
    }
}

/// An answer as a wire format's `decode` gets it.
pub fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: Default::default(),
        body: body.to_string().into(),
    }
}

const KEY: &str = "sk-conformance-0123456789";

/// One adapter under test.
struct Case {
    name: &'static str,
    /// The adapter for a base URL, with or without a key.
    build: fn(&str, Option<&str>) -> Adapter,
    path: &'static str,
    query: Option<(&'static str, &'static str)>,
    /// The credential header and its value for [`KEY`].
    auth: (&'static str, String),
    /// The body sent for [`request`].
    body: Value,
    /// A success answer reading as "Yes" with 12 prompt and 1 completion tokens.
    ok: Value,
    /// An error body and the message read from it.
    error: Value,
    message: &'static str,
    /// Whether the adapter calls a plain `http://` server without a key (local OpenAI-compatible
    /// servers need none).
    keyless_on_http: bool,
}

fn adapter<W: WireFormat>(wire: W, key: Option<&str>) -> Adapter {
    let http = HttpAdapter::new(
        client(&ClientOptions::default()).unwrap(),
        wire,
        key.map(str::to_string),
    );
    Adapter {
        kind: http.wire().kind(),
        has_credentials: http.wire().headers().is_some(),
        stream: tower::util::BoxCloneSyncService::new(Streamed(http.clone())),
        service: tower::util::BoxCloneSyncService::new(http),
        batch: None,
    }
}

fn openai_body(model: bool) -> Value {
    let mut v = json!({
        "messages": [
            {"role": "system", "content": "You are a strict grader."},
            {"role": "user", "content": "Is 2+2=4?"}
        ],
        "temperature": 0.0,
        "max_tokens": 16
    });
    if model {
        v["model"] = json!("judge-model");
    }
    v
}

fn openai_ok() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "judge-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes", "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}})
}

fn openai_error() -> Value {
    json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
}

/// Every HTTP adapter under test.
fn cases() -> Vec<Case> {
    vec![
        openai_case(),
        together_case(),
        azure_case(),
        anthropic_case(),
        cohere_case(),
        gemini_case(),
    ]
}

/// OpenAI Chat Completions, its key as a bearer token.
fn openai_case() -> Case {
    Case {
        name: "openai",
        build: |base, key| {
            adapter(
                openai::OpenAi::new("openai", &format!("{base}/v1/"), key, &[]).unwrap(),
                key,
            )
        },
        path: "/v1/chat/completions",
        query: None,
        auth: ("authorization", format!("Bearer {KEY}")),
        body: openai_body(true),
        ok: openai_ok(),
        error: openai_error(),
        message: "Rate limit reached for requests",
        keyless_on_http: true,
    }
}

/// Together: OpenAI's wire format under another name and error body.
fn together_case() -> Case {
    Case {
        name: "together",
        build: |base, key| {
            adapter(
                openai::OpenAi::new("together", &format!("{base}/v1"), key, &[]).unwrap(),
                key,
            )
        },
        path: "/v1/chat/completions",
        query: None,
        auth: ("authorization", format!("Bearer {KEY}")),
        body: openai_body(true),
        ok: openai_ok(),
        error: json!({"id": "x", "error": {"message": "rate limit exceeded", "type": "rate_limit"}}),
        message: "rate limit exceeded",
        keyless_on_http: true,
    }
}

/// Azure OpenAI: the deployment in the path, the API version in the query, no model in the body.
fn azure_case() -> Case {
    Case {
        name: "azure",
        build: |base, key| {
            adapter(
                azure::Azure::new(&format!("{base}/openai"), "2024-10-21", key).unwrap(),
                key,
            )
        },
        path: "/openai/deployments/judge-model/chat/completions",
        query: Some(("api-version", "2024-10-21")),
        auth: ("api-key", KEY.to_string()),
        body: openai_body(false),
        ok: openai_ok(),
        error: json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 2 seconds."}}),
        message: "Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 2 seconds.",
        keyless_on_http: false,
    }
}

/// Anthropic Messages.
fn anthropic_case() -> Case {
    Case {
        name: "anthropic",
        build: |base, key| {
            adapter(
                anthropic::Anthropic::new(&format!("{base}/"), key).unwrap(),
                key,
            )
        },
        path: "/v1/messages",
        query: None,
        auth: ("x-api-key", KEY.to_string()),
        body: json!({
            "model": "judge-model",
            "system": "You are a strict grader.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Is 2+2=4?"}]}],
            "max_tokens": 16,
            "temperature": 0.0
        }),
        ok: json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "judge-model",
            "content": [{"type": "text", "text": "Yes"}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}),
        error: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}, "request_id": "req_1"}),
        message: "rate_limit_error: Number of requests has exceeded your rate limit",
        keyless_on_http: false,
    }
}

/// Cohere Chat v2.
fn cohere_case() -> Case {
    Case {
        name: "cohere",
        build: |base, key| {
            adapter(
                cohere::Cohere::new(&format!("{base}/v2"), key).unwrap(),
                key,
            )
        },
        path: "/v2/chat",
        query: None,
        auth: ("authorization", format!("Bearer {KEY}")),
        body: json!({
            "model": "judge-model",
            "messages": [
                {"role": "system", "content": "You are a strict grader."},
                {"role": "user", "content": "Is 2+2=4?"}
            ],
            "temperature": 0.0,
            "max_tokens": 16
        }),
        ok: json!({"id": "c1", "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "Yes"}]},
            "usage": {"billed_units": {"input_tokens": 12, "output_tokens": 1}, "tokens": {"input_tokens": 12, "output_tokens": 1}}}),
        error: json!({"id": "e1", "message": "You are using a Trial key, which is limited to 10 API calls / minute."}),
        message: "You are using a Trial key, which is limited to 10 API calls / minute.",
        keyless_on_http: false,
    }
}

/// Gemini `generateContent`.
fn gemini_case() -> Case {
    Case {
        name: "gemini",
        build: |base, key| adapter(gemini::Gemini::new(base, key).unwrap(), key),
        path: "/v1beta/models/judge-model:generateContent",
        query: None,
        auth: ("x-goog-api-key", KEY.to_string()),
        body: json!({
            "systemInstruction": {"parts": [{"text": "You are a strict grader."}]},
            "contents": [{"role": "user", "parts": [{"text": "Is 2+2=4?"}]}],
            "generationConfig": {"temperature": 0.0, "maxOutputTokens": 16}
        }),
        ok: json!({"candidates": [{"content": {"parts": [{"text": "Yes"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13}}),
        error: json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}),
        message: "RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).",
        keyless_on_http: false,
    }
}

async fn call(a: &Adapter, req: ChatRequest) -> Result<llm_judge_chat::Completion, ProviderError> {
    a.service.clone().oneshot(Arc::new(req)).await
}

/// Mounts `respond` for the case's exact request (path, query, credential header).
async fn mount(server: &MockServer, c: &Case, respond: ResponseTemplate) {
    let mut m = Mock::given(method("POST"))
        .and(path(c.path))
        .and(header(c.auth.0, c.auth.1.as_str()));
    if let Some((k, v)) = c.query {
        m = m.and(query_param(k, v));
    }
    m.respond_with(respond).mount(server).await;
}

#[tokio::test]
async fn every_adapter_sends_the_exact_request_and_reads_text_and_usage() {
    for c in cases() {
        let server = MockServer::start().await;
        let auth = c.auth.clone();
        let mut m = Mock::given(method("POST"))
            .and(path(c.path))
            .and(header(auth.0, auth.1.as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(c.body.clone()))
            .and(|r: &Request| {
                let ua = r.headers.get("user-agent").and_then(|v| v.to_str().ok());
                let enc = r
                    .headers
                    .get("accept-encoding")
                    .and_then(|v| v.to_str().ok());
                ua.is_some_and(|u| u.starts_with("llm-judge/"))
                    && enc.is_some_and(|e| e.contains("gzip") && e.contains("br"))
            });
        if let Some((k, v)) = c.query {
            m = m.and(query_param(k, v));
        }
        // No other credential header than the provider's own, and never a key in the URL.
        let own = c.auth.0;
        m = m.and(move |r: &Request| {
            ["authorization", "x-api-key", "api-key", "x-goog-api-key"]
                .iter()
                .all(|h| *h == own || !r.headers.contains_key(*h))
                && !r.url.as_str().contains(KEY)
        });
        m.respond_with(ResponseTemplate::new(200).set_body_json(c.ok.clone()))
            .expect(1)
            .mount(&server)
            .await;
        let a = (c.build)(&server.uri(), Some(KEY));
        assert!(a.has_credentials, "{}", c.name);
        assert_eq!(a.kind, c.name, "{}", c.name);
        let got = call(&a, request()).await;
        let done = got.unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(done.text, "Yes", "{}", c.name);
        assert_eq!(done.usage, Usage::new(12, 1), "{}", c.name);
        server.verify().await;
    }
}

#[tokio::test]
async fn every_adapter_reads_error_bodies_and_retry_hints() {
    for c in cases() {
        let server = MockServer::start().await;
        mount(
            &server,
            &c,
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(c.error.clone()),
        )
        .await;
        let a = (c.build)(&server.uri(), Some(KEY));
        let err = call(&a, request()).await.unwrap_err();
        assert_eq!(err.status(), Some(429), "{}", c.name);
        assert_eq!(err.kind(), "rate_limited", "{}", c.name);
        assert_eq!(
            err.to_string(),
            format!("HTTP 429: {}", c.message),
            "{}",
            c.name
        );
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_secs(7)),
            "{}",
            c.name
        );
        assert!(err.is_retryable(), "{}", c.name);

        let server = MockServer::start().await;
        mount(
            &server,
            &c,
            ResponseTemplate::new(503)
                .insert_header("x-should-retry", "false")
                .insert_header("retry-after-ms", "250")
                .set_body_string("<html>upstream unavailable</html>"),
        )
        .await;
        let a = (c.build)(&server.uri(), Some(KEY));
        let err = call(&a, request()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "HTTP 503: <html>upstream unavailable</html>",
            "{}",
            c.name
        );
        assert!(!err.is_retryable(), "{}: x-should-retry false", c.name);
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_millis(250)),
            "{}",
            c.name
        );
    }
}

#[tokio::test]
async fn every_adapter_decodes_compressed_answers_and_refuses_malformed_ones() {
    use std::io::Write;
    for c in cases() {
        let server = MockServer::start().await;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(c.ok.to_string().as_bytes()).unwrap();
        mount(
            &server,
            &c,
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .insert_header("content-type", "application/json")
                .set_body_bytes(gz.finish().unwrap()),
        )
        .await;
        let a = (c.build)(&server.uri(), Some(KEY));
        let done = call(&a, request()).await;
        assert_eq!(done.unwrap().text, "Yes", "{}: gzip answer", c.name);

        let server = MockServer::start().await;
        mount(
            &server,
            &c,
            ResponseTemplate::new(200).set_body_raw("{\"trunc", "application/json"),
        )
        .await;
        let a = (c.build)(&server.uri(), Some(KEY));
        let err = call(&a, request()).await.unwrap_err();
        assert_eq!(err.kind(), "decode_error", "{}: {err}", c.name);
        // A whole answer that cannot be read was billed: not bought again from this provider.
        assert!(!err.is_retryable(), "{}", c.name);
    }
}

#[tokio::test]
async fn no_key_sends_nothing_and_an_echoed_key_is_redacted() {
    for c in cases() {
        let server = MockServer::start().await;
        let a = (c.build)(&server.uri(), None);
        if !c.keyless_on_http {
            assert!(!a.has_credentials, "{}", c.name);
            assert_eq!(
                call(&a, request()).await.unwrap_err(),
                ProviderError::NoCredentials,
                "{}",
                c.name
            );
            assert!(
                server.received_requests().await.unwrap().is_empty(),
                "{}: a keyless adapter sent a request",
                c.name
            );
        } else {
            assert!(a.has_credentials, "{}: a local server needs no key", c.name);
        }

        let server = MockServer::start().await;
        let echo = json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "authentication_error"}, "message": format!("invalid api token {KEY}")});
        mount(&server, &c, ResponseTemplate::new(401).set_body_json(echo)).await;
        let a = (c.build)(&server.uri(), Some(KEY));
        let err = call(&a, request()).await.unwrap_err();
        assert_eq!(err.status(), Some(401), "{}", c.name);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(KEY), "{}: {shown}", c.name);
        assert!(shown.contains("[redacted]"), "{}: {shown}", c.name);
        assert!(!err.is_retryable(), "{}", c.name);
    }
}

#[tokio::test]
async fn every_adapter_reports_a_dead_port_as_a_connection_error() {
    // A port that was just bound and released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for c in cases() {
        let a = (c.build)(&format!("http://127.0.0.1:{port}"), Some(KEY));
        let err = call(&a, request()).await.unwrap_err();
        assert_eq!(err.kind(), "connect_error", "{}: {err}", c.name);
        assert!(err.is_retryable(), "{}", c.name);
        assert!(!err.to_string().contains(KEY), "{}", c.name);
    }
}
