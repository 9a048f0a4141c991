//! A job's provider batch that does not answer everything: failed and expired requests and the
//! deadline send their items online, a `DELETE` cancels the batch, and a job budget stops the
//! job without overspending.

use super::*;

#[tokio::test]
async fn failed_and_expired_batch_requests_finish_online_through_fallback() {
    // The batch provider's online API is down (every chat call 503); a second provider answers.
    let a = Standin::judging(&[
        "--batch-delay-ms",
        "200",
        "--batch-fail-pct",
        "5",
        "--batch-expire-pct",
        "3",
        "--fail-503",
        "100",
    ]);
    let b = Standin::judging(&[]);
    let extra = format!(
        "[providers.q]\nkind = \"together\"\nbase_url = \"{}/v1\"\napi_key = \"sk-q\"\n",
        b.base
    );
    let toml = config(
        "anthropic",
        &a,
        &format!("\"p:{MODEL}\", \"q:{MODEL}\""),
        &extra,
    )
    .replace("batch_poll_s", "max_attempts = 1\nbatch_poll_s");
    let app = spawn(&toml, &[]).await;
    let base = format!("http://{}", app.addr);
    let (id, done) =
        completed_job(&app, &json!({"items": items(200), "provider_batch": true})).await;
    let all = results(&app.client, &base, &id).await;
    assert_eq!(all.len(), 200);
    let (mut by_batch, mut online) = (0, 0);
    for r in &all {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["verdict"], "correct", "{r}");
        if r["provider_batch"].is_string() {
            by_batch += 1;
            assert_eq!(r["provider"], "p");
        } else {
            online += 1;
            // The batch's failure, p's online failure, then q's answer at the online price.
            assert_eq!(r["provider"], "q", "{r}");
            assert_eq!(r["fallback"], true, "{r}");
            let attempts = r["attempts"].as_array().unwrap();
            assert!(
                attempts[0]["error"]
                    .as_str()
                    .unwrap()
                    .contains("provider batch"),
                "{r}"
            );
            // p online: refused (503), or skipped once its circuit opened.
            assert_eq!(attempts[1]["provider"], "p", "{r}");
            assert_ne!(attempts[1]["outcome"], "ok", "{r}");
            assert!(close(r["cost_usd"].as_f64().unwrap(), ONLINE_COST), "{r}");
        }
    }
    // 5% errored and 3% expired, exactly (rounded), as the stand-in draws them.
    assert_eq!(online, 16, "{}", done["summary"]);
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": by_batch, "online": online})
    );
    let expected = by_batch as f64 * ONLINE_COST / 2.0 + online as f64 * ONLINE_COST;
    assert!(close(
        done["summary"]["cost_usd"].as_f64().unwrap(),
        expected
    ));
    let bs = b.stats().await;
    assert_eq!(bs["calls"], online, "{bs}");
    assert_eq!(
        a.stats().await["batches"]["anthropic"]["batches_created"],
        1
    );
}

#[tokio::test]
async fn the_deadline_cancels_the_batch_and_sends_the_rest_online() {
    // A batch that would take 20 s; the job gives it 1 s.
    let s = Standin::judging(&["--batch-delay-ms", "20000"]);
    let app = spawn(&config("openai", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    let started = Instant::now();
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(50), "provider_batch": true, "provider_batch_deadline_s": 1}),
    )
    .await;
    let done = wait_job(&app.client, &base, &id, |v| v["status"] == "completed").await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the job did not wait for the batch"
    );
    let all = results(&app.client, &base, &id).await;
    assert_eq!(all.len(), 50);
    let online = all
        .iter()
        .filter(|r| !r["provider_batch"].is_string())
        .count();
    assert!(all.iter().all(|r| r["status"] == "ok"), "{all:?}");
    // Requests the batch ran before the cancel keep their batch answer; the rest went online.
    assert!(online >= 40, "{online} online");
    let stats = s.stats().await;
    assert_eq!(stats["calls"], online, "{stats}");
    assert_eq!(stats["batches"]["openai"]["cancels"], 1, "{stats}");
    assert_eq!(done["summary"]["delivery"]["online"], online);
}

#[tokio::test]
async fn deleting_a_job_cancels_its_provider_batch() {
    let s = Standin::judging(&["--batch-delay-ms", "20000"]);
    let app = spawn(&config("anthropic", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(30), "provider_batch": true}),
    )
    .await;
    let running = wait_job(&app.client, &base, &id, |v| {
        v["progress"]["provider_batches"][0]["phase"] == "in_progress"
    })
    .await;
    let batch = running["progress"]["provider_batches"][0].clone();
    assert_eq!(batch["total"], 30, "{batch}");
    assert_eq!(batch["provider"], "p");
    // The job's progress events show the batch too.
    let mut events = app
        .client
        .get(format!("{base}/v1/jobs/{id}/events"))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let shown = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = events.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: progress") && seen.contains(batch["id"].as_str().unwrap()) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(shown, Ok(true), "{seen}");
    drop(events);
    let r = app
        .client
        .delete(format!("{base}/v1/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    wait_job(&app.client, &base, &id, |v| v["status"] == "cancelled").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = s.stats().await;
        if stats["batches"]["anthropic"]["cancels"] == 1 {
            assert_eq!(stats["calls"], 0, "nothing went online: {stats}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch was not cancelled: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_job_budget_stops_the_job_and_never_overspends() {
    let s = Standin::judging(&["--batch-delay-ms", "100"]);
    let app = spawn(&config("openai", &s, &format!("\"p:{MODEL}\""), ""), &[]).await;
    let base = format!("http://{}", app.addr);
    // Each item's estimate is its prompt and its whole max_tokens (512): about 20 fit.
    let limit = 12_000u64;
    let id = submit(
        &app.client,
        &base,
        &json!({"items": items(100), "provider_batch": true, "max_tokens": limit}),
    )
    .await;
    let done = wait_job(&app.client, &base, &id, |v| v["status"] == "completed").await;
    let all = results(&app.client, &base, &id).await;
    let ok = all.iter().filter(|r| r["status"] == "ok").count();
    let refused: Vec<usize> = all
        .iter()
        .filter(|r| r["error"]["code"] == "budget_exhausted")
        .map(|r| r["index"].as_u64().unwrap() as usize)
        .collect();
    assert!(
        ok > 0 && !refused.is_empty(),
        "ok {ok}, refused {}",
        refused.len()
    );
    assert_eq!(ok + refused.len(), 100);
    // Items are admitted in input order: the refused ones are the last.
    assert_eq!(refused, (ok..100).collect::<Vec<_>>());
    let budget = &done["summary"]["budget"];
    assert_eq!(budget["exhausted"], true, "{budget}");
    assert_eq!(budget["not_sent"], refused.len());
    assert_eq!(budget["spent_tokens"], ok as u64 * 309);
    assert!(
        budget["spent_tokens"].as_u64().unwrap() <= limit,
        "{budget}"
    );
    let stats = s.stats().await;
    assert_eq!(stats["calls"], 0);
}
