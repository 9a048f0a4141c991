//! The OpenAI adapter's own tests: reasoning models' fields, images and turns, refusals and
//! content filters, keyless local servers, and the optional request fields.

use super::request::wire_request;
use super::response::{is_content_filter_error, parse_response};
use super::*;
use llm_judge_chat::{ImageRef, Message, Part, ResponseFormat, Role};

fn req(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        temperature: Some(0.0),
        max_tokens: Some(16),
        ..ChatRequest::user(Some("sys".into()), vec![Part::Text("hi".into())])
    }
}

#[test]
fn reasoning_models_get_max_completion_tokens_and_no_temperature() {
    for m in [
        "o1",
        "o3-mini",
        "o4-mini-2025-04-16",
        "gpt-5",
        "gpt-5-mini",
        "openai/o3",
    ] {
        let v = serde_json::to_value(wire_request(&req(m), Some(m))).unwrap();
        assert_eq!(v["max_completion_tokens"], 16, "{m}");
        assert!(v.get("temperature").is_none(), "{m}");
        assert!(v.get("max_tokens").is_none(), "{m}");
    }
    for m in ["gpt-4o", "gpt-4o-mini", "o1x", "llama3.1:8b", "gpt-4.1"] {
        let v = serde_json::to_value(wire_request(&req(m), Some(m))).unwrap();
        assert_eq!(v["max_tokens"], 16, "{m}");
        assert_eq!(v["temperature"], 0.0, "{m}");
    }
}

#[test]
fn images_become_image_url_parts_and_turns_keep_their_roles() {
    let mut r = req("gpt-4o");
    r.messages[0].parts.push(Part::Image(ImageRef {
        url: "data:image/png;base64,AAAA".into(),
    }));
    r.messages.push(Message {
        role: Role::Assistant,
        parts: vec![Part::Text("No.".into())],
    });
    r.messages
        .push(Message::user(vec![Part::Text("Sure?".into())]));
    let v = serde_json::to_value(wire_request(&r, Some("gpt-4o"))).unwrap();
    assert_eq!(
        v["messages"],
        serde_json::json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": "No."},
            {"role": "user", "content": "Sure?"}
        ])
    );
}

#[test]
fn parses_refusals_content_arrays_and_content_filters() {
    let refused = br#"{"choices":[{"message":{"content":null,"refusal":"I can't help"},"finish_reason":"stop"}]}"#;
    let c = parse_response(refused).unwrap();
    assert_eq!(c.text, "");
    assert_eq!(c.refusal.as_deref(), Some("I can't help"));
    let parts = br#"{"choices":[{"message":{"content":[{"type":"text","text":"Ye"},{"type":"text","text":"s"}]},"finish_reason":"stop"}]}"#;
    assert_eq!(parse_response(parts).unwrap().text, "Yes");
    assert!(matches!(
        parse_response(br#"{"choices":[]}"#),
        Err(ProviderError::Decode(_))
    ));
    let filtered =
        br#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#;
    assert!(matches!(
        parse_response(filtered),
        Err(ProviderError::ContentFilter(_))
    ));
    assert!(is_content_filter_error(
        br#"{"error":{"code":"content_filter","message":"filtered","param":"prompt","type":null}}"#
    ));
}

#[test]
fn a_local_server_needs_no_key_and_https_does() {
    let local = OpenAi::new("openai", "http://127.0.0.1:11434/v1", None, &[]).unwrap();
    assert!(local.headers().is_some());
    let remote = OpenAi::new("openai", "https://api.openai.com/v1", None, &[]).unwrap();
    assert!(remote.headers().is_none());
    assert_eq!(remote.url(), "https://api.openai.com/v1/chat/completions");
}

#[test]
fn stop_seed_formats_and_logprobs_are_sent_and_read() {
    let mut r = req("gpt-4o");
    r.stop = vec!["\n\n".into()];
    r.seed = Some(7);
    r.top_logprobs = Some(5);
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "verdict".into(),
        schema: serde_json::json!({"type": "object"}),
        strict: true,
    });
    let v = serde_json::to_value(wire_request(&r, Some("gpt-4o"))).unwrap();
    assert_eq!(v["stop"], serde_json::json!(["\n\n"]));
    assert_eq!(v["seed"], 7);
    assert_eq!(
        (v["logprobs"].clone(), v["top_logprobs"].clone()),
        (true.into(), 5.into())
    );
    assert_eq!(
        v["response_format"],
        serde_json::json!({"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}, "strict": true}})
    );
    r.response_format = Some(ResponseFormat::JsonObject);
    r.model = "o3-mini".into();
    let v = serde_json::to_value(wire_request(&r, Some("o3-mini"))).unwrap();
    assert_eq!(
        v["response_format"],
        serde_json::json!({"type": "json_object"})
    );
    assert!(
        v.get("logprobs").is_none() && v.get("top_logprobs").is_none(),
        "{v}"
    );
    let plain = serde_json::to_value(wire_request(&req("gpt-4o"), None)).unwrap();
    for k in [
        "stop",
        "seed",
        "response_format",
        "logprobs",
        "top_logprobs",
    ] {
        assert!(plain.get(k).is_none(), "{k}: {plain}");
    }

    let body = br#"{"choices":[{"message":{"content":"Yes"},"finish_reason":"stop","logprobs":{"content":[{"token":"Yes","logprob":-0.1,"top_logprobs":[{"token":"Yes","logprob":-0.1},{"token":"No","logprob":-2.4}]}]}}],"usage":{"prompt_tokens":2000,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1920}}}"#;
    let c = parse_response(body).unwrap();
    let lp = c.logprobs.unwrap();
    assert_eq!(lp[0].token, "Yes");
    assert_eq!(lp[0].top[1], ("No".to_string(), -2.4));
    assert_eq!(
        (c.usage.prompt_tokens, c.usage.cached_prompt_tokens),
        (2000, 1920)
    );
}
