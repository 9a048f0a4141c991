//! A fleet rides out a provider outage together: three replicas on one Redis run one job; the
//! stand-in provider stops for 15 s in the middle (its port accepts and closes connections,
//! counted); every replica pauses the job and says so, none keeps calling the provider down
//! (no request storm), and once it is back the job ends with every item judged exactly once.

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::standin::{Standin, down_at};
use crate::support::*;

const N: u64 = 6_000;

/// The replica processes (killed when dropped), and their data directories (kept until then).
struct Replicas {
    children: Vec<Child>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn view(client: &reqwest::Client, base: &str, id: &str) -> Value {
    get_json(client, &format!("{base}/v1/jobs/{id}"))
        .await
        .expect("the job's view")
}

/// Three replicas on `redis`, judging with the stand-in at `provider_base`: the processes and
/// their base URLs.
async fn start(redis: &RedisServer, provider_base: &str) -> (Replicas, Vec<String>) {
    let env = [
        ("LLM_JUDGE__REDIS__CLAIM_IDLE_S", "2"),
        ("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0"),
        ("LLM_JUDGE__JUDGE__RULES_PRECHECK", "false"),
        ("LLM_JUDGE__SERVER__MAX_BATCH_ITEMS", "10000"),
    ];
    let mut bases = Vec::new();
    let mut children = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let p = free_port();
        children.push(serve_replica(
            p,
            d.path(),
            provider_base,
            &redis.url(),
            &env,
        ));
        bases.push(format!("http://127.0.0.1:{p}"));
        dirs.push(d);
    }
    let client = reqwest::Client::new();
    for b in &bases {
        wait_up(&client, b).await;
    }
    let replicas = Replicas {
        children,
        _dirs: dirs,
    };
    (replicas, bases)
}

/// The job's results, read from `base`: every index exactly once, each a verdict.
async fn every_index_once(client: &reqwest::Client, base: &str, id: &str) {
    let text = get_text(client, &format!("{base}/v1/jobs/{id}/results")).await;
    let mut seen = vec![0u32; N as usize];
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["status"], "ok", "{v}");
        seen[v["index"].as_u64().unwrap() as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "every index exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_pauses_for_a_provider_outage_and_the_job_completes_once_it_is_back() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let port = free_port();
    let mut provider = Standin::judging_on(port, &["--latency-ms", "20"]);
    let provider_base = format!("{}/v1", provider.base);
    let (_replicas, bases) = start(&redis, &provider_base).await;
    let client = reqwest::Client::new();
    let body = json!({"items": items(N as usize), "max_concurrent": 30});
    let accepted = post_json(&client, &format!("{}/v1/jobs", bases[0]), &body).await;
    let id = accepted["id"].as_str().expect("a job id").to_string();

    // Every replica takes part before the outage.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut working = 0;
        for b in &bases {
            let text = get_text(&client, &format!("{b}/metrics")).await;
            working += usize::from(metric(&text, "llm_judge_batch_items_total", "") > 0.0);
        }
        let v = view(&client, &bases[0], &id).await;
        if working == 3 && v["progress"]["done"].as_u64() >= Some(N / 10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas did not all work: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    drop(provider);
    let attempts = Arc::new(AtomicUsize::new(0));
    let down = down_at(port, attempts.clone());
    let outage = Instant::now();
    let mut paused = [false; 3];
    while outage.elapsed() < Duration::from_secs(15) {
        for (r, b) in bases.iter().enumerate() {
            let v = view(&client, b, &id).await;
            assert_eq!(v["status"], "running", "replica {r}: {v}");
            assert_eq!(
                v["progress"]["errors"], 0,
                "replica {r}: no item failed: {v}"
            );
            let text = get_text(&client, &format!("{b}/metrics")).await;
            if !v["progress"]["waiting"].is_null()
                && metric(&text, "llm_judge_jobs_waiting", "") == 1.0
            {
                paused[r] = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    down.abort();
    let _ = down.await;
    let tried = attempts.load(Ordering::Relaxed);
    assert_eq!(paused, [true; 3], "every replica said it waited");
    // Without the pause, 90 items in flight and retries would call thousands of times.
    assert!(
        tried < 300,
        "{tried} connection attempts at a provider down for 15 s, from three replicas"
    );
    provider = Standin::judging_on(port, &["--latency-ms", "20"]);

    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let v = view(&client, &bases[1], &id).await;
        if v["status"] == "completed" {
            break v;
        }
        assert!(Instant::now() < deadline, "the job did not complete: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let s = &done["summary"];
    assert_eq!(
        (s["errors"].as_u64(), s["correct"].as_u64()),
        (Some(0), Some(N)),
        "{s}"
    );
    every_index_once(&client, &bases[2], &id).await;
    for b in &bases {
        let text = get_text(&client, &format!("{b}/metrics")).await;
        assert_eq!(metric(&text, "llm_judge_jobs_waiting", ""), 0.0, "{b}");
    }
    let stats = provider.stats().await;
    assert!(stats["calls"].as_u64() > Some(0), "{stats}");
    println!("connection attempts while down: {tried}");
}
