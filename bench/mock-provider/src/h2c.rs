//! The stand-in's h2c server (HTTP/2 with prior knowledge) on the `h2` crate: one task per
//! connection, every stream of it served inside that task.
//!
//! Small on purpose, like [`crate::http1`]: a stream is not a task of its own, so answering it
//! wakes no other thread and takes no lock another thread holds; its answer is queued on the
//! connection in the turn its latency ends, and the connection writes what is queued in as few
//! writes as it can. No cap on concurrent streams, and receive windows large enough that
//! thousands of request bodies at once are not split into small DATA frames.
//!
//! The `timeout` and `reset` faults reset the stream (`INTERNAL_ERROR`), not the connection the
//! other calls share.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use tokio::net::TcpStream;

use crate::batch;
use crate::chat::chat;
use crate::clock::{ConnClock, now_us};
use crate::immediate::immediate;
use crate::reply::Reply;
use crate::route::{Route, route};
use crate::shared::Shared;

/// The largest request body read (batch endpoints: [`batch::MAX_BODY`]).
const MAX_BODY: usize = 64 * 1024 * 1024;

type Streams = FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Serves one h2c connection (its preface not read yet) until the client ends it.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(u32::MAX)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(64 << 20)
        .handshake::<_, Bytes>(stream)
        .await;
    let Ok(mut conn) = handshake else {
        return;
    };
    let clock = Arc::new(ConnClock::default());
    let mut streams = Streams::new();
    std::future::poll_fn(|cx| {
        loop {
            // Accepting also drives the connection: it reads frames and writes what the streams
            // have queued.
            let accepted = match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => {
                    streams.push(Box::pin(answer(
                        shared.clone(),
                        clock.clone(),
                        req,
                        respond,
                    )));
                    true
                }
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => false,
            };
            let finished = matches!(streams.poll_next_unpin(cx), Poll::Ready(Some(())));
            if !accepted && !finished {
                return Poll::Pending;
            }
        }
    })
    .await;
}

/// Answers one stream.
async fn answer(
    shared: Arc<Shared>,
    clock: Arc<ConnClock>,
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let started_us = now_us();
    let (head, body) = req.into_parts();
    let reply = match route(head.method.as_str(), head.uri.path()) {
        Route::Chat(api) => match read_body(body, MAX_BODY).await {
            Some(body) => chat(&shared, &clock, api, started_us, &body).await,
            None => {
                respond.send_reset(Reason::PROTOCOL_ERROR);
                return;
            }
        },
        Route::Batch => match read_body(body, batch::MAX_BODY).await {
            Some(body) => {
                batch::handle(&shared.batches, &shared.answers, batch_request(&head, body)).await
            }
            None => {
                respond.send_reset(Reason::PROTOCOL_ERROR);
                return;
            }
        },
        other => immediate(&shared, other),
    };
    match reply {
        Reply::Answer {
            status,
            body,
            content_type,
            retry_after,
        } => {
            let mut resp = http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, content_type)
                .header(http::header::CONTENT_LENGTH, body.len());
            if retry_after {
                resp = resp.header(http::header::RETRY_AFTER, shared.retry_after.as_bytes());
            }
            let Ok(resp) = resp.body(()) else {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return;
            };
            match respond.send_response(resp, body.is_empty()) {
                Ok(mut send) if !body.is_empty() => {
                    // The connection's windows are far larger than any answer: no capacity to
                    // wait for.
                    let _ = send.send_data(body, true);
                }
                _ => {}
            }
        }
        Reply::Hang | Reply::Reset => respond.send_reset(Reason::INTERNAL_ERROR),
    }
}

/// A request body, whole; `None` when the client reset the stream or sent more than `max`
/// bytes.
async fn read_body(mut body: RecvStream, max: usize) -> Option<Bytes> {
    let mut whole = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.ok()?;
        let _ = body.flow_control().release_capacity(chunk.len());
        // A body in one DATA frame (nearly every one) is kept as it came, not copied.
        if whole.is_empty() && body.is_end_stream() && chunk.len() <= max {
            return Some(chunk);
        }
        whole.extend_from_slice(&chunk);
        if whole.len() > max {
            return None;
        }
    }
    Some(whole.freeze())
}

/// A batch endpoint's request from an h2c stream's head and body.
fn batch_request(head: &http::request::Parts, body: Bytes) -> batch::Request {
    let header = |name| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = head
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header(http::header::HOST))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    batch::Request {
        method: head.method.as_str().to_owned(),
        target: head
            .uri
            .path_and_query()
            .map_or_else(|| head.uri.path().to_owned(), |p| p.as_str().to_owned()),
        content_type: header(http::header::CONTENT_TYPE),
        host,
        body,
    }
}
