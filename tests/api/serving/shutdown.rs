//! Shutdown: a batch cut by the end of the grace period says how many items were left, and idle
//! or half-sent connections are closed at once.

use super::*;

/// A server with a 1 s shutdown grace period over a provider answering in 300 ms, and 40
/// items (6 s of work at 2 at a time).
async fn slow_batch_with_short_grace() -> (Standin, TestApp, Vec<Value>) {
    let provider = standin("Verdict: 1".into(), Duration::from_millis(300)).await;
    let app = spawn(
        &provider_toml(&provider.base, "[server]\nshutdown_grace_s = 1\n"),
        &[],
    )
    .await;
    let items: Vec<Value> = (0..40)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("p{i}")}))
        .collect();
    (provider, app, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_streamed_when_the_grace_period_ends_says_how_many_items_were_left() {
    let (_provider, mut app, items) = slow_batch_with_short_grace().await;
    let mut resp = app
        .client
        .post(app.url("/v1/judge/batch"))
        .header("accept", "application/x-ndjson")
        .json(&json!({"max_concurrent": 2, "items": items, "progress_interval_ms": 60000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    // Wait for the first result, then shut down: 40 items at 2 per 300 ms take 6 s.
    while !text.contains('\n') {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .expect("a first line");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    app.begin_shutdown();
    let started = Instant::now();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the stream ends within 10 s")
        .unwrap_or(None)
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let judged = lines.iter().filter(|l| l["index"].is_u64()).count();
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["code"], "shutting_down", "{text}");
    assert_eq!(last["left"], 40 - judged, "{text}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{} of 40 items were not judged", 40 - judged)),
        "{last}"
    );
    assert!(judged > 0 && judged < 40, "{judged}");
    assert!(!text.contains("\"summary\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_batch_cut_by_shutdown_is_still_one_document_naming_the_items_left() {
    let (_provider, mut app, items) = slow_batch_with_short_grace().await;
    let pending = app
        .client
        .post(app.url("/v1/judge/batch"))
        .json(&json!({"max_concurrent": 2, "items": items}))
        .send();
    let (resp, ()) = tokio::join!(pending, async {
        tokio::time::sleep(Duration::from_millis(400)).await;
    });
    app.begin_shutdown();
    let body: Value = tokio::time::timeout(Duration::from_secs(10), resp.unwrap().json())
        .await
        .unwrap()
        .unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
    let left = results
        .iter()
        .filter(|r| r["error"]["code"] == "shutting_down")
        .count();
    assert!(left > 0 && left < 40, "{left} left");
    assert_eq!(body["summary"]["errors"], left);
}

#[tokio::test]
async fn shutdown_closes_idle_and_half_sent_connections_at_once() {
    let mut app = spawn(&server_toml("shutdown_grace_s = 10"), &[]).await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut idle).await.0, 200);
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let mut fresh = TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    app.begin_shutdown();
    let served = app.served.take().unwrap();
    tokio::time::timeout(Duration::from_secs(3), served)
        .await
        .expect("shutdown did not wait for the grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    for (name, tcp) in [
        ("idle", &mut idle),
        ("half", &mut half),
        ("fresh", &mut fresh),
    ] {
        assert!(
            closed_within(tcp, Duration::from_secs(1)).await.is_some(),
            "the {name} connection is closed"
        );
    }
}
