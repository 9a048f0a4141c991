//! `llm-judge run --provider-batch`: the items go as one provider batch to the stand-in, in
//! process or through a server's jobs.

use super::*;

/// The project's stand-in provider answering every item right, through its batch APIs too.
fn judging_standin() -> crate::support::standin::Standin {
    crate::support::standin::Standin::judging(&["--batch-delay-ms", "200"])
}

fn provider_batch_config(dir: &Path, standin: &crate::support::standin::Standin) -> PathBuf {
    let config = dir.join("batch.toml");
    std::fs::write(
        &config,
        format!(
            "[judge]\nrules_precheck = false\n[providers.openai]\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key = \"sk-test\"\nbatch_poll_s = 0.02\nbatch_poll_max_s = 0.1\n[routes]\ndefault = [\"openai:judge-model\"]\n[prices]\n\"judge-model\" = {{ prompt_per_mtok = 2.0, completion_per_mtok = 8.0 }}\n",
            standin.base
        ),
    )
    .unwrap();
    config
}

/// Every entry came from one provider batch, and the stand-in saw that batch and no online call.
async fn assert_one_batch(entries: &[Value], n: usize, standin: &crate::support::standin::Standin) {
    assert_eq!(entries.len(), n);
    assert!(by_index(entries).values().all(|v| v == "correct"));
    let batch = entries[0]["provider_batch"].clone();
    assert!(batch.is_string(), "{}", entries[0]);
    for e in entries {
        assert_eq!(e["provider_batch"], batch, "{e}");
    }
    let stats = standin.stats().await;
    assert_eq!(stats["calls"], 0, "{stats}");
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
}

/// `llm-judge run --provider-batch` on 60 items with `args` besides: its entries.
async fn provider_batch_run(dir: &Path, args: &[&str]) -> Vec<Value> {
    let input = dir.join("in.jsonl");
    write_items(&input, &binary_items(60));
    let out = dir.join("out.jsonl");
    let mut all = vec![
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--provider-batch",
    ];
    all.extend_from_slice(args);
    let r = run(&all, &[]).await;
    assert!(r.status.success(), "{}", r.stderr);
    read_lines(&out)
}

#[tokio::test]
async fn provider_batch_runs_send_the_items_as_one_provider_batch_in_process() {
    let standin = judging_standin();
    let dir = tempfile::tempdir().unwrap();
    let config = provider_batch_config(dir.path(), &standin);
    let entries = provider_batch_run(dir.path(), &["--config", path_str(&config)]).await;
    assert_one_batch(&entries, 60, &standin).await;
}

#[tokio::test]
async fn provider_batch_runs_go_through_a_servers_jobs() {
    let standin = judging_standin();
    let dir = tempfile::tempdir().unwrap();
    let config = provider_batch_config(dir.path(), &standin);
    let (_server, url) = spawn_server(&[], Some(&config)).await;
    let entries = provider_batch_run(dir.path(), &["--server", &url]).await;
    assert!(
        entries
            .iter()
            .all(|e| e["line"].as_u64() == Some(e["index"].as_u64().unwrap() + 1))
    );
    assert_one_batch(&entries, 60, &standin).await;
    // The run went as a job.
    let jobs: Value = reqwest::get(format!("{url}/v1/jobs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
}
