//! Budgets under concurrency: a batch or a job with many items in flight stops at what its
//! items spent, not at what their estimates reserved.

use std::time::Duration;

use serde_json::{Value, json};

use super::{config, items};
use crate::support::*;

/// Each item's estimate (its prompt and its whole `max_tokens` of 900) is far above what it
/// uses (128 tokens): with many items in flight, the estimates alone fill the budget.
fn generous(base: &str) -> String {
    config(base, "").replace("max_tokens = 16", "max_tokens = 900")
}

/// The ok entries come first, then `budget_exhausted` ones; what the ok ones spent is within
/// `limit`, and the first refused item could not have fitted beside it: the budget was spent,
/// not merely reserved.
fn spent_not_reserved(results: &[Value], limit: u64) -> usize {
    let sent = results.iter().take_while(|r| r["status"] == "ok").count();
    assert!(sent < results.len(), "the budget stopped the work");
    let spent: u64 = results[..sent]
        .iter()
        .map(|r| {
            r["usage"]["prompt_tokens"].as_u64().unwrap()
                + r["usage"]["completion_tokens"].as_u64().unwrap()
        })
        .sum();
    assert!(spent <= limit, "spent {spent} of {limit}");
    let first = &results[sent];
    assert_eq!(first["error"]["code"], "budget_exhausted", "{first}");
    let message = first["error"]["message"].as_str().unwrap();
    let estimate: u64 = message
        .split("may use up to ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no estimate in {message:?}"));
    assert!(
        spent + estimate > limit,
        "refused with room left: {spent} spent, {estimate} asked, {limit} in all"
    );
    for r in &results[sent..] {
        assert_eq!(r["error"]["code"], "budget_exhausted", "{r}");
    }
    sent
}

#[tokio::test]
async fn a_batch_under_concurrency_stops_at_what_it_spent_not_at_what_it_reserved() {
    let (base, _) = counting_standin("Verdict: 1", Duration::from_millis(20)).await;
    let app = spawn(&generous(&base), &[]).await;
    let limit = 5_000;
    let body = json!({"items": items(100), "max_concurrent": 50, "max_tokens": limit});
    let (status, answer) = app.post("/v1/judge/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
    let sent = spent_not_reserved(answer["results"].as_array().unwrap(), limit);
    // About 30 fit by what they use; their estimates alone would have let 4 through.
    assert!(sent >= 20, "only {sent} judged");
}

#[tokio::test]
async fn a_job_under_concurrency_stops_at_what_it_spent_not_at_what_it_reserved() {
    let (base, _) = counting_standin("Verdict: 1", Duration::from_millis(20)).await;
    let app = spawn(&generous(&base), &[]).await;
    let limit = 5_000;
    let body = json!({"items": items(100), "max_concurrent": 50, "max_tokens": limit});
    let (status, job) = app.post("/v1/jobs", &body).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    for _ in 0..400 {
        let v = get_json(&app.client, &app.url(&format!("/v1/jobs/{id}")))
            .await
            .unwrap();
        if v["status"] == "completed" {
            let text = get_text(&app.client, &app.url(&format!("/v1/jobs/{id}/results"))).await;
            let results = ndjson(&text);
            assert_eq!(results.len(), 100);
            let sent = spent_not_reserved(&results, limit);
            assert!(sent >= 20, "only {sent} judged");
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the job did not finish");
}
