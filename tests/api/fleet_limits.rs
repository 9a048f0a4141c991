//! Limits shared by a fleet through Redis: three replicas (processes) and one quota, and what
//! happens when Redis stops and comes back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

/// An OpenAI stand-in on a loopback port that notes when each call arrived; returns its base URL
/// (with `/v1`) and the arrivals.
async fn clocked_standin() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let a = arrivals.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let a = a.clone();
            async move {
                a.lock().unwrap().push(Instant::now());
                tokio::time::sleep(Duration::from_millis(10)).await;
                axum::Json(openai_answer("Verdict: 1"))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), arrivals)
}

/// The rate after the first window's burst: (calls - limit) / (last arrival - first arrival).
fn sustained_rate(arrivals: &[Instant], limit: usize) -> f64 {
    let first = arrivals.iter().min().unwrap();
    let last = arrivals.iter().max().unwrap();
    (arrivals.len() - limit) as f64 / last.duration_since(*first).as_secs_f64()
}

fn batch(n: usize, tag: &str) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("{tag}-{i}"),"options":{"cache":false}}))
        .collect();
    json!({"max_concurrent": 200, "items": items})
}

#[tokio::test]
async fn three_replicas_share_one_quota_and_use_all_of_it() {
    const R: usize = 30;
    const PER_REPLICA: usize = 60;
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (base, arrivals) = clocked_standin().await;
    let client = reqwest::Client::new();
    let env = [
        ("LLM_JUDGE__PROVIDERS__P__REQUESTS_PER_MINUTE", "30"),
        ("LLM_JUDGE__PROVIDERS__P__RATE_WINDOW_S", "1"),
        ("LLM_JUDGE__PROVIDERS__P__PERMIT_WAIT_S", "60"),
        ("LLM_JUDGE__PROVIDERS__P__DEADLINE_S", "120"),
        ("LLM_JUDGE__REDIS__EXPECTED_REPLICAS", "3"),
        ("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0"),
    ];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas = Vec::new();
    let mut bases = Vec::new();
    for d in &dirs {
        let port = free_port();
        replicas.push(serve_replica(port, d.path(), &base, &redis.url(), &env));
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    for b in &bases {
        wait_up(&client, b).await;
    }
    let started = Instant::now();
    let runs = bases.iter().enumerate().map(|(i, b)| {
        let client = client.clone();
        let url = format!("{b}/v1/judge/batch");
        async move {
            let r = client
                .post(url)
                .json(&batch(PER_REPLICA, &format!("r{i}")))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    });
    let answers = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    for mut r in replicas {
        let _ = r.kill();
        let _ = r.wait();
    }
    for a in &answers {
        assert_eq!(a["summary"]["correct"], PER_REPLICA, "{}", a["summary"]);
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let n = 3 * PER_REPLICA;
    assert_eq!(arrivals.len(), n);
    let busiest = busiest_window(&arrivals, Duration::from_secs(1));
    assert!(
        busiest <= R,
        "the provider saw {busiest} calls in one 1 s window from three replicas sharing a limit of {R}"
    );
    let rate = sustained_rate(&arrivals, R);
    eprintln!("three replicas: busiest window {busiest} of {R}, {rate:.1} calls/s, {elapsed:?}");
    assert!(
        rate >= 0.9 * R as f64,
        "the fleet got {rate:.1} calls/s of a {R}/s quota"
    );
    // At 0.9 R per second, n calls take at most n / (0.9 R) seconds, plus the start.
    assert!(
        elapsed <= Duration::from_secs_f64(n as f64 / (0.9 * R as f64) + 2.0),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_redis_outage_falls_back_to_local_shares_and_the_shared_limit_comes_back() {
    const R: usize = 20;
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (base, arrivals) = clocked_standin().await;
    let toml = format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{base}"
api_key = "sk-test"
requests_per_minute = {R}
rate_window_s = 1
permit_wait_s = 60
deadline_s = 120
[routes]
default = ["p:m"]
[redis]
url = "{}"
timeout_ms = 100
expected_replicas = 2
"#,
        redis.url()
    );
    let app = spawn(&toml, &[]).await;
    let metrics = || async { app.get("/metrics").await.1 };
    // A batch that takes about three windows; Redis is stopped during the second.
    let url = app.url("/v1/judge/batch");
    let client = app.client.clone();
    let run = tokio::spawn(async move {
        let r = client.post(url).json(&batch(60, "a")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals.lock().unwrap().len() < R + 5 {
        assert!(Instant::now() < deadline, "no progress before the outage");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.stop();
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the batch finishes on local limits")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["correct"], 60, "{}", body["summary"]);
    let text = metrics().await;
    assert!(
        metric(&text, "llm_judge_redis_errors_total", "") >= 1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "llm_judge_redis_up", ""), 0.0);
    assert_eq!(
        metric(&text, "llm_judge_rate_limit_shared", "provider=\"p\""),
        0.0
    );
    // During the outage, this replica held to its share: R / 2 in any window (after the last
    // shared grant's window has passed).
    let outage: Vec<Instant> = {
        let a = arrivals.lock().unwrap();
        let cut = a[R + 5] + Duration::from_millis(1100);
        a.iter().copied().filter(|t| *t >= cut).collect()
    };
    if !outage.is_empty() {
        let busiest = busiest_window(&outage, Duration::from_secs(1));
        assert!(
            busiest <= R / 2,
            "{busiest} calls in a window on local limits"
        );
    }

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&metrics().await, "llm_judge_redis_up", "") != 1.0 {
        assert!(Instant::now() < deadline, "redis_up did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the local windows empty, then a second batch on the shared limit again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    arrivals.lock().unwrap().clear();
    let (status, body) = app.post("/v1/judge/batch", &batch(60, "b")).await;
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["correct"], 60);
    let after = arrivals.lock().unwrap().clone();
    let busiest = busiest_window(&after, Duration::from_secs(1));
    assert!(
        busiest <= R,
        "{busiest} calls in one window after Redis came back"
    );
    let rate = sustained_rate(&after, R);
    assert!(
        rate >= 0.8 * R as f64,
        "{rate:.1}/s: more than the local share of {}/s, so the shared limit is in force",
        R / 2
    );
    assert_eq!(
        metric(
            &metrics().await,
            "llm_judge_rate_limit_shared",
            "provider=\"p\""
        ),
        1.0
    );
    let exists = redis.command(&["EXISTS", "llm-judge:rl:p:req"]).await;
    assert!(exists.starts_with(":1"), "{exists}");
}

#[tokio::test]
async fn a_model_limit_is_shared_too_and_binds_only_its_model() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (base, arrivals) = clocked_standin().await;
    let toml = format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{base}"
api_key = "sk-test"
requests_per_minute = 100
permit_wait_s = 0.2
[providers.p.model_limits."small"]
requests_per_minute = 2
[routes]
small = ["p:small"]
big = ["p:big"]
[redis]
url = "{}"
"#,
        redis.url()
    );
    // Two replicas: the model's limit is theirs together.
    let a = spawn(&toml, &[]).await;
    let b = spawn(&toml, &[]).await;
    let item = |judge: &str, i: usize| json!({"question":"q","answer":"a","prediction":format!("p{i}"),"judge":judge,"options":{"cache":false}});
    assert_eq!(a.post("/v1/judge/binary", &item("small", 0)).await.0, 200);
    assert_eq!(b.post("/v1/judge/binary", &item("small", 1)).await.0, 200);
    let (status, refused) = a.post("/v1/judge/binary", &item("small", 2)).await;
    assert_eq!(status, 502, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no rate-limit permit"),
        "{refused}"
    );
    for i in 0..5 {
        let who = if i % 2 == 0 { &a } else { &b };
        assert_eq!(who.post("/v1/judge/binary", &item("big", i)).await.0, 200);
    }
    assert_eq!(arrivals.lock().unwrap().len(), 7);
    let used = redis
        .command(&["GET", "llm-judge:rl:p:m:small:req:sum"])
        .await;
    assert!(used.contains("\r\n2\r\n"), "{used}");
}

#[tokio::test]
async fn with_redis_unreachable_local_judges_on_its_share_and_fail_refuses() {
    let (base, arrivals) = clocked_standin().await;
    // Nothing listens there: Redis is down from the start.
    let nowhere = format!("redis://127.0.0.1:{}/0", free_port());
    let toml = |mode: &str| {
        format!(
            r#"
[providers.p]
kind = "openai"
base_url = "{base}"
api_key = "sk-test"
requests_per_minute = 4
permit_wait_s = 0.2
[routes]
default = ["p:m"]
[redis]
url = "{nowhere}"
timeout_ms = 50
connect_timeout_ms = 50
on_redis_error = "{mode}"
expected_replicas = 2
"#
        )
    };
    let item = |i: usize| json!({"question":"q","answer":"a","prediction":format!("p{i}"),"options":{"cache":false}});
    let local = spawn(&toml("local"), &[]).await;
    assert_eq!(
        local.get("/readyz").await.0,
        200,
        "still ready: it judges on local shares"
    );
    // The share is 4 / 2 = 2 calls per window.
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(local.post("/v1/judge/binary", &item(i)).await.0);
    }
    assert_eq!(statuses, [200, 200, 502]);
    assert_eq!(arrivals.lock().unwrap().len(), 2);
    let text = local.get("/metrics").await.1;
    assert!(
        metric(&text, "llm_judge_redis_errors_total", "") >= 1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "llm_judge_redis_up", ""), 0.0);
    // Job endpoints need Redis: a clear 503, never a 500.
    let (status, body) = local.post("/v1/jobs", &json!({"items": [item(9)]})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    drop(local);

    let fail = spawn(&toml("fail"), &[]).await;
    let (status, body) = fail.post("/v1/judge/binary", &item(5)).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no rate-limit permit"),
        "{body}"
    );
    assert_eq!(
        arrivals.lock().unwrap().len(),
        2,
        "nothing sent without a permit"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while fail.get("/readyz").await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "readyz stays 200 with on_redis_error = fail"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
