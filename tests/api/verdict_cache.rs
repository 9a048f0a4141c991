//! The verdict cache's tiers: a verdict judged on one replica is a hit on another through
//! Redis, and the embedded tier on disk survives a restart of a single node.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

fn item(prediction: &str) -> Value {
    json!({"question": "What is 2+2?", "answer": "4", "prediction": prediction})
}

#[tokio::test]
async fn a_verdict_judged_on_one_replica_is_a_hit_on_another() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let provider = openai_standin("Verdict: 1").await;
    let client = reqwest::Client::new();
    let env = [
        ("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "1000"),
        ("LLM_JUDGE__REDIS__KEY_PREFIX", "cache-test"),
    ];
    let base = format!("{}/v1", provider.uri());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ports = [free_port(), free_port()];
    let mut replicas: Vec<_> = (0..2)
        .map(|i| serve_replica(ports[i], dirs[i].path(), &base, &redis.url(), &env))
        .collect();
    let [a, b] = ports.map(|p| format!("http://127.0.0.1:{p}"));
    wait_up(&client, &a).await;
    wait_up(&client, &b).await;
    let judge = |base: &str, body: Value| {
        let (client, url) = (client.clone(), format!("{base}/v1/judge/binary"));
        async move { post_json(&client, &url, &body).await }
    };
    let first = judge(&a, item("four")).await;
    assert_eq!(first["cached"], false, "{first}");
    assert_eq!(provider.received_requests().await.unwrap().len(), 1);
    // The shared tier is written after the answer: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys = redis.command(&["KEYS", "cache-test:vc:*"]).await;
        if keys.starts_with("*1") {
            break;
        }
        assert!(Instant::now() < deadline, "no verdict in Redis: {keys}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = judge(&b, item("four")).await;
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(second["result"], 1);
    assert_eq!(second["raw_response"], "Verdict: 1");
    assert_eq!(second["usage"]["prompt_tokens"], 0);
    assert_eq!(
        provider.received_requests().await.unwrap().len(),
        1,
        "the second replica called no provider"
    );
    let text = get_text(&client, &format!("{b}/metrics")).await;
    assert_eq!(
        metric(&text, "llm_judge_cache_hits_total", "tier=\"redis\""),
        1.0
    );
    assert_eq!(
        metric(&text, "llm_judge_cache_misses_total", "tier=\"memory\""),
        1.0
    );
    // Another prediction is another key, and options.cache = false skips every tier.
    let other = judge(&b, item("five")).await;
    assert_eq!(other["cached"], false);
    let mut no_cache = item("four");
    no_cache["options"] = json!({"cache": false});
    let fresh = judge(&b, no_cache).await;
    assert_eq!(fresh["cached"], false);
    assert_eq!(provider.received_requests().await.unwrap().len(), 3);
    for r in &mut replicas {
        let _ = r.kill();
        let _ = r.wait();
    }
}

#[tokio::test]
async fn the_embedded_tier_survives_a_restart_of_a_single_node() {
    let provider = openai_standin("Verdict: 0").await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let start = || {
        serve_process(port, data.path(), &provider, |c| {
            c.env("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "1000")
                .env("LLM_JUDGE__CACHE__DISK_MB", "16");
        })
    };
    let mut server = start();
    wait_up(&client, &base).await;
    let first = post_json(&client, &format!("{base}/v1/judge/binary"), &item("five")).await;
    assert_eq!(first["cached"], false, "{first}");
    assert_eq!(first["result"], 0);
    // Written within the writer's batch; then a hard stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(data.path().join("cache.redb").exists());

    let mut server = start();
    wait_up(&client, &base).await;
    let again = post_json(&client, &format!("{base}/v1/judge/binary"), &item("five")).await;
    let metrics = get_text(&client, &format!("{base}/metrics")).await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["result"], 0);
    assert_eq!(provider.received_requests().await.unwrap().len(), 1);
    assert_eq!(
        metric(&metrics, "llm_judge_cache_hits_total", "tier=\"disk\""),
        1.0
    );
}
