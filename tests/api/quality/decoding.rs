//! Determinism recorded: calls carry a fixed seed (a route may set its own), temperature 0 by
//! default, and each result says what its provider was sent; a reasoning model that takes no
//! temperature says so in its result instead of silently.

use serde_json::{Value, json};
use wiremock::MockServer;

use crate::support::*;

fn config(server: &MockServer) -> String {
    format!(
        r#"
[judge]
rules_precheck = false
cache_entries = 0
[providers.p]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-decoding"
[routes]
default = ["p:gpt-4o-mini"]
seeded = {{ steps = ["p:gpt-4o-mini"], seed = 1234 }}
thinking = ["p:o3-mini"]
"#,
        server.uri()
    )
}

async fn sent(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn results_say_the_decoding_their_provider_was_sent() {
    let server = openai_standin("Verdict: 1").await;
    let app = spawn(&config(&server), &[]).await;
    let item = |judge: &str| json!({"question": "2 + 2?", "answer": "4", "prediction": "4", "judge": judge});

    let (status, body) = app.post("/v1/judge/binary", &item("default")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["decoding"],
        json!({"temperature": 0.0, "max_tokens": 512, "seed": 0})
    );
    let (_, body) = app.post("/v1/judge/binary", &item("seeded")).await;
    assert_eq!(body["decoding"]["seed"], 1234, "{body}");
    let (_, body) = app.post("/v1/judge/binary", &item("thinking")).await;
    assert_eq!(body["decoding"]["temperature"], Value::Null, "{body}");
    assert!(
        body["decoding"]["note"]
            .as_str()
            .unwrap()
            .contains("no temperature"),
        "{body}"
    );

    let requests = sent(&server).await;
    assert_eq!(requests.len(), 3);
    assert_eq!(
        (
            requests[0]["seed"].as_i64(),
            requests[0]["temperature"].as_f64()
        ),
        (Some(0), Some(0.0))
    );
    assert_eq!(requests[1]["seed"], 1234);
    assert!(requests[2].get("temperature").is_none(), "{}", requests[2]);
    // The rules judge calls nothing: its results carry no decoding.
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question": "2 + 2?", "answer": "4", "prediction": "4", "judge": "rules"}),
        )
        .await;
    assert!(body.get("decoding").is_none(), "{body}");
}
