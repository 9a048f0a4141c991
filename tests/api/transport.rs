//! How the service talks to a provider on the wire: HTTP/1.1 by default on `http://`, HTTP/2 from
//! the first byte (h2c) with `http2_prior_knowledge`, every call in flight on one connection.

use std::sync::{Arc, Mutex};

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The HTTP/2 connection preface every h2c client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A loopback TCP relay in front of `upstream` that records the first bytes of every connection.
async fn relay(upstream: std::net::SocketAddr) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let openings: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let seen = openings.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut first = vec![0u8; H2_PREFACE.len()];
                if client.read_exact(&mut first).await.is_err() {
                    return;
                }
                seen.lock().unwrap().push(first.clone());
                let mut server = TcpStream::connect(upstream).await.unwrap();
                tokio::io::AsyncWriteExt::write_all(&mut server, &first)
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (format!("http://{addr}"), openings)
}

async fn standin() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer("Verdict: 1"))
                .set_delay(std::time::Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    server
}

fn config(base: &str, h2: bool) -> String {
    format!(
        r#"
[providers.local]
kind = "openai"
base_url = "{base}/v1"
http2_prior_knowledge = {h2}
[routes]
default = ["local:m"]
"#
    )
}

fn batch_of(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("p{i}")}))
        .collect();
    json!({"kind": "binary", "max_concurrent": n, "items": items})
}

#[tokio::test]
async fn http2_prior_knowledge_multiplexes_every_call_on_one_connection() {
    let server = standin().await;
    let (base, openings) = relay(*server.address()).await;
    let app = spawn(&config(&base, true), &[]).await;
    let (status, body) = app.post("/v1/judge/batch", &batch_of(20)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["correct"], 20, "{body}");
    assert_eq!(server.received_requests().await.unwrap().len(), 20);
    let openings = openings.lock().unwrap();
    assert_eq!(
        openings.len(),
        1,
        "20 concurrent calls shared one connection"
    );
    for first in openings.iter() {
        assert_eq!(
            first, H2_PREFACE,
            "the client spoke HTTP/2 from the first byte"
        );
    }
}

#[tokio::test]
async fn plain_http_providers_get_http1_by_default() {
    let server = standin().await;
    let (base, openings) = relay(*server.address()).await;
    let app = spawn(&config(&base, false), &[]).await;
    let (status, body) = app.post("/v1/judge/batch", &batch_of(5)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["correct"], 5, "{body}");
    let openings = openings.lock().unwrap();
    assert_eq!(
        openings.len(),
        5,
        "one HTTP/1.1 connection per call in flight"
    );
    for first in openings.iter() {
        // An HTTP/1.1 request line (only as many bytes as the HTTP/2 preface are recorded).
        assert!(first.starts_with(b"POST /v1/chat/completion"), "{first:?}");
    }
}
