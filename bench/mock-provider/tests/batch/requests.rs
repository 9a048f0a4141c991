//! The request bodies the tests send: chat requests, OpenAI batch input files and Anthropic
//! Message Batches creation bodies.

use serde_json::{Value, json};

/// A chat request with a judge's fixed system prompt and item `i`.
pub fn chat_body(i: usize) -> Value {
    json!({"model": "gpt-judge", "messages": [
        {"role": "system", "content": "You are a judge. Answer Verdict: 1 or Verdict: 0."},
        {"role": "user", "content": format!("item {i}")},
    ]})
}

/// An OpenAI batch input file of `n` chat requests, ids `item-0` ...
pub fn jsonl(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"custom_id": format!("item-{i}"), "method": "POST",
                   "url": "/v1/chat/completions", "body": chat_body(i)})
            .to_string()
                + "\n"
        })
        .collect()
}

/// An Anthropic Message Batches creation body of `n` requests, ids `item-0` ..., each marking
/// its system prompt for caching.
pub fn message_batch(n: usize) -> Value {
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            json!({"custom_id": format!("item-{i}"), "params": {
                "model": "claude-judge", "max_tokens": 16,
                "system": [{"type": "text", "text": "You are a judge.",
                            "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": format!("item {i}")}],
            }})
        })
        .collect();
    json!({ "requests": requests })
}
