//! The stand-in's HTTP/1.1 server: one task per connection, requests read and answered in turn.
//!
//! Small on purpose, so that the stand-in spends as little of the benchmark machine's CPU as
//! it can: the head is parsed in place with httparse, a request body is read by its
//! `content-length` (chunked request bodies are refused with 411), and each answer goes out in
//! one write. Keep-alive follows HTTP/1.1: the connection stays open unless the client sends
//! `connection: close` or speaks HTTP/1.0 without asking for keep-alive. `expect:
//! 100-continue` is honoured. Pipelined requests are answered in order.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::batch;
use crate::chat::chat;
use crate::clock::{ConnClock, now_us};
use crate::immediate::immediate;
use crate::reply::Reply;
use crate::route::{Route, route};
use crate::shared::Shared;

/// The largest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read (batch endpoints: [`batch::MAX_BODY`]).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What the server needs from a request head.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    route: Route,
    content_length: usize,
    chunked: bool,
    close: bool,
    expect_continue: bool,
    /// For a batch endpoint, what its handler needs from the head.
    batch: Option<Box<BatchHead>>,
}

/// The parts of a head a batch endpoint reads, owned.
#[derive(Debug, Default)]
struct BatchHead {
    method: String,
    target: String,
    content_type: Option<String>,
    host: Option<String>,
}

/// A head that cannot be served: the status and the message to answer with.
type Refusal = (u16, &'static str);

/// Parses the head at the start of `buf`; `Ok(None)` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err((400, "malformed HTTP/1.1 request head")),
    };
    let http10 = req.version == Some(0);
    let (method, target) = (req.method.unwrap_or_default(), req.path.unwrap_or_default());
    let route = route(method, target);
    let mut head = Head {
        len,
        route,
        content_length: 0,
        chunked: false,
        close: http10,
        expect_continue: false,
        batch: (route == Route::Batch).then(|| {
            Box::new(BatchHead {
                method: method.to_owned(),
                target: target.to_owned(),
                ..BatchHead::default()
            })
        }),
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value
                .parse()
                .map_err(|_| (400, "content-length is not a number"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    head.close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if let Some(batch) = head.batch.as_mut() {
            if h.name.eq_ignore_ascii_case("content-type") {
                batch.content_type = Some(value.to_owned());
            } else if h.name.eq_ignore_ascii_case("host") {
                batch.host = Some(value.to_owned());
            }
        }
    }
    let max_body = if head.batch.is_some() {
        batch::MAX_BODY
    } else {
        MAX_BODY
    };
    if head.content_length > max_body {
        return Err((413, "request body over the stand-in's limit"));
    }
    Ok(Some(head))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        529 => "Site Overloaded",
        _ => "",
    }
}

/// A whole answer: status line, headers and body.
fn answer(
    status: u16,
    body: &[u8],
    content_type: &str,
    retry_after: Option<&[u8]>,
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    if let Some(v) = retry_after {
        out.extend_from_slice(b"\r\nretry-after: ");
        out.extend_from_slice(v);
    }
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// An error answer, after which the connection is closed.
fn refusal((status, message): Refusal) -> Vec<u8> {
    let body = format!(
        "{{\"error\":{{\"message\":\"{message}\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}}}"
    );
    answer(status, body.as_bytes(), "application/json", None, true)
}

/// Reads what the socket has into `buf`; 0 at end of stream.
async fn read_more(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 2048 {
        buf.reserve(4096);
    }
    let spare = buf.capacity() - buf.len();
    loop {
        stream.readable().await?;
        // A read short of the space given emptied the socket: clear tokio's readiness for it
        // (`try_io` does when its closure says WouldBlock), so the next read waits for the next
        // request instead of first making a system call that can only say WouldBlock.
        let mut drained = None;
        let r = stream.try_io(Interest::READABLE, || match stream.try_read_buf(buf) {
            Ok(n) if n > 0 && n < spare => {
                drained = Some(n);
                Err(std::io::ErrorKind::WouldBlock.into())
            }
            r => r,
        });
        match drained.map_or(r, Ok) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Serves HTTP/1.1 requests on `stream` until the client closes it or asks to.
pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let clock = ConnClock::default();
    // Empty (no allocation) while the connection waits between requests.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_head(&buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) if buf.len() < MAX_HEAD => {}
                    Ok(None) => {
                        let out = refusal((431, "request head over 64 KiB"));
                        let _ = stream.write_all(&out).await;
                        return;
                    }
                    Err(refused) => {
                        let _ = stream.write_all(&refusal(refused)).await;
                        return;
                    }
                }
            }
            match read_more(&stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let started_us = now_us();
        if head.chunked {
            let out = refusal((411, "send the request body with a content-length"));
            let _ = stream.write_all(&out).await;
            return;
        }
        let end = head.len + head.content_length;
        if head.expect_continue
            && buf.len() < end
            && stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        while buf.len() < end {
            match read_more(&stream, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let reply = match (head.route, head.batch) {
            (Route::Chat(api), _) => {
                chat(&shared, &clock, api, started_us, &buf[head.len..end]).await
            }
            (Route::Batch, Some(b)) => {
                // The whole buffer is this request (nearly always): its body is kept, not copied.
                let body = if buf.len() == end {
                    bytes::Bytes::from(std::mem::take(&mut buf)).slice(head.len..end)
                } else {
                    bytes::Bytes::copy_from_slice(&buf[head.len..end])
                };
                let host = match b.host {
                    Some(host) => host,
                    None => stream
                        .local_addr()
                        .map_or_else(|_| "127.0.0.1".to_owned(), |a| a.to_string()),
                };
                let req = batch::Request {
                    method: b.method,
                    target: b.target,
                    content_type: b.content_type,
                    host,
                    body,
                };
                batch::handle(&shared.batches, &shared.answers, req).await
            }
            (other, _) => immediate(&shared, other),
        };
        if buf.len() <= end {
            buf = Vec::new();
        } else {
            buf.drain(..end);
        }
        match reply {
            Reply::Answer {
                status,
                body,
                content_type,
                retry_after,
            } => {
                let retry_after = retry_after.then(|| shared.retry_after.as_bytes());
                let out = answer(status, &body, content_type, retry_after, head.close);
                if stream.write_all(&out).await.is_err() || head.close {
                    return;
                }
            }
            Reply::Hang => return,
            Reply::Reset => {
                // SO_LINGER 0: dropping the socket sends RST instead of FIN.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Api;

    #[test]
    fn reads_heads_by_the_rules() {
        let h = parse_head(
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n{}",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.route, Route::Chat(Api::OpenAi));
        assert_eq!((h.content_length, h.close, h.chunked), (12, false, false));
        assert!(
            parse_head(b"POST /v1/messages HTTP/1.1\r\nHost: a\r\n")
                .unwrap()
                .is_none()
        );
        let h = parse_head(b"GET /stats HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.close, "HTTP/1.0 closes unless it asks for keep-alive");
        let h = parse_head(b"GET /stats HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        let h = parse_head(b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.route, h.close), (Route::Health, true));
        assert!(h.batch.is_none(), "only batch endpoints keep head parts");
        let h = parse_head(b"POST /v1/files?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 70000000\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.route, Route::Batch);
        let b = h.batch.unwrap();
        assert_eq!(
            (b.method.as_str(), b.target.as_str()),
            ("POST", "/v1/files?x=1")
        );
        assert_eq!(
            b.content_type.as_deref(),
            Some("multipart/form-data; boundary=b")
        );
        assert_eq!(b.host.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(
            parse_head(b"POST /v1/messages HTTP/1.1\r\ncontent-length: 70000000\r\n\r\n")
                .unwrap_err()
                .0,
            413,
            "a chat body over 64 MiB is refused; a batch body of that size is read"
        );
        let h = parse_head(b"POST /v1/messages HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.chunked && h.expect_continue);
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n")
                .unwrap_err()
                .0,
            400
        );
        assert_eq!(parse_head(b"\x00\x01 nonsense\r\n\r\n").unwrap_err().0, 400);
    }

    #[test]
    fn answers_are_complete_messages() {
        let out = answer(429, b"{}", "application/json", Some(b"2"), true);
        assert_eq!(
            out,
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: 2\r\nretry-after: 2\r\nconnection: close\r\n\r\n{}"
        );
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        let out = refusal((411, "send a length"));
        let n = match resp.parse(&out).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("incomplete"),
        };
        assert_eq!(resp.code, Some(411));
        let body = std::str::from_utf8(&out[n..]).unwrap();
        assert!(
            body.starts_with("{\"error\":{") && body.contains("send a length"),
            "{body}"
        );
    }
}
