//! Serving connections: header-read, idle and body timeouts, the connection cap, back-pressure
//! from clients that stop reading, cancelled requests, cross-site refusals and shutdown, all on
//! real sockets against the server on a loopback port.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Settings for the serving tests: the rules judge, with `extra` under `[server]`.
fn server_toml(extra: &str) -> String {
    format!("[server]\n{extra}\n")
}

/// Reads one HTTP/1.1 answer with a `content-length` body: status, head, body.
async fn read_answer(tcp: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string();
                let status = head[9..12].parse().unwrap();
                return (status, head, body);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, tcp.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "the connection closed before a whole answer: {buf:?}"
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until the server closes the connection (or resets it); how long that took, or None if
/// it was still open after `limit`.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, tcp.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_at_a_time_is_cut_off_while_others_are_served() {
    let app = spawn(&server_toml("header_read_timeout_s = 1"), &[]).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let mut cut = false;
    // One byte every 200 ms: the 36-byte head would take 7 s.
    for &b in HEALTHZ.iter().take(HEALTHZ.len() - 1) {
        if slow.write_all(&[b]).await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        // Meanwhile another client is served at once.
        let mut other = TcpStream::connect(app.addr).await.unwrap();
        other.write_all(HEALTHZ).await.unwrap();
        let (status, _, _) = read_answer(&mut other).await;
        assert_eq!(status, 200);
        if closed_within(&mut slow, Duration::from_millis(200))
            .await
            .is_some()
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "the slow client was never cut off ({sent} bytes sent)");
    let took = started.elapsed();
    assert!(
        sent < HEALTHZ.len() - 1,
        "cut off before its head was complete"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut off about 1 s after its first byte: {took:?}"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_outlives_the_header_timeout_and_closes_after_the_idle_one() {
    let app = spawn(
        &server_toml("header_read_timeout_s = 0.5\nidle_timeout_s = 2"),
        &[],
    )
    .await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut tcp).await.0, 200);
    // Idle for longer than the header timeout: still open, and serves the next request.
    assert_eq!(
        closed_within(&mut tcp, Duration::from_millis(1000)).await,
        None
    );
    tcp.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut tcp).await.0, 200);
    let closed = closed_within(&mut tcp, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(
        closed >= Duration::from_millis(1800),
        "closed after the idle timeout, not before: {closed:?}"
    );
}

#[tokio::test]
async fn a_chunked_body_that_never_ends_gets_408_with_the_error_body() {
    let app = spawn(&server_toml("body_read_timeout_s = 1"), &[]).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/judge/binary HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut reader = tcp.try_clone_for_test();
    let writer = async {
        // A byte every 300 ms, for at most 10 s: the body never ends.
        for _ in 0..33 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if tcp.write_all(b"1\r\n \r\n").await.is_err() {
                break;
            }
        }
    };
    let (answer, ()) = tokio::join!(async { read_answer(&mut reader).await }, async {
        tokio::select! {
            _ = writer => {},
            _ = tokio::time::sleep(Duration::from_secs(4)) => {},
        }
    });
    let (status, head, body) = answer;
    assert_eq!(status, 408, "{head}\n{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A second handle on the same socket, so one task writes while another reads.
trait TryCloneForTest {
    fn try_clone_for_test(&self) -> TcpStream;
}

impl TryCloneForTest for TcpStream {
    fn try_clone_for_test(&self) -> TcpStream {
        let fd = std::os::fd::AsFd::as_fd(self).try_clone_to_owned().unwrap();
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true).unwrap();
        TcpStream::from_std(std).unwrap()
    }
}

/// Log lines written while a test runs, on this thread (the test's runtime runs the server).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_waits_until_one_closes_with_one_warning() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let app = spawn(&server_toml("max_connections = 2"), &[]).await;
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    first.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut first).await.0, 200);
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    second.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_answer(&mut second).await.0, 200);
    // Two more wait in the backlog: connected, but not served.
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third.write_all(HEALTHZ).await.unwrap();
    let mut fourth = TcpStream::connect(app.addr).await.unwrap();
    fourth.write_all(HEALTHZ).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        waited.is_err(),
        "the third connection was served past the cap"
    );
    drop(first);
    assert_eq!(
        read_answer(&mut third).await.0,
        200,
        "served once one closed"
    );
    drop(second);
    assert_eq!(read_answer(&mut fourth).await.0, 200);
    let text = logs.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("server.max_connections"))
        .count();
    assert_eq!(warnings, 1, "one warning for the episode:\n{text}");
}

/// An OpenAI stand-in that answers `text` after `delay`, counting calls, and calls given up
/// (the caller went away before the answer).
struct Standin {
    base: String,
    calls: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}

async fn standin(text: String, delay: Duration) -> Standin {
    struct Call(Arc<AtomicUsize>, bool);
    impl Drop for Call {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (c, x) = (calls.clone(), cancelled.clone());
    let body = Arc::new(openai_answer(&text));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let (c, x, body) = (c.clone(), x.clone(), body.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                let mut call = Call(x, false);
                tokio::time::sleep(delay).await;
                call.1 = true;
                axum::Json((*body).clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Standin {
        base: format!("http://{addr}/v1"),
        calls,
        cancelled,
    }
}

fn provider_toml(base: &str, extra: &str) -> String {
    format!(
        "[providers.openai]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key = \"k\"\n[routes]\ndefault = [\"openai:gpt-4o\"]\n{extra}"
    )
}

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

#[tokio::test]
async fn pages_of_other_sites_are_refused_and_allowed_ones_get_cors() {
    let app = spawn(
        &server_toml("allowed_origins = [\"https://dash.example\"]"),
        &[],
    )
    .await;
    let item = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    // A form-like cross-site POST from a page elsewhere (no preflight for text/plain).
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_origins"),
        "{body}"
    );
    // Its preflight too.
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/judge/binary"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The allowed page: preflight answered, CORS headers on the answer.
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/judge/binary"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .header("origin", "https://dash.example")
        .header("content-type", "application/json")
        .body(item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    assert_eq!(r.headers()["access-control-expose-headers"], "x-request-id");
    // No Origin (curl, SDKs): served, without CORS headers.
    let (status, body) = app.post_raw("/v1/judge/binary", item).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_body_declared_as_something_other_than_json_gets_415() {
    let app = spawn("", &[]).await;
    let item = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = app
            .client
            .post(app.url("/v1/judge/binary"))
            .header("content-type", content_type)
            .body(item)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
        assert_eq!(body["error"]["field"], "content-type");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    // JSON with parameters, and no content type at all (a raw client), are read as JSON.
    for content_type in [Some("application/json; charset=utf-8"), None] {
        let mut req = app.client.post(app.url("/v1/judge/binary")).body(item);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{content_type:?}");
    }
}

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

#[tokio::test]
async fn requests_hyper_refuses_before_routing_still_get_the_error_body() {
    let app = spawn("", &[]).await;
    for (request, status, code) in [
        (
            "POST /v1/judge/binary HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_string(),
            400,
            "malformed_request",
        ),
        (
            // More headers than hyper's limit of 100 (a head over its buffer is refused the
            // same way, unless one read happens to bring the whole head in).
            format!(
                "GET /healthz HTTP/1.1\r\nhost: t\r\n{}\r\n",
                (0..150).map(|i| format!("x-h{i}: v\r\n")).collect::<String>()
            ),
            431,
            "headers_too_large",
        ),
        (
            "GET /he\u{1}lthz HTTP/1.1\r\nhost: t\r\n\r\n".to_string(),
            400,
            "malformed_request",
        ),
    ] {
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        let _ = tcp.write_all(request.as_bytes()).await;
        let (got, head, body) = read_answer(&mut tcp).await;
        assert_eq!(got, status, "{}: {head}", &request[..40.min(request.len())]);
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(closed_within(&mut tcp, Duration::from_secs(2)).await.is_some());
    }
}
