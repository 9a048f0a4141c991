//! The single-item endpoints end to end: the rules judge with no keys, and an OpenAI stand-in
//! answering with every kind of judge reply the parser must read.

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[tokio::test]
async fn rules_judge_works_with_no_keys() {
    let app = spawn("", &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"What is 2+2?","answer":"4","prediction":"The answer is 4."}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct");
    assert_eq!(body["result"], 1);
    assert_eq!(body["provider"], "rules");
    assert_eq!(body["fallback"], false);
    assert_eq!(body["cached"], false);
    assert_eq!(body["attempts"][0]["outcome"], "ok");
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"What is 2+2?","answer":"4","prediction":"5"}),
        )
        .await;
    assert_eq!(body["verdict"], "incorrect");
    assert_eq!(body["result"], 0);
    // Something it cannot decide is unscored with a reason, never a guess.
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"Why is the sky blue?","answer":"Rayleigh scattering of sunlight","prediction":"Because air molecules scatter short wavelengths more strongly than long ones."}),
        )
        .await;
    assert_eq!(body["verdict"], "unscored", "{body}");
    assert!(body["result"].is_null());
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));
}

/// Every parse case from the specification, sent through the whole stack.
#[tokio::test]
async fn judge_replies_are_parsed_into_three_states() {
    let cases: &[(&str, Option<i64>)] = &[
        ("1", Some(1)),
        ("0", Some(0)),
        ("Yes", Some(1)),
        ("No", Some(0)),
        ("**Yes**", Some(1)),
        ("yes.", Some(1)),
        ("The answer is correct. Yes", Some(1)),
        (
            "The reference says 4 and so does the candidate.\nVerdict: 1",
            Some(1),
        ),
        ("10", None),
        ("0.1", None),
        ("Score: 0. The 1st step is wrong", Some(0)),
        ("", None),
        ("I'm sorry, but I can't help with that.", None),
        ("```json\n{\"verdict\": \"yes\"}\n```", Some(1)),
        ("{\"verdict\": \"no\"}", Some(0)),
    ];
    let server = MockServer::start().await;
    for (i, (reply, _)) in cases.iter().enumerate() {
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_string_contains(format!("case-marker-{i}-end")))
            .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer(reply)))
            .mount(&server)
            .await;
    }
    let app = spawn(&openai_config("openai", &server, "gpt-4o-2024-08-06"), &[]).await;
    for (i, (reply, expected)) in cases.iter().enumerate() {
        let (status, body) = app
            .post(
                "/v1/judge/binary",
                &json!({"question":"q","answer":"a","prediction": format!("case-marker-{i}-end")}),
            )
            .await;
        assert_eq!(status, 200, "{reply:?}: {body}");
        assert_eq!(body["raw_response"], *reply);
        match expected {
            Some(r) => {
                assert_eq!(body["result"], *r, "{reply:?}: {body}");
                assert_eq!(
                    body["verdict"],
                    if *r == 1 { "correct" } else { "incorrect" }
                );
                assert!(body["reason"].is_null());
            }
            None => {
                assert!(
                    body["result"].is_null(),
                    "{reply:?} must be unscored: {body}"
                );
                assert_eq!(body["verdict"], "unscored");
                assert!(
                    body["reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "{body}"
                );
            }
        }
        assert_eq!(body["provider"], "openai");
        assert_eq!(body["model"], "gpt-4o-2024-08-06");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 120, "completion_tokens": 8})
        );
        assert!(body["cost_usd"].is_null(), "no price configured");
    }
    // the refusal and the empty answer carry their own reasons
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"q","answer":"a","prediction":"case-marker-12-end"}),
        )
        .await;
    assert_eq!(body["unscored_reason"], "refusal", "{body}");
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"q","answer":"a","prediction":"case-marker-11-end"}),
        )
        .await;
    assert_eq!(body["unscored_reason"], "empty_response", "{body}");
}

#[tokio::test]
async fn the_request_carries_the_prompt_options_and_images() {
    let server = openai_standin("Verdict: yes").await;
    let toml = openai_config("openai", &server, "gpt-4o")
        + "\n[prices]\n\"gpt-4o\" = { prompt_per_mtok = 2.5, completion_per_mtok = 10.0 }\n";
    let app = spawn(&toml, &[]).await;
    let png = "data:image/png;base64,iVBORw0KGgo=";
    let (status, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"What is shown?","answer":"a cat","prediction":"a cat","images":[png],
                    "output_format":"yes/no","options":{"temperature":0.0,"max_tokens":77}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct");
    let cost = body["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (120.0 * 2.5 + 8.0 * 10.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    let sent: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(sent["max_tokens"], 77);
    assert_eq!(sent["temperature"], 0.0);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Verdict: yes")
    );
    let parts = &sent["messages"][1]["content"];
    assert!(
        parts[0]["text"]
            .as_str()
            .unwrap()
            .contains("What is shown?")
    );
    assert_eq!(parts[1]["image_url"]["url"], png);

    // A custom template replaces the prompt.
    let (status, _) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"Q1","answer":"A1","prediction":"P1","prompt":"Grade {prediction} against {answer} for {question}. Reply yes or no."}),
        )
        .await;
    assert_eq!(status, 200);
    let sent: Value = server.received_requests().await.unwrap()[1]
        .body_json()
        .unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        "Grade P1 against A1 for Q1. Reply yes or no."
    );
}

#[tokio::test]
async fn identical_requests_are_answered_from_the_cache() {
    let server = openai_standin("Verdict: 1").await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let item = json!({"question":"q","answer":"a","prediction":"a"});
    let (_, first) = app.post("/v1/judge/binary", &item).await;
    let (_, second) = app.post("/v1/judge/binary", &item).await;
    assert_eq!(first["cached"], false);
    assert_eq!(second["cached"], true);
    assert_eq!(second["verdict"], "correct");
    assert_eq!(second["usage"]["prompt_tokens"], 0);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let mut no_cache = item.clone();
    no_cache["options"] = json!({"cache": false});
    let (_, third) = app.post("/v1/judge/binary", &no_cache).await;
    assert_eq!(third["cached"], false);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn score_endpoint_reads_scores_and_flags_out_of_range() {
    let server = MockServer::start().await;
    for (marker, reply) in [
        ("seven", "Clear and correct.\nScore: 7"),
        ("eleven", "Score: 11"),
        ("none", "It is fine."),
    ] {
        Mock::given(method("POST"))
            .and(body_string_contains(format!("pred-{marker}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer(reply)))
            .mount(&server)
            .await;
    }
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/score",
            &json!({"question":"q","prediction":"pred-seven","rubric":"10 = perfect"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["score"], 7.0);
    assert_eq!(body["verdict"], "scored");
    let (_, body) = app
        .post(
            "/v1/judge/score",
            &json!({"question":"q","prediction":"pred-seven","pass_score":8}),
        )
        .await;
    assert_eq!(body["verdict"], "incorrect");
    assert_eq!(body["result"], 0);
    let (_, body) = app
        .post(
            "/v1/judge/score",
            &json!({"question":"q","prediction":"pred-eleven"}),
        )
        .await;
    assert!(body["score"].is_null());
    assert_eq!(body["verdict"], "unscored");
    assert_eq!(body["unscored_reason"], "out_of_range");
    let (_, body) = app
        .post(
            "/v1/judge/score",
            &json!({"question":"q","prediction":"pred-none"}),
        )
        .await;
    assert_eq!(body["verdict"], "unscored");
}

/// Answers `[[A]]` when the response shown first is the good one, `[[B]]` otherwise.
struct PrefersGood;
impl Respond for PrefersGood {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let reply = if fenced(user, "RESPONSE-A") == "GOOD" {
            "[[A]]"
        } else {
            "[[B]]"
        };
        ResponseTemplate::new(200).set_body_json(openai_answer(reply))
    }
}

#[tokio::test]
async fn compare_asks_both_orders_and_reports_consistency() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(PrefersGood)
        .mount(&server)
        .await;
    let app = spawn(&openai_config("openai", &server, "gpt-4o"), &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/compare",
            &json!({"question":"q","response_a":"bad","response_b":"GOOD","swap":true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["winner"], "b");
    assert_eq!(body["scores"], json!([0.0, 1.0]));
    assert_eq!(body["consistent"], true);
    assert_eq!(body["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(body["usage"]["prompt_tokens"], 240);

    // A judge that always picks the first position disagrees with itself: a tie.
    let biased = openai_standin("[[A]]").await;
    let app = spawn(&openai_config("openai", &biased, "gpt-4o"), &[]).await;
    let (_, body) = app
        .post(
            "/v1/judge/compare",
            &json!({"question":"q","response_a":"x","response_b":"y"}),
        )
        .await;
    assert_eq!(body["winner"], "tie", "{body}");
    assert_eq!(body["consistent"], false);
    let (_, body) = app
        .post(
            "/v1/judge/compare",
            &json!({"question":"q","response_a":"x","response_b":"y","swap":false}),
        )
        .await;
    assert_eq!(body["winner"], "a");
    assert!(body.get("consistent").is_none());
}

#[tokio::test]
async fn health_readiness_providers_and_openapi() {
    let app = spawn("", &[]).await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body.contains("ready")), (200, true));
    let (_, body) = app.get("/v1/providers").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["default_route"], "default");
    assert_eq!(v["routes"]["default"], json!(["rules:rules"]));
    let openai = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openai")
        .unwrap();
    assert_eq!(openai["enabled"], false, "no key, not enabled");
    let (status, body) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    for p in [
        "/v1/judge/binary",
        "/v1/judge/score",
        "/v1/judge/compare",
        "/v1/judge/batch",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the document"
        );
    }
}

#[tokio::test]
async fn the_rules_precheck_calls_no_model_when_it_is_sure() {
    let server = openai_standin("Verdict: 1").await;
    let toml = openai_config("openai", &server, "gpt-4o") + "\n[judge]\nrules_precheck = true\n";
    let app = spawn(&toml, &[]).await;
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"2+2?","answer":"4","prediction":"The answer is 4.00"}),
        )
        .await;
    assert_eq!(body["verdict"], "correct");
    assert_eq!(body["provider"], "rules");
    assert_eq!(body["attempts"], json!([]));
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question":"2+2?","answer":"4","prediction":"5"}),
        )
        .await;
    assert_eq!(body["verdict"], "incorrect");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        0,
        "sure answers call no model"
    );
    // unsure (free-form) and possible aliases go to the model
    for prediction in ["It is gold, the metal", "gold"] {
        let (_, body) = app
            .post(
                "/v1/judge/binary",
                &json!({"question":"Which element is Au?","answer":"Au","prediction": prediction}),
            )
            .await;
        assert_eq!(body["provider"], "openai", "{body}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
