//! The OpenAI requests the service sends are valid under OpenAI's own published spec: Stoplight
//! Prism serves the chat-completions slice and rejects (422) any request that breaks it.
//!
//! Needs a running Prism at `PRISM_URL` (scripts/test starts one); ignored otherwise.

mod support;

use serde_json::{Value, json};
use support::*;

fn prism_url() -> String {
    std::env::var("PRISM_URL").expect("PRISM_URL must point at a Prism mock of the OpenAI chat-completions spec (scripts/test starts one)")
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
