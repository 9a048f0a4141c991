//! The requests the service sends are valid under each provider's own published spec: Stoplight
//! Prism serves the chat slice of OpenAI's, Together's and Cohere's OpenAPI documents and refuses
//! (4xx) any request that breaks it.
//!
//! Needs running Prism mocks at `PRISM_URL` (OpenAI), `PRISM_TOGETHER_URL` and `PRISM_COHERE_URL`;
//! scripts/test starts them. Ignored under a plain `cargo test`.

use crate::support::*;
use serde_json::{Value, json};

fn prism_url() -> String {
    env_url("PRISM_URL")
}

fn env_url(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} must point at a Prism mock (scripts/test starts one)"))
}

/// Sends binary, score and compare items through a route whose only step is `kind` at `base`,
/// and checks that the mock accepted every request.
async fn check_provider(kind: &str, base: &str, model: &str) {
    let toml = format!(
        r#"
[providers.under_test]
kind = "{kind}"
base_url = "{base}"
api_key = "sk-test"
max_attempts = 1
[routes]
default = ["under_test:{model}"]
"#
    );
    let app = spawn(&toml, &[]).await;
    for (path, item) in [
        (
            "/v1/judge/binary",
            json!({"question":"What is 2+2?","answer":"4","prediction":"4"}),
        ),
        (
            "/v1/judge/binary",
            json!({"question":"What is shown?","answer":"a cat","prediction":"a dog",
            "images":["data:image/png;base64,iVBORw0KGgo="],"options":{"temperature":0.5,"max_tokens":64}}),
        ),
        (
            "/v1/judge/score",
            json!({"question":"q","prediction":"p","rubric":"r"}),
        ),
        (
            "/v1/judge/compare",
            json!({"question":"q","response_a":"x","response_b":"y","swap":false}),
        ),
    ] {
        let (status, body) = app.post(path, &item).await;
        assert_eq!(
            status, 200,
            "{kind}: the mock refused the request for {path}: {body}"
        );
        assert_eq!(body["attempts"][0]["status"], 200, "{kind} {path}: {body}");
        assert_eq!(
            body["raw_response"], "string",
            "{kind}: the example answer was read: {body}"
        );
    }
}

#[tokio::test]
#[ignore = "needs Prism; run by scripts/test"]
async fn together_requests_match_togethers_spec() {
    let base = env_url("PRISM_TOGETHER_URL");
    let bad = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth("t")
        .json(&json!({"model":"m","messages":[{"role":"robot","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(
        bad.status().is_client_error(),
        "the control request must be refused"
    );
    check_provider("together", &base, "meta-llama/Llama-3.3-70B-Instruct-Turbo").await;
}

#[tokio::test]
#[ignore = "needs Prism; run by scripts/test"]
async fn cohere_requests_match_coheres_spec() {
    let base = env_url("PRISM_COHERE_URL");
    let bad = reqwest::Client::new()
        .post(format!("{base}/v2/chat"))
        .bearer_auth("t")
        .json(&json!({"model":"m","messages":[{"role":"robot","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(
        bad.status().is_client_error(),
        "the control request must be refused"
    );
    check_provider("cohere", &base, "command-r-plus").await;
}

#[tokio::test]
#[ignore = "needs Prism; run by scripts/test"]
async fn prism_rejects_a_bad_request_and_accepts_ours() {
    let base = prism_url();
    let client = reqwest::Client::new();
    // Control: Prism really validates (a wrong role and a string temperature are refused).
    let bad = client
        .post(format!("{base}/chat/completions"))
        .bearer_auth("sk-test")
        .json(&json!({"model":"gpt-4o","messages":[{"role":"judge","content":"hi"}],"temperature":"hot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);

    let toml = format!(
        r#"
[providers.openai]
kind = "openai"
base_url = "{base}"
api_key = "sk-test"
max_attempts = 1
[routes]
default = ["openai:gpt-4o-2024-08-06"]
reasoning = ["openai:o3-mini"]
structured = {{ steps = ["openai:gpt-4o-2024-08-06"], structured = true, confidence = "logprobs" }}
structured_reasoning = {{ steps = ["openai:o3-mini"], structured = true, confidence = "logprobs" }}
"#
    );
    let app = spawn(&toml, &[]).await;
    let items = [
        json!({"question":"What is 2+2?","answer":"4","prediction":"4"}),
        json!({"question":"What is shown?","answer":"a cat","prediction":"a dog","output_format":"yes/no",
               "images":["data:image/png;base64,iVBORw0KGgo=","https://example.com/cat.png"],
               "options":{"temperature":0.5,"max_tokens":64}}),
        json!({"question":"q","answer":"a","prediction":"p","judge":"reasoning","options":{"max_tokens":256}}),
        json!({"question":"q","answer":"a","prediction":"p","prompt":"Grade {prediction} against {answer}"}),
    ];
    for item in items {
        let (status, body) = app.post("/v1/judge/binary", &item).await;
        // Prism answers a valid request with its example completion (text "string"); a request
        // it refuses would show up as a 422 attempt and a 502 answer.
        let attempt: &Value = &body["attempts"][0];
        assert_eq!(status, 200, "Prism refused the request: {body}");
        assert_eq!(attempt["status"], 200, "{body}");
        assert_eq!(body["raw_response"], "string", "{body}");
        assert_eq!(
            body["verdict"], "unscored",
            "\"string\" is no verdict: {body}"
        );
    }
    // Structured verdicts (response_format json_schema) and logprobs, for every kind.
    for (path, item) in [
        (
            "/v1/judge/binary",
            json!({"question":"q","answer":"a","prediction":"p","judge":"structured"}),
        ),
        (
            "/v1/judge/binary",
            json!({"question":"q","answer":"a","prediction":"p","judge":"structured_reasoning","output_format":"yes/no"}),
        ),
        (
            "/v1/judge/score",
            json!({"question":"q","prediction":"p","judge":"structured"}),
        ),
        (
            "/v1/judge/compare",
            json!({"question":"q","response_a":"x","response_b":"y","swap":false,"judge":"structured"}),
        ),
    ] {
        let (status, body) = app.post(path, &item).await;
        assert_eq!(status, 200, "{path} {item}: {body}");
        assert_eq!(
            body["attempts"][0]["status"], 200,
            "Prism refused a structured request: {path} {item}: {body}"
        );
    }
    // score and compare prompts too
    for (path, item) in [
        (
            "/v1/judge/score",
            json!({"question":"q","prediction":"p","rubric":"r"}),
        ),
        (
            "/v1/judge/compare",
            json!({"question":"q","response_a":"x","response_b":"y"}),
        ),
    ] {
        let (status, body) = app.post(path, &item).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["attempts"][0]["status"], 200, "{path}: {body}");
    }
}

#[tokio::test]
#[ignore = "needs Prism; run by scripts/test"]
async fn chat_completion_requests_match_openais_spec_whole_and_streamed() {
    let toml = format!(
        "[providers.under_test]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-test\"\nmax_attempts = 1\n[routes]\ndefault = [\"under_test:gpt-4o\"]\n",
        prism_url()
    );
    let app = spawn(&toml, &[]).await;
    let mut body = json!({
        "model": "default",
        "messages": [
            {"role": "system", "content": "Grade."},
            {"role": "user", "content": [{"type": "text", "text": "Is this a cat?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "Sure?"}
        ],
        "temperature": 0.5, "max_tokens": 20, "stop": ["\n\n"], "seed": 1,
        "logprobs": true, "top_logprobs": 2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}, "strict": true}}
    });
    let (status, answer) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "the mock refused the request: {answer}");
    assert_eq!(answer["x_llm_judge"]["attempts"][0]["status"], 200);
    // The streamed request (stream, stream_options) is valid too. Prism validates a request
    // before it makes an answer, and it cannot make an event stream (it answers 500 for one):
    // what counts is that it did not refuse the request (400 or 422).
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (_, answer) = app.post("/v1/chat/completions", &body).await;
    let attempt = &answer["x_llm_judge"]["attempts"][0];
    let status = attempt["status"].as_u64().unwrap_or(200);
    assert!(
        !(400..500).contains(&status),
        "the mock refused the streamed request: {answer}"
    );
}
