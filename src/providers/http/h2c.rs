//! HTTP/2 with prior knowledge over plain TCP (h2c), on the `h2` crate: one multiplexed
//! connection per serving thread, each call a stream driven inside the caller's task.
//!
//! hyper's HTTP/2 client (under reqwest) spawns a task per request to send its body, and reqwest
//! boxes each pending request besides: about 9 KB a call in flight. Here a call is its own future
//! and its stream's entry in the connection's state; the body goes out with the request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::net::TcpStream;

use super::{Answer, MAX_BODY, USER_AGENT, basic_auth, connect_timeout, too_large};
use crate::providers::ProviderError;

/// A lane's connection: the sender of its streams, once the handshake is done.
type Slot = Arc<tokio::sync::Mutex<Option<SendRequest<Bytes>>>>;

/// The h2c client of one provider.
pub(super) struct H2c {
    timeout: Duration,
    /// Indexed by [`crate::lanes::slot`]: each lane's connection, opened on first use.
    lanes: Mutex<Vec<Slot>>,
}

impl H2c {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            lanes: Mutex::new(Vec::new()),
        }
    }

    /// POSTs `body` (JSON) and reads the whole answer, within the per-attempt timeout.
    pub(super) async fn post(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, ProviderError> {
        let request = build_request(url, headers, body.len())?;
        let slot = self.slot();
        let call = async {
            // A connection the server has closed (idle timeout, GOAWAY) is found out when a
            // stream is asked of it; the call then goes on a fresh one, once.
            let mut fresh = false;
            loop {
                let (sender, opened) = sender(&slot, url, self.timeout).await?;
                fresh |= opened;
                match sender.ready().await {
                    Ok(ready) => return exchange(&slot, ready, request, body).await,
                    Err(e) => {
                        slot.lock().await.take();
                        if fresh {
                            return Err(h2_error(&e));
                        }
                        fresh = true;
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout)?
    }

    fn slot(&self) -> Slot {
        // One runtime serves everything: a single connection slot.
        let lane = 0;
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        while lanes.len() <= lane {
            lanes.push(Slot::default());
        }
        lanes[lane].clone()
    }
}

/// The lane's sender, after opening the connection if there is none; and whether it was opened
/// for this call.
async fn sender(
    slot: &Slot,
    url: &Url,
    timeout: Duration,
) -> Result<(SendRequest<Bytes>, bool), ProviderError> {
    let mut held = slot.lock().await;
    if let Some(sender) = held.as_ref() {
        return Ok((sender.clone(), false));
    }
    let sender = connect(url, timeout).await?;
    *held = Some(sender.clone());
    Ok((sender, true))
}

/// Opens a connection and starts driving it on the current runtime.
async fn connect(url: &Url, timeout: Duration) -> Result<SendRequest<Bytes>, ProviderError> {
    let host = url
        .host_str()
        .ok_or_else(|| ProviderError::Connect("the provider URL has no host".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ProviderError::Connect("the provider URL has no port".into()))?;
    let limit = connect_timeout(timeout);
    let tcp = tokio::time::timeout(limit, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ProviderError::Timeout)?
        .map_err(|e| ProviderError::Connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    // Every call in flight shares the connection: its windows are large, so that thousands of
    // answers at once are not split into small DATA frames or held back waiting for updates.
    let handshake = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(64 << 20)
        .handshake::<_, Bytes>(tcp);
    let (sender, connection) = tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| ProviderError::Timeout)?
        .map_err(|e| h2_error(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("an h2c provider connection ended: {e}");
        }
    });
    Ok(sender)
}

/// The request head: the URL without its user info, the default headers the HTTP/1.1 client
/// sends too, and the configured ones, less those HTTP/2 forbids.
fn build_request(
    url: &Url,
    headers: &HeaderMap,
    len: usize,
) -> Result<http::Request<()>, ProviderError> {
    let mut uri = format!("http://{}", url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        uri.push(':');
        uri.push_str(itoa::Buffer::new().format(port));
    }
    uri.push_str(url.path());
    if let Some(q) = url.query() {
        uri.push('?');
        uri.push_str(q);
    }
    let mut request = http::Request::post(uri).body(()).map_err(|_| {
        ProviderError::Connect("the provider URL is not a valid request URI".into())
    })?;
    let out = request.headers_mut();
    out.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    out.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(basic) = basic_auth(url)
        && let Ok(value) = HeaderValue::from_str(&basic)
    {
        out.insert(header::AUTHORIZATION, value);
    }
    for (name, value) in headers {
        if matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "upgrade"
                | "te"
        ) {
            continue;
        }
        out.insert(name.clone(), value.clone());
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(request)
}

/// Sends one request with its body on a stream and reads the whole answer. A failure of the
/// connection itself (not of this one stream) takes it out of the lane's slot.
async fn exchange(
    slot: &Slot,
    sender: SendRequest<Bytes>,
    request: http::Request<()>,
    body: Vec<u8>,
) -> Result<Answer, ProviderError> {
    match streamed(sender, request, body).await {
        Ok(answer) => answer,
        Err(e) => {
            if e.is_io() || e.is_go_away() {
                slot.lock().await.take();
            }
            Err(h2_error(&e))
        }
    }
}

/// One stream's exchange; `Ok(Err(..))` is an answer too large to take.
async fn streamed(
    mut sender: SendRequest<Bytes>,
    request: http::Request<()>,
    body: Vec<u8>,
) -> Result<Result<Answer, ProviderError>, h2::Error> {
    let (response, mut stream) = sender.send_request(request, body.is_empty())?;
    if !body.is_empty() {
        stream.send_data(Bytes::from(body), true)?;
    }
    let response = response.await?;
    let status = response.status().as_u16();
    let (parts, mut recv) = response.into_parts();
    let mut whole: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        if whole.as_ref().map_or(0, Bytes::len) + joined.len() + chunk.len() > MAX_BODY {
            return Ok(Err(too_large()));
        }
        // Most answers come in one DATA frame: kept as it is, without a copy.
        match whole.take() {
            None if joined.is_empty() => whole = Some(chunk),
            first => {
                if let Some(first) = first {
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&chunk);
            }
        }
    }
    let body = whole.unwrap_or_else(|| joined.freeze());
    Ok(Ok((status, parts.headers, body)))
}

/// A transport failure, without the URL.
fn h2_error(e: &h2::Error) -> ProviderError {
    ProviderError::Connect(format!("HTTP/2: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::net::TcpListener;

    use super::*;

    /// An h2c server on loopback: answers every request with its own request's headers and
    /// body length, in `frames` DATA frames, and counts its connections. With `goaway_after`,
    /// each connection ends gracefully after that many requests.
    struct Server {
        url: Url,
        connections: Arc<AtomicUsize>,
    }

    async fn server(frames: usize, goaway_after: Option<usize>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "http://user:p%40ss@{}/v1/chat/completions?x=1",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut conn = h2::server::handshake(tcp).await.unwrap();
                    let mut served = 0;
                    while let Some(Ok((request, mut respond))) = conn.accept().await {
                        let (parts, mut body) = request.into_parts();
                        let mut len = 0;
                        while let Some(Ok(chunk)) = body.data().await {
                            len += chunk.len();
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        let seen: std::collections::BTreeMap<String, String> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                            .collect();
                        let answer = serde_json::to_vec(&serde_json::json!({
                            "uri": parts.uri.to_string(), "headers": seen, "body_len": len,
                        }))
                        .unwrap();
                        let head = http::Response::builder()
                            .status(201)
                            .header("x-answer", "yes")
                            .body(())
                            .unwrap();
                        let mut send = respond.send_response(head, false).unwrap();
                        let step = answer.len().div_ceil(frames);
                        let pieces: Vec<&[u8]> = answer.chunks(step).collect();
                        for (i, piece) in pieces.iter().enumerate() {
                            send.send_data(Bytes::copy_from_slice(piece), i + 1 == pieces.len())
                                .unwrap();
                        }
                        served += 1;
                        if goaway_after == Some(served) {
                            conn.graceful_shutdown();
                        }
                    }
                });
            }
        });
        Server { url, connections }
    }

    fn configured() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("k"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-length", HeaderValue::from_static("999"));
        h
    }

    #[tokio::test]
    async fn calls_share_one_connection_and_carry_their_headers_and_body() {
        let server = server(1, None).await;
        let client = H2c::new(Duration::from_secs(5));
        let headers = configured();
        let calls = (0..50).map(|i| client.post(&server.url, &headers, vec![b'x'; 100 + i]));
        let answers = futures::future::join_all(calls).await;
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        for (i, answer) in answers.into_iter().enumerate() {
            let (status, headers, body) = answer.unwrap();
            assert_eq!(status, 201);
            assert_eq!(headers["x-answer"], "yes");
            let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(seen["body_len"], 100 + i);
            let authority = format!(
                "{}:{}",
                server.url.host_str().unwrap(),
                server.url.port().unwrap()
            );
            assert_eq!(
                seen["uri"],
                format!("http://{authority}/v1/chat/completions?x=1")
            );
            let h = &seen["headers"];
            assert_eq!(h["x-api-key"], "k");
            assert_eq!(h["content-type"], "application/json");
            assert_eq!(h["user-agent"], USER_AGENT);
            assert_eq!(h["content-length"], (100 + i).to_string());
            assert_eq!(h["authorization"], "Basic dXNlcjpwQHNz", "user:p@ss");
            assert!(h.get("connection").is_none(), "{h}");
        }
    }

    #[tokio::test]
    async fn an_answer_in_many_frames_is_joined() {
        let server = server(7, None).await;
        let client = H2c::new(Duration::from_secs(5));
        let (_, _, body) = client
            .post(&server.url, &HeaderMap::new(), b"{}".to_vec())
            .await
            .unwrap();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen["body_len"], 2);
    }

    #[tokio::test]
    async fn a_connection_the_server_ended_is_replaced_without_an_error() {
        let server = server(1, Some(1)).await;
        let client = H2c::new(Duration::from_secs(5));
        for _ in 0..3 {
            let (status, _, _) = client
                .post(&server.url, &HeaderMap::new(), b"{}".to_vec())
                .await
                .unwrap();
            assert_eq!(status, 201);
            // Let the GOAWAY arrive before the next call.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = Url::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap();
        let err = H2c::new(Duration::from_secs(5))
            .post(&url, &HeaderMap::new(), b"{}".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
    }
}
