//! Reading a provider's streamed answer: the body's server-sent events (parsed by the
//! `eventsource-stream` crate) through the wire format's [`EventReader`] into the pieces of a
//! [`ChatStream`].
//!
//! A stream ends after the provider's end-of-answer marker (`data: [DONE]`, Anthropic's
//! `message_stop`). A body that ends without it is an error unless the answer's finish reason was
//! already read (some compatible servers send no marker): an answer cut off by a broken
//! connection never looks finished. An event that reports an error ends the stream with it.

use std::sync::Arc;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::answer::{MAX_ANSWER_BYTES, MAX_ERROR_CHARS};
use crate::transport::transport_error;
use crate::wire::EventReader;
use llm_judge_chat::{ChatStream, Chunk, ProviderError};

type Events =
    BoxStream<'static, Result<eventsource_stream::Event, EventStreamError<ProviderError>>>;

struct State {
    events: Events,
    reader: Box<dyn EventReader>,
    over: bool,
    finished: bool,
}

/// The pieces of a streamed answer from its response, as they arrive.
pub fn pieces(
    resp: reqwest::Response,
    reader: Box<dyn EventReader>,
) -> impl Stream<Item = Result<Chunk, ProviderError>> + Send + 'static {
    let mut read = 0usize;
    let chunks = futures::stream::unfold(Some(resp), |resp| async move {
        let mut resp = resp?;
        match resp.chunk().await {
            Ok(Some(b)) => Some((Ok(b), Some(resp))),
            Ok(None) => None,
            // Nothing is read after an error.
            Err(e) => Some((Err(e), None)),
        }
    });
    let body = chunks.map(move |r| {
        let b: Bytes = r.map_err(transport_error)?;
        read += b.len();
        if read > MAX_ANSWER_BYTES {
            return Err(ProviderError::Decode(format!(
                "the streamed answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        Ok(b)
    });
    from_events(body.eventsource().boxed(), reader)
}

/// The pieces read from a stream of server-sent events.
fn from_events(
    events: Events,
    reader: Box<dyn EventReader>,
) -> impl Stream<Item = Result<Chunk, ProviderError>> + Send + 'static {
    let state = State {
        events,
        reader,
        over: false,
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.over {
            return None;
        }
        loop {
            match st.events.next().await {
                Some(Ok(ev)) => match st.reader.read(&ev.event, &ev.data) {
                    Ok(Some(c)) => {
                        st.finished |= c.finish_reason.is_some();
                        return Some((Ok(c), st));
                    }
                    Ok(None) if st.reader.done() => return None,
                    Ok(None) => continue,
                    Err(e) => {
                        st.over = true;
                        return Some((Err(e), st));
                    }
                },
                Some(Err(e)) => {
                    st.over = true;
                    let e = match e {
                        EventStreamError::Transport(e) => e,
                        other => ProviderError::Decode(format!("unreadable event stream: {other}")),
                    };
                    return Some((Err(e), st));
                }
                None if st.reader.done() || st.finished => return None,
                None => {
                    st.over = true;
                    let e = ProviderError::Connect(
                        "the provider's stream ended before the answer was finished".into(),
                    );
                    return Some((Err(e), st));
                }
            }
        }
    })
}

/// Waits for the first piece that carries something and returns the stream from it on: an
/// error before it is the call's error. Errors later in the stream are scrubbed of `secret`.
pub async fn first_piece(
    pieces: impl Stream<Item = Result<Chunk, ProviderError>> + Send + 'static,
    secret: Option<Arc<str>>,
) -> Result<ChatStream, ProviderError> {
    let mut pieces = Box::pin(pieces);
    loop {
        match pieces.next().await {
            Some(Ok(c)) if c.is_empty() => continue,
            Some(Ok(c)) => {
                let rest = pieces
                    .map(move |r| r.map_err(|e| e.redacted(secret.as_deref(), MAX_ERROR_CHARS)));
                return Ok(ChatStream::new(futures::stream::iter([Ok(c)]).chain(rest)));
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(ProviderError::Decode(
                    "the provider's stream ended without any answer".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` lines as chunks, `END` as the marker, `ERR` as an error.
    struct Lines {
        done: bool,
    }

    impl EventReader for Lines {
        fn read(&mut self, _: &str, data: &str) -> Result<Option<Chunk>, ProviderError> {
            match data {
                "END" => {
                    self.done = true;
                    Ok(None)
                }
                "ERR" => Err(ProviderError::Decode("bad".into())),
                "" => Ok(Some(Chunk::default())),
                "FIN" => Ok(Some(Chunk {
                    finish_reason: Some("stop".into()),
                    ..Chunk::default()
                })),
                t => Ok(Some(Chunk {
                    text: t.into(),
                    ..Chunk::default()
                })),
            }
        }

        fn done(&self) -> bool {
            self.done
        }
    }

    fn sse(body: &'static str) -> Events {
        futures::stream::iter([Ok::<_, ProviderError>(Bytes::from_static(body.as_bytes()))])
            .eventsource()
            .boxed()
    }

    async fn collect(body: &'static str) -> (Result<Vec<String>, ProviderError>, bool) {
        let pieces = from_events(sse(body), Box::new(Lines { done: false }));
        let mut s = match first_piece(pieces, None).await {
            Ok(s) => s,
            Err(e) => return (Err(e), false),
        };
        let mut out = Vec::new();
        while let Some(r) = s.next().await {
            match r {
                Ok(c) => out.push(c.text),
                Err(e) => return (Err(e), true),
            }
        }
        (Ok(out), true)
    }

    #[tokio::test]
    async fn a_stream_ends_at_its_marker_and_a_cut_one_is_an_error() {
        let (r, _) = collect("data: \n\ndata: a\n\ndata: b\n\ndata: END\n\ndata: never\n\n").await;
        assert_eq!(
            r.unwrap(),
            ["a", "b"],
            "empty pieces before the first are skipped"
        );
        // Cut off after the first piece: the stream started, and ends with an error.
        let (r, started) = collect("data: a\n\ndata: b\n\n").await;
        assert!(
            started && matches!(r, Err(ProviderError::Connect(_))),
            "{r:?}"
        );
        // No marker, but the answer was finished: a lenient end.
        let (r, _) = collect("data: a\n\ndata: FIN\n\n").await;
        assert_eq!(r.unwrap(), ["a", ""]);
        // An error before the first piece is the call's error.
        let (r, started) = collect("data: \n\ndata: ERR\n\n").await;
        assert!(
            !started && matches!(r, Err(ProviderError::Decode(_))),
            "{r:?}"
        );
        let (r, started) = collect("data: END\n\n").await;
        assert!(!started && r.is_err());
        // An error after it ends the stream with that error.
        let (r, started) = collect("data: a\n\ndata: ERR\n\ndata: b\n\n").await;
        assert!(started && matches!(r, Err(ProviderError::Decode(_))));
    }
}
