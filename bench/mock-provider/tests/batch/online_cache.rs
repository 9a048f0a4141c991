//! Cached-token counts on online answers, by the same rule as in batches.

use serde_json::{Value, json};

use crate::mock::Mock;
use crate::requests::{chat_body, message_batch};

#[tokio::test]
async fn online_answers_report_cached_tokens() {
    let mock = Mock::start(&["--cached-tokens", "100"]);
    let m = &mock;
    let chat = |body: Value| async move {
        let (status, answer) = m.post("/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        answer["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(chat(chat_body(1)).await, 0);
    assert_eq!(chat(chat_body(2)).await, 100);
    let mut other = chat_body(3);
    other["messages"][0]["content"] = json!("Another judge.");
    assert_eq!(chat(other).await, 0);

    let message = |body: Value| async move {
        let (status, answer) = m.post("/v1/messages", &body).await;
        assert_eq!(status, 200);
        let u = &answer["usage"];
        (
            u["input_tokens"].as_u64().unwrap(),
            u["cache_creation_input_tokens"].as_u64().unwrap(),
            u["cache_read_input_tokens"].as_u64().unwrap(),
        )
    };
    let params = |i| message_batch(i + 1)["requests"][i]["params"].clone();
    assert_eq!(message(params(0)).await, (50, 100, 0));
    assert_eq!(message(params(1)).await, (50, 0, 100));
    let mut unmarked = params(2);
    unmarked["system"] = json!("You are a judge.");
    assert_eq!(
        message(unmarked).await,
        (150, 0, 0),
        "no cache_control, no cache"
    );
    // A reset empties the cache.
    mock.client
        .post(mock.url("/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat(chat_body(4)).await, 0);

    // Off by default.
    let plain = Mock::start(&[]);
    let (_, a) = plain.post("/v1/chat/completions", &chat_body(1)).await;
    let (_, b) = plain.post("/v1/chat/completions", &chat_body(2)).await;
    for answer in [a, b] {
        assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    }
}
