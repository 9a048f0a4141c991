//! Provider calls against stand-ins that behave as real networks do: a server that closes a
//! kept-alive connection after reading a request, compressed answers, TLS with a private CA,
//! and forward proxies from the environment, the provider's settings and `NO_PROXY`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn item() -> Value {
    json!({"question": "What is 2+2?", "answer": "4", "prediction": "four"})
}

/// The item with a prediction of its own, so no two calls share a verdict-cache entry.
fn nth_item(i: usize) -> Value {
    json!({"question": "What is 2+2?", "answer": "4", "prediction": format!("four ({i})")})
}

fn config(base: &str, extra: &str) -> String {
    format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{base}"
api_key = "sk-network-test"
max_attempts = 3
{extra}
[retry]
base_delay_ms = 5
max_delay_ms = 20
[routes]
default = ["p:m"]
"#
    )
}

/// Reads one HTTP/1.1 request (head and `content-length` body) from `s`; its request line, or
/// `None` at the end of the stream.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return head.lines().next().map(str::to_string);
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer(s: &mut TcpStream, text: &str) {
    let body = openai_answer(text).to_string();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body.as_bytes()).await;
}

/// A provider that answers the first request of each connection and keeps it alive, then reads
/// the next request on it and closes the connection without answering (as a load balancer
/// closing an idle connection can). Counts every request it read in full.
async fn closing_standin() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut s, &mut buf).await.is_none() {
                    return;
                }
                count.fetch_add(1, Ordering::SeqCst);
                answer(&mut s, "Verdict: 1").await;
                if read_request(&mut s, &mut buf).await.is_some() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                // Dropped: closed after reading the second request, with no answer.
            });
        }
    });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test]
async fn a_kept_alive_connection_closed_after_the_request_is_resent_only_as_a_counted_attempt() {
    let (base, seen) = closing_standin().await;
    let app = spawn(&config(&base, ""), &[]).await;
    let mut listed = 0;
    for i in 0..6 {
        let (status, body) = app.post("/v1/judge/binary", &nth_item(i)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["verdict"], "correct", "{body}");
        listed += body["attempts"].as_array().unwrap().len();
    }
    assert!(listed > 6, "the closed connections cost attempts: {listed}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        listed,
        "every request the provider read is an attempt the responses list"
    );
    let (_, metrics) = app.get("/metrics").await;
    let retries: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("llm_judge_retries_total{") && l.contains("provider=\"p\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        retries as usize,
        listed - 6,
        "each resend is a counted retry"
    );
}

#[tokio::test]
async fn a_gzip_encoded_answer_is_judged_normally() {
    use std::io::Write;
    let server = MockServer::start().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(openai_answer("Verdict: 1").to_string().as_bytes())
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(|r: &wiremock::Request| {
            r.headers
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("gzip"))
        })
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .insert_header("content-type", "application/json")
                .set_body_bytes(gz.finish().unwrap()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let app = spawn(&config(&format!("{}/v1", server.uri()), ""), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct", "{body}");
    assert_eq!(body["attempts"].as_array().unwrap().len(), 1, "{body}");
}

/// A CA made here, and an HTTPS stand-in on 127.0.0.1 whose certificate it signed. Returns the
/// stand-in's base URL and the CA's PEM file.
async fn tls_standin(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "llm-judge test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.pem().into_bytes(),
        key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async { axum::Json(openai_answer("Verdict: 1")) }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    (format!("https://127.0.0.1:{}/v1", addr.port()), ca_file)
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_and_refused_clearly_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (base, ca_file) = tls_standin(dir.path()).await;
    let with_ca = config(
        &base,
        &format!("ca_file = {:?}", ca_file.display().to_string()),
    );
    let app = spawn(&with_ca, &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "correct", "{body}");

    let app = spawn(&config(&base, ""), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 502, "{body}");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "an untrusted certificate is not retried: {body}"
    );
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(
        error.contains("certificate is not trusted") && error.contains("ca_file"),
        "{error}"
    );
}

/// A forward proxy stand-in: it answers every request itself and records its request lines
/// (absolute-form URLs), so a test sees which calls went through it.
async fn proxy_standin() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = lines.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(line) = read_request(&mut s, &mut buf).await {
                    seen.lock().unwrap().push(line);
                    answer(&mut s, "Verdict: 1").await;
                }
            });
        }
    });
    (format!("http://{addr}"), lines)
}

#[tokio::test]
async fn a_per_provider_proxy_key_carries_its_calls() {
    let (proxy, lines) = proxy_standin().await;
    let provider = MockServer::start().await;
    let base = format!("{}/v1", provider.uri());
    let app = spawn(&config(&base, &format!("proxy = \"{proxy}\"")), &[]).await;
    let (status, body) = app.post("/v1/judge/binary", &item()).await;
    assert_eq!(status, 200, "{body}");
    let lines = lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![format!("POST {base}/chat/completions HTTP/1.1")],
        "the call went through the proxy in absolute form"
    );
    assert!(provider.received_requests().await.unwrap().is_empty());
}

/// The service as a process with the given environment (and nothing else of the test's).
fn serve_with_env(config_toml: &str, env: &[(&str, &str)]) -> (Child, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config_toml).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-judge"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--config",
    ])
    .arg(&cfg)
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("LLM_JUDGE_DATA_DIR", dir.path().join("data"))
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().expect("start llm-judge"), port, dir)
}

async fn judge_via(port: u16) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = client
            .post(format!("http://127.0.0.1:{port}/v1/judge/binary"))
            .json(&item())
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                return (status, r.json().await.unwrap());
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the service did not start: {e}"),
        }
    }
}

#[tokio::test]
async fn http_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it() {
    let (proxy, lines) = proxy_standin().await;
    let provider = openai_standin("Verdict: 1").await;
    let base = format!("{}/v1", provider.uri());
    let cfg = config(&base, "");

    let (mut child, port, _dir) = serve_with_env(&cfg, &[("HTTP_PROXY", &proxy)]);
    let (status, body) = judge_via(port).await;
    child.kill().ok();
    child.wait().ok();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        lines.lock().unwrap().clone(),
        vec![format!("POST {base}/chat/completions HTTP/1.1")]
    );
    assert!(provider.received_requests().await.unwrap().is_empty());

    let (mut child, port, _dir) =
        serve_with_env(&cfg, &[("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1")]);
    let (status, body) = judge_via(port).await;
    child.kill().ok();
    child.wait().ok();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        lines.lock().unwrap().len(),
        1,
        "NO_PROXY bypassed the proxy"
    );
    assert_eq!(provider.received_requests().await.unwrap().len(), 1);
}
