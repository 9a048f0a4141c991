//! Work stops when its client does: a client that stops reading its batch holds back the
//! items it asked for, and a client that goes away cancels its provider calls.

use super::*;

/// Waits until `count` stops changing for `quiet` (at most 15 s); returns it.
async fn settled(count: &AtomicUsize, quiet: Duration) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = count.load(Ordering::SeqCst);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count.load(Ordering::SeqCst);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}

/// A batch request written on a socket whose receive buffer is small, never read past its head.
async fn unread_batch(
    addr: std::net::SocketAddr,
    items: usize,
    ndjson: bool,
    tag: &str,
) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let items: Vec<Value> = (0..items)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("{tag}{i}")}))
        .collect();
    let body = serde_json::to_vec(&json!({"max_concurrent": 8, "items": items})).unwrap();
    let accept = if ndjson {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let head = format!(
        "POST /v1/judge/batch HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\naccept: {accept}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    let mut first = [0u8; 12];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_their_batches_stop_the_work_they_asked_for() {
    // Each answer carries 32 KiB of judge text, so each result is a large line and the
    // connection's buffers (the kernel's, hyper's) hold few of them.
    let text = format!("{} Verdict: 1", "reasoning ".repeat(3200));
    let provider = standin(text, Duration::from_millis(2)).await;
    let app = spawn(&provider_toml(&provider.base, ""), &[]).await;
    let per_client = 1000;
    let mut clients = Vec::new();
    for c in 0..3 {
        clients.push(unread_batch(app.addr, per_client, true, &format!("n{c}-")).await);
    }
    clients.push(unread_batch(app.addr, per_client, false, "j-").await);
    let calls = settled(&provider.calls, Duration::from_millis(800)).await;
    let total = per_client * clients.len();
    assert!(
        calls < total / 3,
        "clients that read nothing caused {calls} of {total} provider calls"
    );
    // The work has stopped, not slowed down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        calls,
        "the work went on"
    );
    // A client that reads again sets its batch going again.
    let mut reader = clients.remove(0);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while provider.calls.load(Ordering::SeqCst) <= calls {
        assert!(
            Instant::now() < deadline,
            "reading did not resume the batch"
        );
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk))
            .await
            .expect("the answer goes on")
            .unwrap();
        assert!(n > 0, "the connection closed");
        read += n;
    }
    assert!(read > 0);
    eprintln!("{calls} provider calls of {total} items while nobody read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_single_request_cancels_its_provider_call_and_frees_its_place() {
    let provider = standin("Verdict: 1".into(), Duration::from_secs(30)).await;
    let app = spawn(&provider_toml(&provider.base, ""), &[]).await;
    let in_flight = || async {
        let (_, body) = app.get("/v1/providers").await;
        let v: Value = serde_json::from_str(&body).unwrap();
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "openai")
            .unwrap()["in_flight"]
            .as_u64()
            .unwrap()
    };
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"question":"q","answer":"a","prediction":"p"}"#;
    tcp.write_all(
        format!(
            "POST /v1/judge/binary HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.calls.load(Ordering::SeqCst) == 0 || in_flight().await == 0 {
        assert!(Instant::now() < deadline, "the call never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tcp);
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.cancelled.load(Ordering::SeqCst) == 0 || in_flight().await != 0 {
        assert!(
            Instant::now() < deadline,
            "the provider call outlived its client: {} cancelled, {} in flight",
            provider.cancelled.load(Ordering::SeqCst),
            in_flight().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
