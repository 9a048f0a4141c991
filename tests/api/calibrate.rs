//! Calibration end to end: `POST /v1/calibrate` with the rules judge and a panel, bad requests,
//! runs kept and listed, and `llm-judge calibrate` on the shipped gold set with its CI gate.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use serde_json::{Value, json};

const PANEL: &str = r#"
[panels.pair]
judges = ["rules", "rules:rules"]
"#;

fn labelled() -> Value {
    json!([
        {"id": "a", "group": "math", "question": "2+2?", "answer": "4", "prediction": "4", "label": "correct"},
        {"id": "b", "group": "math", "question": "2+3?", "answer": "5", "prediction": "6", "label": "incorrect"},
        {"id": "c", "group": "math", "question": "2+4?", "answer": "6", "prediction": "six", "label": 1},
        {"id": "d", "group": "fact", "question": "Capital of France?", "answer": "Paris", "prediction": "Lyon", "label": "incorrect"},
        // The rules judge gets this one wrong: an alias it cannot know.
        {"id": "e", "group": "fact", "question": "Who wrote Tom Sawyer?", "answer": "Mark Twain", "prediction": "Samuel Clemens", "label": "correct"},
        {"id": "f", "group": "fact", "question": "Why is the sky blue?", "answer": "Rayleigh scattering", "prediction": "Because of how air scatters light.", "label": "correct"},
        {"question": "", "answer": "x", "prediction": "y", "label": "correct"},
        {"question": "q", "answer": "x", "prediction": "y", "label": "maybe"}
    ])
}

#[tokio::test]
async fn calibrate_reports_agreement_and_keeps_the_run() {
    let app = spawn(PANEL, &[]).await;
    let (status, body) = app
        .post(
            "/v1/calibrate",
            &json!({"kind": "binary", "judges": ["rules", "pair"], "items": labelled(),
                    "name": "smoke", "include_items": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], 6);
    let invalid = body["invalid_items"].as_array().unwrap();
    assert_eq!(invalid.len(), 2);
    assert_eq!(invalid[0]["field"], "items[6].question");
    assert_eq!(invalid[1]["field"], "items[7].label");
    assert_eq!(body["label_counts"], json!({"correct": 4, "incorrect": 2}));
    let rules = &body["judges"][0];
    assert_eq!(rules["judge"], "rules");
    assert_eq!(rules["items"], 6);
    // f is unscored (free-form); a, b, c, d are right and e is wrong.
    assert_eq!(
        (rules["graded"].as_u64(), rules["unscored"].as_u64()),
        (Some(5), Some(1)),
        "{rules}"
    );
    assert_eq!(
        rules["confusion"]["labels"],
        json!(["correct", "incorrect"])
    );
    assert_eq!(rules["confusion"]["matrix"], json!([[2, 1], [0, 2]]));
    assert_eq!(rules["accuracy"], 0.8);
    // po = 0.8, pe = 0.6 * 0.4 + 0.4 * 0.6 = 0.48.
    assert_eq!(
        rules["cohen_kappa"],
        ((0.8 - 0.48) / 0.52 * 1e6_f64).round() / 1e6
    );
    assert_eq!(rules["base_rate"], 0.6);
    assert_eq!(rules["predicted_rate"], 0.4);
    assert_eq!(rules["recall"], ((2.0 / 3.0) * 1e6_f64).round() / 1e6);
    assert_eq!(rules["precision"], 1.0);
    assert_eq!(
        rules["unscored_rate"],
        ((1.0 / 6.0) * 1e6_f64).round() / 1e6
    );
    assert_eq!(rules["groups"]["math"]["accuracy"], 1.0, "{rules}");
    let math = rules["groups"]["math"]["accuracy_interval"]
        .as_array()
        .unwrap();
    assert!(math[0].as_f64() < Some(1.0) && math[1] == 1.0, "{math:?}");
    assert_eq!(rules["groups"]["math"]["items"], 3);
    assert_eq!(rules["groups"]["fact"]["accuracy"], 0.5);
    // The panel of two rules judges agrees with itself perfectly.
    let pair = &body["judges"][1];
    assert_eq!(pair["judge"], "pair");
    assert_eq!(pair["panel"]["members"].as_array().unwrap().len(), 2);
    assert_eq!(pair["panel"]["fleiss_kappa"], 1.0, "{pair}");
    assert_eq!(pair["accuracy"], rules["accuracy"]);
    // Per item: the label and every judge's verdict, with the client's id.
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(results[2]["id"], "c");
    assert_eq!(results[2]["label"], "correct");
    assert_eq!(results[2]["verdicts"]["rules"]["verdict"], "correct");
    assert_eq!(results[2]["verdicts"]["rules"]["agrees"], true);
    assert_eq!(body["stored"], true);
    // The run is listed, newest first, and can be followed for one judge.
    let (_, again) = app
        .post(
            "/v1/calibrate",
            &json!({"judges": ["rules"], "items": labelled(), "name": "second"}),
        )
        .await;
    assert_eq!(
        again["dataset"], body["dataset"],
        "same gold set, same digest"
    );
    let (status, text) = app.get("/v1/calibrate/runs?judge=pair").await;
    assert_eq!(status, 200, "{text}");
    let runs: Value = serde_json::from_str(&text).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "only the run that measured pair");
    assert_eq!(runs[0]["name"], "smoke");
    assert_eq!(runs[0]["judges"].as_array().unwrap().len(), 1);
    assert!(runs[0].get("results").is_none());
    assert_eq!(runs[0]["invalid_items"], 2);
    let (_, text) = app
        .get(&format!(
            "/v1/calibrate/runs?judge=rules&dataset={}",
            body["dataset"].as_str().unwrap()
        ))
        .await;
    let runs: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["second", "smoke"]);
    let (status, _) = app.get("/v1/calibrate/runs?bogus=1").await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn calibration_requests_that_cannot_run_are_named_4xx() {
    let app = spawn("", &[]).await;
    let item = json!({"question": "q", "answer": "4", "prediction": "4", "label": "correct"});
    for (body, code, field) in [
        (
            json!({"judges": [], "items": [item]}),
            "invalid_field",
            "judges",
        ),
        (
            json!({"judges": ["nobody"], "items": [item]}),
            "unknown_judge",
            "judges[0]",
        ),
        (
            json!({"judges": ["rules", "rules"], "items": [item]}),
            "invalid_field",
            "judges[1]",
        ),
        (
            json!({"judges": ["rules"], "items": []}),
            "invalid_field",
            "items",
        ),
        (
            json!({"judges": ["rules"], "items": [{"question": "q", "answer": "4", "prediction": "4"}]}),
            "invalid_field",
            "items[0].label",
        ),
        (
            json!({"judges": ["rules"], "items": [json!({"question": "q", "answer": "4", "prediction": "4", "label": 1, "judge": "rules"})]}),
            "invalid_field",
            "items[0].judge",
        ),
        (
            json!({"judges": ["rules"], "items": [item], "extra": 1}),
            "invalid_field",
            "extra",
        ),
        (
            json!({"judges": ["rules"], "items": [item], "kind": "vibes"}),
            "invalid_field",
            "kind",
        ),
        (
            json!({"judges": ["rules"], "items": [item], "max_concurrent": 0}),
            "invalid_field",
            "max_concurrent",
        ),
    ] {
        let (status, answer) = app.post("/v1/calibrate", &body).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} -> {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
    }
    let (status, answer) = app.post_raw("/v1/calibrate", "{not json").await;
    assert_eq!(status, 400, "{answer}");
}

/// `llm-judge calibrate` on the shipped gold set with the rules judge (no keys): the figures the
/// README reports, and the kappa gate's exit codes.
#[test]
fn the_gold_set_runs_through_calibrate_and_the_readme_reports_its_figures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_llm-judge"))
            .arg("calibrate")
            .arg("--input")
            .arg(root.join("examples/gold.jsonl"))
            .args(["--judge", "rules", "--output"])
            .arg(&report)
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run llm-judge calibrate")
    };
    let out = run(&["--fail-under-kappa", "0.9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("judge rules:") && stderr.contains("kappa"),
        "{stderr}"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(
        r["items"].as_u64().unwrap() >= 200,
        "at least 200 labelled items"
    );
    assert_eq!(r["invalid_items"], json!([]));
    let j = &r["judges"][0];
    let line = format!(
        "| rules | {} | {} | {:.3} | {:.3} | {:.3} |",
        j["items"],
        j["graded"],
        j["accuracy"].as_f64().unwrap(),
        j["cohen_kappa"].as_f64().unwrap(),
        j["unscored_rate"].as_f64().unwrap()
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&line),
        "README.md must report the gold set's figures as they are now:\n{line}"
    );
    // Every group is in the report, with its own figures.
    for g in ["math", "fact", "multiple_choice", "free_form"] {
        assert!(j["groups"][g]["items"].as_u64().unwrap() > 20, "{g}");
    }
    let out = run(&["--fail-under-kappa", "0.999"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is below --fail-under-kappa 0.999"));
    let out = run(&["--kind", "score", "--fail-under-kappa", "0.5"]);
    assert_eq!(out.status.code(), Some(2), "kappa is not a score figure");
}

#[test]
fn calibrate_names_unreadable_lines_and_refuses_a_file_with_no_valid_item() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gold.jsonl");
    std::fs::write(
        &input,
        "{\"question\":\"2+2?\",\"answer\":\"4\",\"prediction\":\"4\",\"label\":\"correct\"}\nnot json\n\n{\"question\":\"2+2?\",\"answer\":\"4\",\"prediction\":\"5\",\"label\":\"incorrect\"}\n",
    )
    .unwrap();
    let report = dir.path().join("r.json");
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["calibrate", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&report)
        .arg("--data-dir")
        .arg(&data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["items"], 2);
    assert_eq!(r["invalid_items"][0]["index"], 1);
    assert!(
        r["invalid_items"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2:"),
        "{r}"
    );
    assert_eq!(r["judges"][0]["accuracy"], 1.0);
    assert_eq!(r["stored"], true, "{stderr}");
    assert!(data.join("calibration.redb").exists());
    std::fs::write(&input, "{\"question\":\"q\"}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .args(["calibrate", "--input"])
        .arg(&input)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item is valid"));
}
