//! The label-corrected accuracy end to end: binary items with a person's `label` on some of them,
//! through the batch endpoint and a job. Each result echoes its label, and the summary's
//! `corrected_accuracy` is the same from the batch as from the job, whose summary is recounted
//! from its stored results.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Items the rules judge grades (numbers), some labelled: the label disagrees with the judge on
/// items 3 and 7 (the judge is wrong there, by the labels).
fn labelled_items() -> Vec<Value> {
    (0..12)
        .map(|i| {
            let right = i % 3 != 0;
            let prediction = if right { format!("{}", i + 1) } else { format!("{}", i + 100) };
            let mut item = json!({"question": format!("What is {i} + 1?"), "answer": format!("{}", i + 1),
                "prediction": prediction});
            if i < 8 {
                let judged = if right { "correct" } else { "incorrect" };
                let label = match (i, judged) {
                    (3 | 7, "correct") => "incorrect",
                    (3 | 7, _) => "correct",
                    _ => judged,
                };
                item["label"] = json!(label);
            }
            item
        })
        .collect()
}

#[tokio::test]
async fn a_batch_and_a_job_with_labels_report_the_same_corrected_accuracy() {
    let app = spawn("[routes]\ndefault = [\"rules\"]\n", &[]).await;
    let body = json!({"items": labelled_items(), "judge": "rules"});
    let (status, batch) = app.post("/v1/judge/batch", &body).await;
    assert_eq!(status, 200, "{batch}");
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results[3]["label"], "correct", "{}", results[3]);
    assert!(results[10].get("label").is_none(), "{}", results[10]);
    let c = &batch["summary"]["corrected_accuracy"];
    assert_eq!(
        (c["labels"].as_u64(), c["unlabelled"].as_u64()),
        (Some(8), Some(4)),
        "{c}"
    );
    assert_eq!(c["method"], "ppi++");
    let estimate = c["estimate"].as_f64().unwrap();
    let [lo, hi] = [
        c["interval"][0].as_f64().unwrap(),
        c["interval"][1].as_f64().unwrap(),
    ];
    assert!(lo <= estimate && estimate <= hi, "{c}");

    let (status, job) = app.post("/v1/jobs", &body).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let mut done = Value::Null;
    for _ in 0..200 {
        let (_, text) = app.get(&format!("/v1/jobs/{id}")).await;
        done = serde_json::from_str(&text).unwrap();
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["summary"]["corrected_accuracy"], *c, "{done}");
}
