//! The judge is named: a batch through a route whose first step is down says, in its summary's
//! `by_judge`, which model gave its verdicts and that they were fallbacks.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_route_that_fell_back_names_the_model_that_gave_its_verdicts() {
    let up = openai_standin("The answer matches.\nVerdict: 1").await;
    let dead = free_port();
    let config = format!(
        r#"
[judge]
rules_precheck = false
[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
api_key = "sk-down"
max_attempts = 1
[providers.up]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-up"
[routes]
default = ["down:gpt-4o", "up:gpt-4o-mini"]
"#,
        up.uri()
    );
    let app = spawn(&config, &[]).await;
    let items: Vec<_> = (0..20)
        .map(|i| json!({"question": format!("q{i}?"), "answer": "a", "prediction": "a"}))
        .collect();
    let (status, body) = app.post("/v1/judge/batch", &json!({"items": items})).await;
    assert_eq!(status, 200, "{body}");
    let by_judge = &body["summary"]["by_judge"];
    let up = &by_judge["up:gpt-4o-mini"];
    assert_eq!(
        (up["correct"].as_u64(), up["fallback"].as_u64()),
        (Some(20), Some(20)),
        "{by_judge}"
    );
    assert_eq!(up["accuracy"], 1.0);
    assert!(by_judge.get("down:gpt-4o").is_none(), "{by_judge}");
    // /metrics counts the verdicts a fallback step gave, and how each was read.
    let metrics = app.get("/metrics").await.1;
    let route = "route=\"default\"";
    assert_eq!(
        metric(&metrics, "llm_judge_fallback_verdicts_total", route),
        20.0
    );
    assert_eq!(
        metric(&metrics, "llm_judge_verdict_parsers_total", route),
        20.0
    );
}
