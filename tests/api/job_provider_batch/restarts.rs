//! Provider batches across a SIGKILL of the service: the restarted service polls the same batch
//! and keeps the job's spend, and a batch whose creation was cut off (its answer lost, or the
//! service killed while making it) is found at the provider instead of made again.

use super::*;

/// The service as a process on `port` with the configuration `toml` and jobs in `data`.
fn serve(port: u16, data: &std::path::Path, toml: &str) -> std::process::Child {
    let file = data.join("llm-judge.toml");
    std::fs::write(&file, toml).unwrap();
    let mut cmd = serve_command(port, data);
    cmd.arg("--config").arg(&file);
    cmd.spawn().unwrap()
}

/// Kills the service (SIGKILL), starts it again on the same data and configuration, and waits
/// until job `id` completes: its final state and its results.
async fn kill_and_finish(
    mut server: std::process::Child,
    port: u16,
    data: &std::path::Path,
    toml: &str,
    id: &str,
) -> (Value, Vec<Value>) {
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = serve(port, data, toml);
    wait_up(&client, &base).await;
    let done = wait_job(&client, &base, id, |v| v["status"] == "completed").await;
    let all = results(&client, &base, id).await;
    server.kill().unwrap();
    server.wait().unwrap();
    (done, all)
}

#[tokio::test]
async fn a_killed_service_resumes_polling_the_same_batch_and_keeps_the_jobs_spend() {
    let a = Standin::judging(&["--batch-delay-ms", "3000"]);
    let b = Standin::judging(&[]);
    // Items naming `online` go to a provider without a batch API.
    let extra = format!(
        "[providers.q]\nkind = \"together\"\nbase_url = \"{}/v1\"\napi_key = \"sk-q\"\n[routes.online]\nsteps = [\"q:{MODEL}\"]\n",
        b.base
    );
    let toml = config("anthropic", &a, &format!("\"p:{MODEL}\""), &extra);
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = serve(port, data.path(), &toml);
    wait_up(&client, &base).await;
    let mut list = items(240);
    for item in list.iter_mut().take(40) {
        item["judge"] = json!("online");
    }
    let id = submit(
        &client,
        &base,
        &json!({"items": list, "provider_batch": true, "max_tokens": 10_000_000}),
    )
    .await;
    // Killed once the online items are stored and the batch runs.
    wait_job(&client, &base, &id, |v| {
        v["progress"]["provider_batches"][0]["phase"] == "in_progress"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while results(&client, &base, &id).await.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "the online items were not stored"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (done, all) = kill_and_finish(server, port, data.path(), &toml, &id).await;
    let stats = a.stats().await;
    assert_eq!(
        stats["batches"]["anthropic"]["batches_created"], 1,
        "{stats}"
    );
    assert_eq!(stats["calls"], 0, "{stats}");
    assert_eq!(b.stats().await["calls"], 40);
    let summary = &done["summary"];
    assert_eq!(
        summary["delivery"],
        json!({"provider_batch": 200, "online": 40}),
        "{summary}"
    );
    // The budget counts what was spent before the kill too.
    assert_eq!(summary["budget"]["spent_tokens"], 240 * 309, "{summary}");
    assert_eq!(summary["budget"]["exhausted"], false);
    let batch = done["progress"]["provider_batches"][0]["id"].clone();
    assert_eq!(all.len(), 240);
    for r in &all[40..] {
        assert_eq!(r["provider_batch"], batch, "{r}");
        assert_eq!(r["verdict"], "correct");
    }
}

/// The answer to a batch's creation is lost (the stand-in makes the batch and answers after
/// the service's timeout): the service finds the batch by its input file and uses it; it does
/// not send the items online as well, which would bill each of them twice.
#[tokio::test]
async fn a_batch_whose_creation_answer_is_lost_is_found_and_used() {
    let s = Standin::judging(&["--batch-delay-ms", "300", "--batch-create-stall-ms", "3000"]);
    let toml = config("openai", &s, &format!("\"p:{MODEL}\""), "")
        .replace("batch_poll_s = 0.02", "batch_poll_s = 0.02\ntimeout_s = 1");
    let app = spawn(&toml, &[]).await;
    let base = format!("http://{}", app.addr);
    let (id, done) =
        completed_job(&app, &json!({"items": items(50), "provider_batch": true})).await;
    let stats = s.stats().await;
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
    assert!(
        stats["batches"]["openai"]["lists"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(stats["calls"], 0, "nothing sent online: {stats}");
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": 50, "online": 0}),
        "{done}"
    );
    for r in results(&app.client, &base, &id).await {
        assert_eq!(r["verdict"], "correct", "{r}");
        assert!(r["provider_batch"].is_string(), "{r}");
    }
}

/// The service is killed after the provider made a batch and before its id was stored (the
/// creation's answer is still on its way): the restarted service finds the batch by the job's
/// label and polls it; the stand-in saw one batch made and no online call.
#[tokio::test]
async fn a_service_killed_while_a_batch_is_made_finds_that_batch_after_the_restart() {
    let s = Standin::judging(&[
        "--batch-delay-ms",
        "500",
        "--batch-create-stall-ms",
        "20000",
    ]);
    let toml = config("openai", &s, &format!("\"p:{MODEL}\""), "");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = serve(port, data.path(), &toml);
    wait_up(&client, &base).await;
    let id = submit(
        &client,
        &base,
        &json!({"items": items(60), "provider_batch": true}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats().await["batches"]["openai"]["batches_created"] != 1 {
        assert!(Instant::now() < deadline, "no batch was made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Made at the provider, its answer not yet back: nothing of it is stored.
    let state = job_state(&client, &base, &id).await;
    assert!(state["progress"]["provider_batches"].is_null(), "{state}");
    let (done, all) = kill_and_finish(server, port, data.path(), &toml, &id).await;
    let stats = s.stats().await;
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
    assert_eq!(stats["calls"], 0, "nothing sent online: {stats}");
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": 60, "online": 0}),
        "{done}"
    );
    let shown = &done["progress"]["provider_batches"];
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(all.len(), 60);
    for r in &all {
        assert_eq!(r["provider_batch"], shown[0]["id"], "{r}");
        assert_eq!(r["verdict"], "correct", "{r}");
    }
}
