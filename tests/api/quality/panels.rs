//! Panels of judges: the majority with every judge listed, escalation to a third judge only on
//! disagreement, a quorum of judges present, panels in batches and jobs with per-judge figures
//! and Fleiss' kappa, and configuration mistakes named.

use super::*;

#[tokio::test]
async fn a_panel_takes_the_majority_and_lists_every_judge() {
    let (app, _server, seen) = app_with(
        r#"
[panels.jury]
judges = ["yes", "no", "p:say-1"]
"#,
    )
    .await;
    let (status, body) = app.post("/v1/judge/binary", &item("4", "jury")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct", "{body}");
    assert_eq!(body["result"], 1);
    assert_eq!(body["provider"], "panel");
    assert_eq!(body["model"], "jury");
    assert_eq!(body["confidence_source"], "panel");
    let panel = &body["panel"];
    assert_eq!(panel["aggregate"], "majority");
    assert_eq!(panel["voted"], 3);
    let agreement = panel["agreement"].as_f64().unwrap();
    assert!((agreement - 2.0 / 3.0).abs() < 1e-5, "{agreement}");
    assert_eq!(body["confidence"], panel["agreement"]);
    let judges = panel["judges"].as_array().unwrap();
    assert_eq!(judges.len(), 3);
    let names: Vec<&str> = judges
        .iter()
        .map(|j| j["judge"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["yes", "no", "p:say-1"]);
    assert_eq!(judges[1]["verdict"], "incorrect");
    assert!(
        judges[1]["raw_response"]
            .as_str()
            .unwrap()
            .ends_with("Verdict: 0")
    );
    for j in judges {
        assert_eq!(j["status"], "ok");
        assert_eq!(j["provider"], "p");
        assert_eq!(j["usage"]["prompt_tokens"], 120, "{j}");
    }
    assert_eq!(body["usage"]["prompt_tokens"], 360);
    assert_eq!(body["attempts"].as_array().unwrap().len(), 3);
    let raw: Value = serde_json::from_str(body["raw_response"].as_str().unwrap()).unwrap();
    assert_eq!(
        raw,
        json!({"yes": "correct", "no": "incorrect", "p:say-1": "correct"})
    );
    assert_eq!(seen.calls("say-1"), 2);
    assert_eq!(seen.calls("say-0"), 1);
    // /v1/providers lists the panel beside the routes.
    let (_, text) = app.get("/v1/providers").await;
    let providers: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(providers["panels"]["jury"], json!(["yes", "no", "p:say-1"]));
}

#[tokio::test]
async fn escalation_asks_the_third_judge_only_on_disagreement() {
    let (app, _server, seen) = app_with(
        r#"
a = ["p:vote-a"]
b = ["p:vote-b"]
c = ["p:vote-c"]
[panels.tiebreak]
judges = ["a", "b", "c"]
escalate = true
"#,
    )
    .await;
    // a and b agree: c is never asked.
    for i in 0..3 {
        let (_, body) = app
            .post(
                "/v1/judge/binary",
                &item(&format!("a=1 b=1 c=0 #{i}"), "tiebreak"),
            )
            .await;
        assert_eq!(body["verdict"], "correct", "{body}");
        assert_eq!(body["panel"]["judges"][2]["status"], "not_called");
        assert_eq!(body["panel"]["voted"], 2);
    }
    assert_eq!(seen.calls("vote-c"), 0, "the third judge was asked");
    // They disagree: c decides, once per item.
    let (_, body) = app
        .post("/v1/judge/binary", &item("a=1 b=0 c=0", "tiebreak"))
        .await;
    assert_eq!(body["verdict"], "incorrect", "{body}");
    assert_eq!(body["panel"]["voted"], 3);
    assert_eq!(body["panel"]["judges"][2]["status"], "ok");
    assert_eq!(seen.calls("vote-c"), 1);
    assert_eq!((seen.calls("vote-a"), seen.calls("vote-b")), (4, 4));
}

#[tokio::test]
async fn a_failing_judge_is_absent_and_below_quorum_the_item_is_unscored() {
    let (app, _server, _seen) = app_with(
        r#"
[panels.two_of_three]
judges = ["yes", "no", "down"]
[panels.strict]
judges = ["yes", "down"]
quorum = 2
[panels.split]
judges = ["yes", "no"]
quorum = 1
[panels.split_pessimist]
judges = ["yes", "no"]
quorum = 1
on_tie = "incorrect"
"#,
    )
    .await;
    // yes and no disagree, down failed: 1-1 with quorum 2 met, a tie: unscored.
    let (_, body) = app
        .post("/v1/judge/binary", &item("4", "two_of_three"))
        .await;
    assert_eq!(body["verdict"], "unscored", "{body}");
    assert_eq!(body["unscored_reason"], "panel_tie");
    let down = &body["panel"]["judges"][2];
    assert_eq!(down["status"], "error", "{down}");
    assert_eq!(down["error"]["code"], "all_providers_failed");
    assert!(down["verdict"].is_null());
    assert_eq!(body["panel"]["voted"], 2);
    // Quorum 2 with one judge down: not met.
    let (status, body) = app.post("/v1/judge/binary", &item("4", "strict")).await;
    assert_eq!(status, 200);
    assert_eq!(body["verdict"], "unscored", "{body}");
    assert_eq!(body["unscored_reason"], "quorum_not_met");
    assert!(body["confidence"].is_null());
    assert_eq!(body["confidence_source"], "none");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("1 of 2 judges") && reason.contains("down"),
        "{reason}"
    );
    let (_, body) = app.post("/v1/judge/binary", &item("4", "split")).await;
    assert_eq!(body["unscored_reason"], "panel_tie");
    let (_, body) = app
        .post("/v1/judge/binary", &item("4", "split_pessimist"))
        .await;
    assert_eq!(body["verdict"], "incorrect", "{body}");
}

#[tokio::test]
async fn panels_work_in_batches_and_jobs_with_per_judge_figures_and_fleiss_kappa() {
    let (app, _server, _seen) = app_with(
        r#"
a = ["p:vote-a"]
b = ["p:vote-b"]
c = ["p:vote-c"]
[panels.trio]
judges = ["a", "b", "c"]
"#,
    )
    .await;
    // Votes per item (a, b, c): every judge's accuracy and the panel's kappa follow from them.
    let votes = [
        (1, 1, 1),
        (1, 1, 0),
        (0, 0, 0),
        (0, 1, 0),
        (1, 1, 1),
        (0, 0, 1),
    ];
    let items: Vec<Value> = votes
        .iter()
        .enumerate()
        .map(|(i, (a, b, c))| {
            json!({"question": "q", "answer": "4", "prediction": format!("a={a} b={b} c={c} #{i}")})
        })
        .collect();
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"kind": "binary", "judge": "trio", "items": items}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let summary = &body["summary"];
    assert_eq!(summary["correct"], 3, "{summary}");
    assert_eq!(summary["incorrect"], 3);
    let trio = &summary["panels"]["trio"];
    assert_eq!(trio["items"], 6);
    let judges = trio["judges"].as_array().unwrap();
    assert_eq!(judges[0]["judge"], "a");
    assert_eq!(judges[0]["accuracy"], 0.5);
    assert!((judges[1]["accuracy"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-5);
    assert!((judges[2]["accuracy"].as_f64().unwrap() - 3.0 / 6.0).abs() < 1e-5);
    // Fleiss' kappa by hand: per item agreement (1, 1/3, 1, 1/3, 1, 1/3) -> P = 2/3;
    // shares of "correct": (1, 2/3, 0, 1/3, 1, 1/3) -> p = 5/9, P_e = (5/9)^2 + (4/9)^2 = 41/81.
    let expected = (2.0 / 3.0 - 41.0 / 81.0) / (1.0 - 41.0 / 81.0);
    let kappa = trio["fleiss_kappa"].as_f64().unwrap();
    assert!((kappa - expected).abs() < 1e-5, "{kappa} vs {expected}");
    // /metrics has the panel's agreement on each of the six items: three unanimous (1), three
    // two-to-one (2/3, under the 0.67 bucket's bound).
    let metrics = app.get("/metrics").await.1;
    let panel = "panel=\"trio\"";
    assert_eq!(
        metric(&metrics, "llm_judge_panel_agreement_count", panel),
        6.0,
        "{metrics}"
    );
    let two_thirds = "panel=\"trio\",le=\"0.67\"";
    assert_eq!(
        metric(&metrics, "llm_judge_panel_agreement_bucket", two_thirds),
        3.0,
        "{metrics}"
    );
    // A batch item may name the panel itself, and so may a job.
    let (_, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"items": [json!({"question": "q", "answer": "4", "prediction": "a=1 b=0 c=1", "judge": "trio"})]}),
        )
        .await;
    assert_eq!(body["results"][0]["verdict"], "correct", "{body}");
    assert_eq!(body["results"][0]["panel"]["name"], "trio");
    let (status, job) = app
        .post(
            "/v1/jobs",
            &json!({"kind": "binary", "judge": "trio", "items": [json!({"question": "q", "answer": "4", "prediction": "a=0 b=0 c=1"})]}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let mut finished = Value::Null;
    for _ in 0..200 {
        let (_, text) = app.get(&format!("/v1/jobs/{id}")).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["status"] == "completed" {
            finished = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(finished["summary"]["incorrect"], 1, "{finished}");
    assert_eq!(finished["summary"]["panels"]["trio"]["items"], 1);
}

#[tokio::test]
async fn panel_configuration_mistakes_are_named() {
    let bad = [
        ("[panels.x]\njudges = [\"rules\"]\n", "from 2 to"),
        (
            "[panels.x]\njudges = [\"rules\", \"nobody\"]\n",
            "judges[1]",
        ),
        (
            "[panels.x]\njudges = [\"rules\", \"rules\"]\n",
            "listed twice",
        ),
        (
            "[panels.rules]\njudges = [\"rules\", \"rules:rules\"]\n",
            "a route is also named",
        ),
        (
            "[panels.x]\njudges = [\"rules\", \"rules:rules\"]\nquorum = 3\n",
            "panels.x.quorum",
        ),
        (
            "[panels.x]\njudges = [\"rules\", \"rules:rules\", \"y\"]\nescalate = true\n[panels.y]\njudges = [\"rules\", \"rules:rules\"]\n",
            "is a panel",
        ),
        (
            "[panels.x]\njudges = [\"rules\", \"rules:rules\"]\nescalate = true\n",
            "at least 3",
        ),
        (
            "[panels.x]\njudges = [\"rules\", \"rules:rules\", \"rules:again\"]\nescalate = true\naggregate = \"mean\"\n",
            "majority",
        ),
        (
            "[panels.x]\njudges = [\"rules\", \"rules:rules\"]\naggregate = \"vote\"\n",
            "vote",
        ),
        (
            "[routes]\nx = { steps = [\"rules\"], structurd = true }\n",
            "structurd",
        ),
        (
            "[routes]\nx = { steps = [\"rules\"], confidence = \"vibes\" }\n",
            "vibes",
        ),
    ];
    for (toml, says) in bad {
        let e = llm_judge::config::Settings::from_sources(llm_judge::config::Sources {
            file: None,
            toml: Some(toml),
            env: Vec::new(),
        })
        .err()
        .unwrap_or_else(|| panic!("accepted:\n{toml}"))
        .to_string();
        assert!(e.contains(says), "{toml}\n-> {e}");
    }
    // A panel may be the default judge.
    let s = settings(
        "[judge]\ndefault_route = \"jury\"\n[panels.jury]\njudges = [\"rules\", \"rules:rules\"]\n",
        &[],
    );
    assert!(s.panels.contains_key("jury") && !s.routes.contains_key("jury"));
    let app = spawn_settings(s).await;
    let (_, body) = app
        .post(
            "/v1/judge/binary",
            &json!({"question": "q", "answer": "4", "prediction": "4"}),
        )
        .await;
    assert_eq!(body["provider"], "panel", "{body}");
    assert_eq!(body["panel"]["agreement"], 1.0);
}
