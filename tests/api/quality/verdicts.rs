//! How a verdict is read: confidence from log probabilities (and its loud absence), and
//! structured verdicts, a JSON schema on the OpenAI wire and a forced tool on Anthropic's.

use super::*;

#[tokio::test]
async fn logprobs_give_a_confidence_and_their_absence_says_none_and_is_counted() {
    let (app, _server, seen) = app_with(
        r#"
lp_yes = { steps = ["p:say-1"], confidence = "logprobs" }
lp_no = { steps = ["p:say-0"], confidence = "logprobs" }
lp_reasoner = { steps = ["p:o3-mini"], confidence = "logprobs" }
"#,
    )
    .await;
    let (_, body) = app.post("/v1/judge/binary", &item("4", "lp_yes")).await;
    assert_eq!(body["verdict"], "correct", "{body}");
    assert_eq!(body["confidence_source"], "logprobs");
    assert!(
        (body["confidence"].as_f64().unwrap() - 0.8).abs() < 1e-6,
        "{body}"
    );
    assert!((body["p_correct"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    let sent = seen.body("say-1");
    assert_eq!(sent["logprobs"], true);
    assert_eq!(sent["top_logprobs"], 5);
    // An incorrect verdict: its confidence is P(negative); p_correct is the other side.
    let (_, body) = app.post("/v1/judge/binary", &item("5", "lp_no")).await;
    assert_eq!(body["verdict"], "incorrect");
    assert!(
        (body["confidence"].as_f64().unwrap() - 0.9).abs() < 1e-6,
        "{body}"
    );
    assert!((body["p_correct"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    // A reasoning model gets no logprobs parameters and answers without them: none, counted.
    let (_, body) = app
        .post("/v1/judge/binary", &item("4", "lp_reasoner"))
        .await;
    assert_eq!(body["verdict"], "correct", "{body}");
    assert_eq!(body["confidence_source"], "none");
    assert!(body["confidence"].is_null());
    assert!(seen.body("o3-mini").get("logprobs").is_none());
    let (_, metrics) = app.get("/metrics").await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("llm_judge_confidence_fallbacks_total")
                && l.contains("route=\"lp_reasoner\"")
                && l.contains("reason=\"not_returned\"")
        })
        .unwrap_or_else(|| panic!("no fallback counted:\n{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
    // A route without the option asks for nothing and reports none, without counting.
    let (_, body) = app.post("/v1/judge/binary", &item("4", "yes")).await;
    assert_eq!(body["confidence_source"], "none");
    assert!(seen.body("say-1").get("logprobs").is_none());
}

#[tokio::test]
async fn structured_routes_ask_for_a_schema_and_say_which_parser_read_the_verdict() {
    let (app, _server, seen) = app_with(
        r#"
strict = { steps = ["p:json-model"], structured = true }
strict_but_ignored = { steps = ["p:say-1"], structured = true }
"#,
    )
    .await;
    let (_, body) = app.post("/v1/judge/binary", &item("5", "strict")).await;
    assert_eq!(body["verdict"], "incorrect", "{body}");
    assert_eq!(body["parser"], "structured");
    assert_eq!(body["reason"], "they differ");
    assert_eq!(body["template_version"], "binary-v2-01-json");
    let sent = seen.body("json-model");
    let format = &sent["response_format"];
    assert_eq!(format["type"], "json_schema", "{sent}");
    assert_eq!(format["json_schema"]["name"], "binary_verdict");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["verdict"]["enum"],
        json!(["1", "0"])
    );
    // A server that ignores the format: the free-text parser reads it, and says so.
    let (_, body) = app
        .post("/v1/judge/binary", &item("4", "strict_but_ignored"))
        .await;
    assert_eq!(body["verdict"], "correct", "{body}");
    assert_eq!(body["parser"], "text");
    let (_, body) = app.post("/v1/judge/binary", &item("4", "yes")).await;
    assert_eq!(body["parser"], "text");
    assert!(
        seen.body("say-1").get("response_format").is_none(),
        "a plain route asks for no format"
    );
    // The rules judge answers JSON of its own accord.
    let (_, body) = app.post("/v1/judge/binary", &item("4", "rules")).await;
    assert_eq!(body["parser"], "json");
}

#[tokio::test]
async fn anthropic_structured_verdicts_are_a_forced_tool() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Value::Null));
    let keep = seen.clone();
    Mock::given(wiremock::matchers::path("/v1/messages"))
        .respond_with(move |req: &Request| {
            *keep.lock().unwrap() = req.body_json::<Value>().unwrap();
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "pairwise_verdict",
                             "input": {"reason": "B is right", "winner": "B"}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 50, "output_tokens": 12}
            }))
        })
        .mount(&server)
        .await;
    let toml = format!(
        r#"
[judge]
cache_entries = 0
[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key = "sk-ant-test"
[routes]
default = {{ steps = ["claude:claude-test"], structured = true }}
"#,
        server.uri()
    );
    let app = spawn(&toml, &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/compare",
            &json!({"question": "q", "response_a": "x", "response_b": "y", "swap": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["winner"], "b", "{body}");
    assert_eq!(body["parser"], "structured");
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent["tools"][0]["name"], "pairwise_verdict", "{sent}");
    let schema = &sent["tools"][0]["input_schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(
        schema["properties"]["winner"]["enum"],
        json!(["A", "B", "C"])
    );
    assert_eq!(schema["required"], json!(["reason", "winner"]));
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "pairwise_verdict"})
    );
}
