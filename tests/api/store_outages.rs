//! A streamed answer that the job store cannot finish says so: it asks the store again for a
//! while (a stall rides through whole), then ends without its last chunk, never as a short list
//! that looks complete.

use std::time::Duration;

use crate::support::*;
use futures::StreamExt;
use serde_json::json;

const N: usize = 10_000;

/// A finished job of `N` items over `redis`; its id.
async fn finished_job(app: &TestApp) -> String {
    let (status, job) = app
        .post(
            "/v1/jobs",
            &json!({"items": items(N), "max_concurrent": 64}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    for _ in 0..1200 {
        let v = get_json(&app.client, &app.url(&format!("/v1/jobs/{id}")))
            .await
            .unwrap();
        if v["status"] == "completed" {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job did not finish");
}

/// Reads `GET /v1/jobs/{id}/results`; once the first line has arrived, `meanwhile` runs. The
/// lines read, and whether the body ended properly.
async fn read_results(app: &TestApp, id: &str, meanwhile: impl FnOnce()) -> (usize, bool) {
    let resp = app
        .client
        .get(app.url(&format!("/v1/jobs/{id}/results")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut meanwhile = Some(meanwhile);
    let mut lines = 0;
    let reading = async {
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return false;
            };
            lines += chunk.iter().filter(|b| **b == b'\n').count();
            if let Some(f) = meanwhile.take() {
                f();
            }
        }
        true
    };
    let whole = tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("the stream ended, one way or the other");
    (lines, whole)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_is_ridden_through_and_a_lost_one_cuts_the_stream_short() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let config = format!("[redis]\nurl = \"{}\"\ntimeout_ms = 300\n", redis.url());
    let app = spawn(&config, &[]).await;
    let id = finished_job(&app).await;

    // Frozen for 1.5 s after the first page: every line arrives, and the body ends properly.
    let mut stall = None;
    let (lines, whole) = read_results(&app, &id, || {
        stall = Some(redis.stall(Duration::from_millis(1500)));
    })
    .await;
    stall.expect("the stall began").join().unwrap();
    assert_eq!((lines, whole), (N, true));

    // Gone for good after the first page: the body breaks off instead of ending as if whole.
    let (lines, whole) = read_results(&app, &id, || redis.stop()).await;
    assert!(
        !whole,
        "a short list must not look complete ({lines} lines)"
    );
    assert!(lines < N, "{lines} lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_whose_store_is_gone_ends_with_an_error_event() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (base, _) = counting_standin("Verdict: 1", Duration::from_millis(200)).await;
    let config = format!(
        "[redis]\nurl = \"{}\"\ntimeout_ms = 300\n[providers.p]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key = \"sk-x\"\n[routes]\ndefault = [\"p:m\"]\n",
        redis.url()
    );
    let app = spawn(&config, &[]).await;
    let (status, job) = app
        .post(
            "/v1/jobs",
            &json!({"items": items(1000), "max_concurrent": 2}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let resp = app
        .client
        .get(app.url(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut stopped = false;
    let read = async {
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if !stopped && text.contains("event: progress") {
                redis.stop();
                stopped = true;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ended");
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("store_unavailable"), "{text}");
    assert!(
        !text.contains("event: summary"),
        "the job did not end: {text}"
    );
}
