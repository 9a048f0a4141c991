//! Tests of reading the chat completion request: what is joined into the system prompt, and
//! what is refused naming its field.

use super::*;
use axum::http::StatusCode;

fn parse(v: Value) -> Result<(String, ChatRequest, Wanted), ApiError> {
    serde_json::from_value::<ChatCompletionRequest>(v)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?
        .into_chat()
}

#[test]
fn system_and_developer_messages_join_the_system_prompt_in_order() {
    let (route, req, wanted) = parse(serde_json::json!({
        "model": " fb ",
        "messages": [
            {"role": "system", "content": "Be strict."},
            {"role": "user", "content": [
                {"type": "text", "text": "Is this a cat?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
            ]},
            {"role": "assistant", "content": "No."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer"}, {"type": "text", "text": "briefly."}]},
            {"role": "user", "content": "Sure?"}
        ],
        "temperature": 0, "max_tokens": 5, "max_completion_tokens": 7, "stop": "\n",
        "seed": 3, "logprobs": true, "response_format": {"type": "json_object"},
        "user": "u1", "n": 1, "top_p": 1
    }))
    .unwrap();
    assert_eq!(route, "fb");
    assert_eq!(
        req.system.as_deref(),
        Some("Be strict.\n\nAnswer\nbriefly.")
    );
    assert_eq!(req.messages.len(), 3);
    assert_eq!(req.messages[0].parts.len(), 2);
    assert_eq!(req.messages[1].role, Role::Assistant);
    assert_eq!(req.max_tokens, Some(7));
    assert_eq!(req.stop, ["\n"]);
    assert_eq!((req.seed, req.top_logprobs), (Some(3), Some(0)));
    assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
    assert!(!wanted.stream && wanted.logprobs);
}

#[test]
fn what_is_not_passed_on_is_refused_naming_the_field() {
    let base =
        || serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let cases = [
        ("n", serde_json::json!(2)),
        ("top_p", serde_json::json!(0.5)),
        ("presence_penalty", serde_json::json!(0.1)),
        ("tools", serde_json::json!([{"type": "function"}])),
        ("temperature", serde_json::json!(3)),
        ("max_tokens", serde_json::json!(0)),
        ("top_logprobs", serde_json::json!(3)),
        ("stream_options", serde_json::json!({"include_usage": true})),
        ("stop", serde_json::json!(["a", "b", "c", "d", "e"])),
    ];
    for (field, value) in cases {
        let mut v = base();
        v[field] = value;
        let e = parse(v).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(e.field(), Some(field), "{field}: {}", e.message());
    }
    let mut v = base();
    v["messages"][0]["content"] =
        serde_json::json!([{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]);
    let e = parse(v).unwrap_err();
    assert_eq!(e.field(), Some("messages[0].content[0].image_url.url"));
    let mut v = base();
    v["messages"] = serde_json::json!([{"role": "system", "content": "only this"}]);
    assert_eq!(parse(v).unwrap_err().field(), Some("messages"));
    // Labels and defaults pass.
    let mut v = base();
    v["metadata"] = serde_json::json!({"run": "1"});
    v["tool_choice"] = serde_json::json!("none");
    v["frequency_penalty"] = serde_json::json!(0);
    assert!(parse(v).is_ok());
}

#[test]
fn temperature_is_checked_as_sent_and_n_zero_is_no_number_of_choices() {
    let with = |field: &str, value: Value| {
        let mut v =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        v[field] = value;
        parse(v)
    };
    // Just over 2: refused, although it narrows to 2.0 as an f32.
    let e = with("temperature", serde_json::json!(2.0000001)).unwrap_err();
    assert_eq!(e.field(), Some("temperature"), "{}", e.message());
    assert!(with("temperature", serde_json::json!(2.0)).is_ok());
    let e = with("n", serde_json::json!(0)).unwrap_err();
    assert_eq!(e.field(), Some("n"));
    assert!(!e.message().contains("more than one"), "{}", e.message());
    assert!(with("n", serde_json::json!(1)).is_ok());
}
