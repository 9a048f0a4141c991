//! Calls to a provider's batch endpoints: sent with the provider's client, retried on what is
//! transient (and, for a creation, only on what says the request was not taken), their results
//! files streamed line by line, their errors scrubbed of the key.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::batch::Outcome;
use super::custom_id::CustomId;
use super::polling::Polling;
use crate::answer::{Answer, MAX_ERROR_CHARS};
use crate::http::read_answer;
use crate::transport::{NOT_CONNECTED, transport_error};
use llm_judge_chat::ProviderError;

/// What both batch clients share: the provider's client, headers and key, and the retry
/// settings.
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    /// The provider's key, scrubbed from any text that comes back.
    pub secret: Option<Arc<str>>,
    pub polling: Polling,
}

/// How a call to a batch endpoint may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reading, or a cancel: any transient failure.
    Safe,
    /// Creating something: only failures that say the request was not taken.
    OnlyIfNotTaken,
}

impl Http {
    /// Sends a request made by `make` (made again for each try) and reads the whole answer;
    /// a non-success status becomes a typed error whose message `message` reads from the body.
    pub(crate) async fn call(
        &self,
        replay: Replay,
        make: impl Fn() -> reqwest::RequestBuilder,
        message: fn(&[u8]) -> String,
    ) -> Result<Bytes, ProviderError> {
        let attempt = || async {
            let resp = make().send().await.map_err(transport_error)?;
            let answer = read_answer(resp).await?;
            if answer.is_success() {
                Ok(answer.body)
            } else {
                Err(answer.status_error(message(&answer.body)))
            }
        };
        self.retried(replay, attempt).await
    }

    /// A `GET` (or, with `post`, a bodyless `POST`) of `url` with `headers`, retried when safe.
    pub(crate) async fn fetch(
        &self,
        post: bool,
        url: &str,
        headers: &reqwest::header::HeaderMap,
        message: fn(&[u8]) -> String,
    ) -> Result<Bytes, ProviderError> {
        self.call(
            Replay::Safe,
            || {
                let r = if post {
                    self.client.post(url)
                } else {
                    self.client.get(url)
                };
                r.headers(headers.clone())
            },
            message,
        )
        .await
    }

    /// Every outcome in a results file at `url`, each line read by `outcome`; lines that are
    /// not results of ours are counted in a warning and left out.
    pub(crate) async fn outcomes(
        &self,
        url: &str,
        headers: &reqwest::header::HeaderMap,
        message: fn(&[u8]) -> String,
        outcome: impl Fn(&[u8]) -> Option<(CustomId, Outcome)>,
    ) -> Result<Vec<(CustomId, Outcome)>, ProviderError> {
        let mut out = Vec::new();
        let mut unreadable = 0usize;
        self.lines(
            || self.client.get(url).headers(headers.clone()),
            message,
            |line| match outcome(line) {
                Some(o) => out.push(o),
                None => unreadable += usize::from(!line.is_empty()),
            },
        )
        .await?;
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "lines of a provider batch's results were not results of ours"
            );
        }
        Ok(out)
    }

    /// Streams the lines of a results file to `line`, without holding the whole file.
    pub(crate) async fn lines(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
        message: fn(&[u8]) -> String,
        mut line: impl FnMut(&[u8]),
    ) -> Result<(), ProviderError> {
        let resp = self
            .retried(Replay::Safe, || async {
                let resp = make().send().await.map_err(transport_error)?;
                if resp.status().is_success() {
                    return Ok(resp);
                }
                let answer: Answer = read_answer(resp).await?;
                Err(answer.status_error(message(&answer.body)))
            })
            .await?;
        let mut body = resp.bytes_stream();
        let mut pending = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.redact(transport_error(e)))?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = memchr::memchr(b'\n', &pending) {
                let l = pending.split_to(end + 1);
                line(l[..end].trim_ascii());
            }
        }
        if !pending.trim_ascii().is_empty() {
            line(pending.trim_ascii());
        }
        Ok(())
    }

    async fn retried<T, Fut>(
        &self,
        replay: Replay,
        attempt: impl FnMut() -> Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let max_wait = self.polling.max_retry_after;
        attempt
            .retry(self.polling.retries())
            .sleep(tokio::time::sleep)
            .when(move |e: &ProviderError| match replay {
                Replay::Safe => e.is_retryable(),
                Replay::OnlyIfNotTaken => not_taken(e),
            })
            .adjust(move |e: &ProviderError, backoff: Option<Duration>| {
                let backoff = backoff?;
                match e.retry_after() {
                    Some(d) if d > max_wait => None,
                    Some(d) => Some(d),
                    None => Some(backoff),
                }
            })
            .await
            .map_err(|e| self.redact(e))
    }

    pub(crate) fn redact(&self, e: ProviderError) -> ProviderError {
        e.redacted(self.secret.as_deref(), MAX_ERROR_CHARS)
    }

    /// A client for unit tests, with `secret` as the key.
    #[cfg(test)]
    pub(crate) fn for_tests(secret: &str) -> Http {
        Http {
            client: reqwest::Client::new(),
            secret: Some(secret.into()),
            polling: Polling::default(),
        }
    }
}

/// Failures that say a request was not taken at all, so that sending it again cannot make a
/// second batch: rate limited, overloaded, unavailable, no connection.
fn not_taken(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status {
            status: 429 | 503 | 529,
            should_retry,
            ..
        } => *should_retry != Some(false),
        ProviderError::Connect(m) => m.starts_with(NOT_CONNECTED),
        _ => false,
    }
}

/// An answer body as the JSON type `T`, or a decode error naming `what`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| ProviderError::Decode(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_that_were_not_taken_are_sent_again_when_creating() {
        let status = |s: u16| ProviderError::Status {
            status: s,
            message: String::new(),
            retry_after: None,
            should_retry: None,
        };
        assert!(not_taken(&status(429)) && not_taken(&status(529)) && not_taken(&status(503)));
        assert!(!not_taken(&status(500)) && !not_taken(&status(400)));
        assert!(!not_taken(&ProviderError::Timeout));
        assert!(not_taken(&ProviderError::Connect(format!(
            "{}: connection refused",
            crate::transport::NOT_CONNECTED
        ))));
        assert!(!not_taken(&ProviderError::Connect(
            "connection reset by peer".into()
        )));
    }
}
