//! Serving connections: header-read, idle and body timeouts, the connection cap, back-pressure
//! from clients that stop reading, cancelled requests, cross-site refusals and shutdown, all on
//! real sockets against the server on a loopback port.

mod cancellation;
mod connections;
mod refusals;
mod shutdown;

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
