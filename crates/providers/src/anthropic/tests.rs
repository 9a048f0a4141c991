//! The Anthropic adapter's own tests: defaults and clamping, image sources, thinking blocks,
//! cached input and refusals, the prompt cache mark, and structured answers.

use serde_json::json;

use super::*;
use crate::conformance::request;
use llm_judge_chat::{ImageRef, Part, ResponseFormat, Usage};

#[test]
fn defaults_and_clamping() {
    let mut r = request();
    r.system = None;
    r.max_tokens = None;
    r.temperature = Some(1.7);
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert!(v.get("system").is_none());
    assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(v["temperature"], 1.0);
    r.temperature = None;
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert!(v.get("temperature").is_none());
}

#[test]
fn images_become_base64_or_url_sources() {
    let mut r = request();
    let parts = &mut r.messages[0].parts;
    parts.push(Part::Image(ImageRef {
        url: "data:image/png;base64,iVBORw0KGgo=".into(),
    }));
    parts.push(Part::Image(ImageRef {
        url: "https://example.com/a.jpg".into(),
    }));
    parts.push(Part::Text(String::new()));
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Is 2+2=4?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
        ])
    );
    r.messages[0].parts.push(Part::Image(ImageRef {
        url: "file:///etc/passwd".into(),
    }));
    assert!(matches!(
        wire_request(&r, true),
        Err(ProviderError::Unsupported(_))
    ));
}

#[test]
fn thinking_is_skipped_cached_input_counted_and_refusal_filtered() {
    let ok = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking","thinking":"2+2 is 4","signature":"EqQB"},{"type":"text","text":"Yes"},{"type":"text","text":", it is."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":100,"cache_read_input_tokens":3,"output_tokens":7,"service_tier":"standard"}}"#;
    let c = parse_response(ok).unwrap();
    assert_eq!(c.text, "Yes, it is.");
    assert_eq!(
        c.usage,
        Usage {
            cached_prompt_tokens: 3,
            cache_write_tokens: 100,
            ..Usage::new(123, 7)
        }
    );
    let cut = br#"{"content":[{"type":"text","text":"Ye"}],"stop_reason":"max_tokens","usage":{"input_tokens":5,"output_tokens":1,"cache_creation_input_tokens":null,"cache_read_input_tokens":null}}"#;
    let c = parse_response(cut).unwrap();
    assert_eq!((c.text.as_str(), c.usage.prompt_tokens), ("Ye", 5));
    let refused = br#"{"type":"message","content":[{"type":"text","text":"I"}],"stop_reason":"refusal","usage":{"input_tokens":5,"output_tokens":1}}"#;
    assert!(matches!(
        parse_response(refused),
        Err(ProviderError::ContentFilter(_))
    ));
}

#[test]
fn a_long_system_prompt_is_marked_for_the_cache_and_a_short_one_is_not() {
    let mut r = request();
    r.cache_system = true;
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert_eq!(
        v["system"], "You are a strict grader.",
        "too short to cache"
    );
    r.system = Some("rubric ".repeat(700).into());
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert_eq!(
        v["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(v["system"][0]["type"], "text");
    r.model = "claude-3-5-haiku-latest".into();
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert!(v["system"].is_string(), "Haiku needs 2,048 tokens: {v}");
    r.model = "claude-sonnet-4-5".into();
    let off = serde_json::to_value(wire_request(&r, false).unwrap()).unwrap();
    assert!(off["system"].is_string(), "prompt_cache = false: {off}");
    r.cache_system = false;
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert!(v["system"].is_string());
}

#[test]
fn a_structured_answer_is_a_forced_tool_whose_input_is_the_text() {
    let mut r = request();
    r.stop = vec!["END".into()];
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "verdict".into(),
        schema: json!({"type": "object", "properties": {"verdict": {"type": "string"}}}),
        strict: true,
    });
    let v = serde_json::to_value(wire_request(&r, true).unwrap()).unwrap();
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(v["tools"][0]["name"], "verdict");
    assert_eq!(
        v["tools"][0]["input_schema"]["properties"]["verdict"]["type"],
        "string"
    );
    assert_eq!(v["tool_choice"], json!({"type": "tool", "name": "verdict"}));
    let body = br#"{"content":[{"type":"tool_use","id":"toolu_1","name":"verdict","input":{"verdict":"correct"}}],"stop_reason":"tool_use","usage":{"input_tokens":30,"output_tokens":9}}"#;
    let c = parse_response(body).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&c.text).unwrap(),
        json!({"verdict": "correct"})
    );
    let plain = serde_json::to_value(wire_request(&request(), true).unwrap()).unwrap();
    for k in ["stop_sequences", "tools", "tool_choice"] {
        assert!(plain.get(k).is_none(), "{k}");
    }
}
