//! A streamed answer: its pieces, how it ended, and the stream that tells whoever asked when it
//! ends and keeps what is tied to its life until then.

use std::fmt;

use crate::completion::{Completion, TokenLogprob};
use crate::error::ProviderError;
use crate::usage::Usage;

/// One piece of a streamed answer, as much of it as one provider event carried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    pub text: String,
    /// The log probabilities of this piece's tokens, when asked for and sent.
    pub logprobs: Option<Vec<TokenLogprob>>,
    pub refusal: Option<String>,
    /// Set on the piece that ends the answer.
    pub finish_reason: Option<String>,
    /// The answer's usage so far (providers send it near the end; the last one counts).
    pub usage: Option<Usage>,
}

impl Chunk {
    /// True when the piece carries nothing (a role announcement, a keep-alive).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
            && self.logprobs.as_ref().is_none_or(Vec::is_empty)
            && self.refusal.is_none()
            && self.finish_reason.is_none()
            && self.usage.is_none()
    }

    /// A whole completion as the one piece of a stream.
    pub fn whole(c: Completion) -> Chunk {
        Chunk {
            text: c.text,
            logprobs: c.logprobs,
            refusal: c.refusal,
            finish_reason: Some(c.finish_reason.unwrap_or_else(|| "stop".into())),
            usage: Some(c.usage),
        }
    }
}

/// How a streamed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The provider sent the whole answer.
    Complete,
    /// The provider's stream broke or reported an error before the end.
    Failed,
    /// The reader went away before the end (the client disconnected).
    Abandoned,
}

impl StreamOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamOutcome::Complete => "complete",
            StreamOutcome::Failed => "failed",
            StreamOutcome::Abandoned => "abandoned",
        }
    }
}

/// What is known when a stream ends: its outcome and the last usage the provider sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamEnd {
    pub outcome: StreamOutcome,
    pub usage: Option<Usage>,
}

type Finaliser = Box<dyn FnOnce(&StreamEnd) + Send>;

/// A streamed answer: the provider's pieces as they arrive, ending after the last one or after
/// the first error. Whoever passes it on can ask to be told how it ended ([`ChatStream::on_end`])
/// and can tie something to its life ([`ChatStream::hold`]), such as a concurrency slot: the
/// provider is busy with the call until its stream ends.
pub struct ChatStream {
    inner: futures::stream::BoxStream<'static, Result<Chunk, ProviderError>>,
    usage: Option<Usage>,
    ended: bool,
    finalisers: Vec<Finaliser>,
    held: Vec<Box<dyn std::any::Any + Send>>,
}

impl ChatStream {
    pub fn new(
        inner: impl futures::Stream<Item = Result<Chunk, ProviderError>> + Send + 'static,
    ) -> ChatStream {
        ChatStream {
            inner: Box::pin(inner),
            usage: None,
            ended: false,
            finalisers: Vec::new(),
            held: Vec::new(),
        }
    }

    /// A whole completion as a stream of one piece.
    pub fn whole(c: Completion) -> ChatStream {
        ChatStream::new(futures::stream::iter([Ok(Chunk::whole(c))]))
    }

    /// Runs `f` once, when the stream ends however it ends (dropped unfinished included).
    /// Finalisers run in the order they were added.
    pub fn on_end(mut self, f: impl FnOnce(&StreamEnd) + Send + 'static) -> ChatStream {
        self.finalisers.push(Box::new(f));
        self
    }

    /// Keeps `guard` alive until the stream ends.
    pub fn hold(mut self, guard: impl Send + 'static) -> ChatStream {
        self.held.push(Box::new(guard));
        self
    }

    /// Calls `f` with every piece that goes through, before the reader gets it.
    pub fn inspect(mut self, f: impl FnMut(&Chunk) + Send + 'static) -> ChatStream {
        use futures::StreamExt;
        let mut f = f;
        let inner = std::mem::replace(&mut self.inner, Box::pin(futures::stream::empty()));
        self.inner = Box::pin(inner.inspect(move |r| {
            if let Ok(c) = r {
                f(c)
            }
        }));
        self
    }

    fn end(&mut self, outcome: StreamOutcome) {
        if self.ended {
            return;
        }
        self.ended = true;
        let end = StreamEnd {
            outcome,
            usage: self.usage,
        };
        for f in self.finalisers.drain(..) {
            f(&end);
        }
        self.held.clear();
    }
}

impl futures::Stream for ChatStream {
    type Item = Result<Chunk, ProviderError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(c))) => {
                if let Some(u) = c.usage {
                    self.usage = Some(u);
                }
                Poll::Ready(Some(Ok(c)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(StreamOutcome::Failed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.end(StreamOutcome::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        self.end(StreamOutcome::Abandoned);
    }
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
