//! The server over real sockets: keep-alive and pipelining, expect-continue, HTTP/1.0, faults,
//! the request limit, malformed heads and h2c.

use super::*;
use bytes::Bytes;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A stand-in with these command-line flags on a loopback port, and its shared state.
async fn start(flags: &[&str]) -> (SocketAddr, Arc<Shared>) {
    let cli = Cli::parse_from([&["llm-judge-mock"], flags].concat());
    let shared = Arc::new(Shared::from_cli(&cli).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = shared.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(s.clone(), stream));
        }
    });
    (addr, shared)
}

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

fn post(path: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads answers until `n` complete ones (head and content-length body) have arrived.
async fn read_answers(s: &mut TcpStream, n: usize) -> Vec<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let mut chunk = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(got > 0, "closed after {} answers", out.len());
        buf.extend_from_slice(&chunk[..got]);
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = resp.parse(&buf) else {
                break;
            };
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            if buf.len() < head + len {
                break;
            }
            let code = resp.code.unwrap();
            let head_text = String::from_utf8_lossy(&buf[..head]).to_lowercase();
            let body = String::from_utf8_lossy(&buf[head..head + len]).into_owned();
            buf.drain(..head + len);
            out.push((code, head_text, body));
        }
    }
    out
}

#[tokio::test]
async fn keeps_connections_alive_and_answers_pipelined_requests_in_order() {
    let (addr, shared) = start(&[]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(post("/v1/chat/completions", "", CHAT).as_bytes())
        .await
        .unwrap();
    let first = read_answers(&mut s, 1).await;
    assert_eq!(first[0].0, 200);
    assert!(first[0].2.contains("chat.completion"), "{}", first[0].2);
    // Two at once on the same connection: an Anthropic call, then the stats.
    let two = format!(
        "{}GET /stats HTTP/1.1\r\nhost: x\r\n\r\n",
        post("/v1/messages", "", CHAT)
    );
    s.write_all(two.as_bytes()).await.unwrap();
    let answers = read_answers(&mut s, 2).await;
    assert!(
        answers[0].2.contains("\"type\":\"message\""),
        "{}",
        answers[0].2
    );
    assert!(answers[1].2.contains("\"calls\":2"), "{}", answers[1].2);
    assert_eq!(shared.stats.gaps.load(Ordering::Relaxed), 1);
    assert_eq!(shared.stats.answered.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn honours_expect_continue_and_refuses_chunked_bodies() {
    let (addr, _) = start(&[]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        CHAT.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(CHAT.as_bytes()).await.unwrap();
    assert_eq!(read_answers(&mut s, 1).await[0].0, 200);

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        .await
        .unwrap();
    let a = read_answers(&mut s, 1).await;
    assert_eq!(a[0].0, 411);
    assert!(a[0].1.contains("connection: close"));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after the refusal");
}

#[tokio::test]
async fn http10_and_connection_close_end_the_connection() {
    let (addr, _) = start(&[]).await;
    for req in [
        "GET /healthz HTTP/1.0\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
            .await
            .expect("closed in time")
            .unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\"ok\""), "{text}");
    }
}

#[tokio::test]
async fn faults_follow_the_mix() {
    let (addr, _) = start(&["--fail-429", "100", "--retry-after", "3"]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(post("/v1/messages", "", CHAT).as_bytes())
        .await
        .unwrap();
    let a = read_answers(&mut s, 1).await;
    assert_eq!(a[0].0, 429);
    assert!(a[0].1.contains("retry-after: 3"), "{}", a[0].1);
    assert!(a[0].2.contains("rate_limit_error"), "{}", a[0].2);

    let (addr, _) = start(&["--fail-reset", "100"]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(post("/v1/chat/completions", "", CHAT).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the reset in time")
    {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(n) => panic!("read {n} bytes instead of a reset"),
    }
}

#[tokio::test]
async fn a_request_limit_refuses_calls_over_it_and_counts_the_busiest_window() {
    let (addr, _) = start(&["--limit-requests", "2", "--window-ms", "60000"]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let three = post("/v1/chat/completions", "", CHAT).repeat(3);
    s.write_all(three.as_bytes()).await.unwrap();
    let a = read_answers(&mut s, 3).await;
    assert_eq!([a[0].0, a[1].0, a[2].0], [200, 200, 429]);
    assert!(a[2].1.contains("retry-after"), "{}", a[2].1);
    s.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let stats = &read_answers(&mut s, 1).await[0].2;
    assert!(
        stats.contains("\"limit\":2,\"window_ms\":60000,\"busiest\":3,\"over_limit\":1"),
        "{stats}"
    );
}

#[tokio::test]
async fn a_malformed_head_gets_400() {
    let (addr, _) = start(&[]).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /v1/messages HTTP/1.1\r\ncontent-length: nope\r\n\r\n")
        .await
        .unwrap();
    let a = read_answers(&mut s, 1).await;
    assert_eq!(a[0].0, 400);
}

/// An h2c client connection to the stand-in at `addr`.
async fn h2c(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    send
}

/// One h2c call: status, headers, body; `Err` with the reason when the stream was reset.
async fn h2c_call(
    send: &h2::client::SendRequest<Bytes>,
    method: &str,
    path: &str,
    body: &'static str,
) -> Result<(u16, http::HeaderMap, String), Option<h2::Reason>> {
    let mut send = send.clone().ready().await.unwrap();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://x{path}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (resp, mut stream) = send.send_request(req, body.is_empty()).unwrap();
    if !body.is_empty() {
        stream
            .send_data(Bytes::from_static(body.as_bytes()), true)
            .unwrap();
    }
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("an answer in time")
        .map_err(|e| e.reason())?;
    let (head, mut recv) = resp.into_parts();
    let mut text = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| e.reason())?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    Ok((
        head.status.as_u16(),
        head.headers,
        String::from_utf8(text).unwrap(),
    ))
}

#[tokio::test]
async fn serves_concurrent_h2c_calls_on_one_connection() {
    let (addr, shared) = start(&["--latency-ms", "50"]).await;
    let send = h2c(addr).await;
    let calls = (0..40).map(|i| {
        let path = if i % 2 == 0 {
            "/v1/chat/completions"
        } else {
            "/v1/messages"
        };
        h2c_call(&send, "POST", path, CHAT)
    });
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(calls).await;
    // All 40 waited out their 50 ms together, not one after another.
    assert!(started.elapsed() < Duration::from_millis(1500));
    for (i, a) in answers.into_iter().enumerate() {
        let (status, headers, body) = a.unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["content-length"], body.len().to_string().as_str());
        let kind = if i % 2 == 0 {
            "chat.completion"
        } else {
            "\"type\":\"message\""
        };
        assert!(body.contains(kind), "{body}");
    }
    let (_, _, stats) = h2c_call(&send, "GET", "/stats", "").await.unwrap();
    assert!(stats.contains("\"calls\":40"), "{stats}");
    assert!(stats.contains("\"max_in_flight\":40"), "{stats}");
    assert_eq!(shared.stats.answered.load(Ordering::Relaxed), 40);
    let (status, _, _) = h2c_call(&send, "GET", "/nowhere", "").await.unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn h2c_faults_answer_or_reset_the_stream_and_keep_the_connection() {
    let (addr, _) = start(&["--fail-429", "100", "--retry-after", "3"]).await;
    let send = h2c(addr).await;
    let (status, headers, body) = h2c_call(&send, "POST", "/v1/messages", CHAT).await.unwrap();
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    assert!(body.contains("rate_limit_error"), "{body}");

    let (addr, _) = start(&["--fail-reset", "100"]).await;
    let send = h2c(addr).await;
    let reset = h2c_call(&send, "POST", "/v1/chat/completions", CHAT).await;
    assert_eq!(reset.unwrap_err(), Some(h2::Reason::INTERNAL_ERROR));
    let (status, _, body) = h2c_call(&send, "GET", "/healthz", "").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "\"ok\""));
}
