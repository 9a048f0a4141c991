//! Every request body is bounded by `server.max_body_bytes` whatever its declared type; only a
//! job upload (`POST /v1/jobs` as `application/x-ndjson`) may be larger. A compressed body is read
//! decompressed and bounded by what it expands to; a byte-order mark at its start is left out.

use std::net::SocketAddr;

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 64 * 1024;
/// What a client offers to send: far more than the limit, as an attacker's body would be.
const OFFERED: usize = 32 << 20;
const CHUNK: usize = 64 * 1024;

fn config() -> String {
    format!("[server]\nmax_body_bytes = {LIMIT}\n")
}

/// Sends `POST path` with `content_type` and a chunked body of up to [`OFFERED`] bytes, while
/// reading the answer; stops sending once the answer's head has arrived (or the server stops
/// reading). Returns the status and how many body bytes were sent.
async fn post_endless(addr: SocketAddr, path: &str, content_type: &str) -> (u16, usize) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut piece = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut piece).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0)
    });
    let mut sent = 0;
    let chunk = format!("{CHUNK:x}\r\n{}\r\n", "x".repeat(CHUNK));
    if wr.write_all(head.as_bytes()).await.is_ok() {
        while sent < OFFERED && !reader.is_finished() {
            // A server that stopped reading leaves the write pending: give up on it.
            let write = wr.write_all(chunk.as_bytes());
            match tokio::time::timeout(std::time::Duration::from_secs(2), write).await {
                Ok(Ok(())) => sent += CHUNK,
                _ => break,
            }
        }
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("an answer within 10 s")
        .expect("reader");
    (status, sent)
}

#[tokio::test]
async fn bodies_of_any_declared_type_stop_at_the_limit() {
    let app = spawn(&config(), &[]).await;
    let paths = [
        "/v1/judge/binary",
        "/v1/judge/batch",
        "/v1/calibrate",
        "/v1/chat/completions",
        "/v1/jobs",
    ];
    let types = [
        "application/x-ndjson+json",
        "application/json",
        "application/vnd.example+json",
        "text/plain",
    ];
    for path in paths {
        for ct in types {
            let (status, sent) = post_endless(app.addr, path, ct).await;
            // A type the endpoint does not take may be refused before the body is read (415).
            let refused = if ct.ends_with("json") {
                vec![413]
            } else {
                vec![413, 415]
            };
            assert!(
                refused.contains(&status),
                "{path} as {ct}: status {status} after {sent} bytes"
            );
            // The answer came long before the body was whole: the server stopped reading near
            // the limit (what socket buffers hold aside).
            assert!(sent < OFFERED / 4, "{path} as {ct}: {sent} bytes were sent");
        }
    }
    // NDJSON is a job upload only on POST /v1/jobs: elsewhere it is bounded like the rest.
    for path in [
        "/v1/judge/binary",
        "/v1/judge/batch",
        "/v1/chat/completions",
    ] {
        let (status, sent) = post_endless(app.addr, path, "application/x-ndjson").await;
        assert!([413, 415].contains(&status), "{path} as NDJSON: {status}");
        assert!(
            sent < OFFERED / 4,
            "{path} as NDJSON: {sent} bytes were sent"
        );
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let app = spawn(&config(), &[]).await;
    for ct in [
        "application/x-ndjson+json",
        "application/json",
        "text/plain",
    ] {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /v1/judge/binary HTTP/1.1\r\nhost: x\r\ncontent-type: {ct}\r\n\
             content-length: 300000000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered without the body")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{ct}: {text}");
        assert!(text.contains("body_too_large"), "{ct}: {text}");
    }
}

#[tokio::test]
async fn a_job_upload_may_be_larger_than_the_limit() {
    let app = spawn(&config(), &[]).await;
    let line = serde_json::json!({"question": "q".repeat(200), "answer": "4", "prediction": "4"});
    let body: String = (0..1000).map(|_| format!("{line}\n")).collect();
    assert!(body.len() > 2 * LIMIT);
    let r = app
        .client
        .post(app.url("/v1/jobs?kind=binary"))
        .header("content-type", "application/x-ndjson; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

async fn send(
    app: &TestApp,
    path: &str,
    ct: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).header("content-type", ct);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn compressed_bodies_are_read_and_bounded_by_what_they_expand_to() {
    let app = spawn(&config(), &[]).await;
    let item = json!({"question": "2+2?", "answer": "4", "prediction": "4"});
    let (status, body) = send(
        &app,
        "/v1/judge/binary",
        "application/json",
        Some("gzip"),
        gzip(item.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct");
    // A gzipped upload of 3,000 lines is 3,000 items, not lines of compressed bytes.
    let lines: String = (0..3000).map(|_| format!("{item}\n")).collect();
    let (status, job) = send(
        &app,
        "/v1/jobs",
        "application/x-ndjson",
        Some("gzip"),
        gzip(lines.as_bytes()),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let seen = get_json(&app.client, &app.url(&format!("/v1/jobs/{id}")))
        .await
        .unwrap();
    assert_eq!(seen["total"], 3000, "{seen}");
    // A small body that expands past the limit: 413, counted after decompression.
    let bomb = gzip(&vec![b' '; 64 << 20]);
    assert!(bomb.len() < LIMIT, "{} compressed bytes", bomb.len());
    let (status, body) = send(
        &app,
        "/v1/judge/binary",
        "application/json",
        Some("gzip"),
        bomb,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // An encoding the service cannot read: 415 in the error shape, naming the header.
    let (status, body) = send(
        &app,
        "/v1/judge/binary",
        "application/json",
        Some("compress"),
        b"whatever".to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["field"], "content-encoding", "{body}");
}

#[tokio::test]
async fn a_byte_order_mark_at_the_start_is_not_part_of_the_body() {
    let app = spawn(&config(), &[]).await;
    let item = json!({"question": "2+2?", "answer": "4", "prediction": "4"});
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(item.to_string().as_bytes());
    let (status, answer) = send(&app, "/v1/judge/binary", "application/json", None, body).await;
    assert_eq!(status, 200, "{answer}");
    let mut upload = b"\xEF\xBB\xBF".to_vec();
    upload.extend_from_slice(format!("{item}\n{item}\n").as_bytes());
    let (status, job) = send(&app, "/v1/jobs", "application/x-ndjson", None, upload).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    for _ in 0..200 {
        let v = get_json(&app.client, &app.url(&format!("/v1/jobs/{id}")))
            .await
            .unwrap();
        if v["status"] == "completed" {
            let errors = &v["summary"]["errors"];
            assert_eq!(errors, 0, "the first item is read like the second: {v}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the job did not finish");
}
