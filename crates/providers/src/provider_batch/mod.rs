//! Provider batch APIs: many requests sent as one provider batch, billed at about half the
//! online price, in a rate-limit pool of their own, with results within 24 hours.
//!
//! - [`openai`]: OpenAI's Files and Batch API (`/v1/files`, `/v1/batches`), also Azure OpenAI's
//!   global-batch deployments (`{endpoint}/openai/files`, `/openai/batches`).
//! - [`anthropic`]: Anthropic's Message Batches (`/v1/messages/batches`).
//!
//! A [`BatchClient`] is built beside a provider's adapter, on the same `reqwest::Client`, with
//! the adapter's credential headers and wire format: a request in a batch has exactly the body
//! the online call would send, and each result's body is read by the adapter's own `decode`, so
//! a result reads exactly as the online answer would. Requests are matched back by their
//! [`CustomId`] (an item's index and attempt), never by their order.
//!
//! Each call to a batch endpoint is retried on what the provider says is transient (429, 5xx,
//! connection failures), waiting as its `retry-after` asks or backing off exponentially with
//! jitter; creating a batch is retried only when it cannot have been made (429, 503, 529, no
//! connection), so that a batch is never created twice. Polling backs off the same way, from
//! [`Polling::first`] up to [`Polling::max`].

pub mod anthropic;
pub mod openai;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::Answer;
use super::http::{read_answer, transport_error};
use llm_judge_chat::{ChatRequest, Completion, ProviderError};

/// What identifies a request in a batch: the item's index and its attempt (an item sent again
/// after a failure gets the next attempt), written `i{index}-a{attempt}` (Anthropic allows
/// `[a-zA-Z0-9_-]{1,64}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomId {
    pub index: u64,
    pub attempt: u32,
}

impl fmt::Display for CustomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}-a{}", self.index, self.attempt)
    }
}

impl CustomId {
    pub fn new(index: u64, attempt: u32) -> CustomId {
        CustomId { index, attempt }
    }

    /// Reads `i{index}-a{attempt}`; anything else is `None` (a line that is not ours).
    pub fn parse(s: &str) -> Option<CustomId> {
        let (i, a) = s.strip_prefix('i')?.split_once("-a")?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        (digits(i) && digits(a)).then_some(())?;
        Some(CustomId {
            index: i.parse().ok()?,
            attempt: a.parse().ok()?,
        })
    }
}

impl Serialize for CustomId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CustomId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CustomId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not i<index>-a<attempt>")))
    }
}

/// How far a provider's clock may be behind ours, for lists of batches made "since" a time.
pub const CLOCK_SLACK_S: u64 = 300;

/// The most batches looked at when searching a provider's list of batches.
pub(crate) const MAX_LISTED: usize = 10_000;

/// Now, in unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request to put in a provider batch.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: CustomId,
    /// With its route step's model set.
    pub chat: Arc<ChatRequest>,
}

/// Which batch API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI's Batch API (and Azure OpenAI's).
    OpenAi,
    Anthropic,
}

/// A submitted provider batch: what is needed to poll it, read its results and cancel it,
/// after a restart too (it is plain data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    pub api: Api,
    /// The provider's batch id.
    pub id: String,
    /// OpenAI: the uploaded input file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_file_id: Option<String>,
    /// Every request in the batch, for the ones the provider returns nothing for.
    pub requests: Vec<CustomId>,
}

/// What [`BatchClient::submit`] did: the batches created, and the requests it could not put in
/// any (one too large for a batch, one the wire format cannot encode), to be sent online.
#[derive(Debug, Default)]
pub struct Submission {
    pub batches: Vec<Handle>,
    pub refused: Vec<(CustomId, ProviderError)>,
}

/// Where a batch is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// OpenAI: the input file is being checked.
    Validating,
    InProgress,
    /// OpenAI: the results are being written.
    Finalizing,
    Cancelling,
    /// Over: every request has a result (succeeded, errored, expired or cancelled).
    Ended,
    /// OpenAI: the batch was refused as a whole (its input failed validation); the message says
    /// why. No request has a result.
    Failed(String),
    /// OpenAI: the completion window passed; requests not run are expired.
    Expired,
    /// Cancelled; requests not run by then are cancelled.
    Cancelled,
}

impl Phase {
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Phase::Ended | Phase::Failed(_) | Phase::Expired | Phase::Cancelled
        )
    }
}

/// Requests by outcome, as far as the provider says (Anthropic counts only once a batch ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub errored: u64,
    pub expired: u64,
    pub cancelled: u64,
}

impl Counts {
    /// Requests with an outcome.
    pub fn done(&self) -> u64 {
        self.succeeded + self.errored + self.expired + self.cancelled
    }
}

/// A batch as one poll saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub phase: Phase,
    pub counts: Counts,
    /// Where the results are read from once over (OpenAI: the output and error files;
    /// Anthropic: the results URL).
    pub results: Vec<String>,
}

/// Why one request of a batch has no answer. Every one of them can be sent online.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemFailure {
    /// The provider answered this request with an error, as an online call would have been
    /// answered: its typed error (status, message, retryability).
    Errored(ProviderError),
    /// The batch expired before the request was run.
    Expired,
    /// The batch was cancelled before the request was run.
    Cancelled,
    /// The provider refused the whole batch (its message says why).
    BatchFailed(String),
    /// The batch ended and no result names the request.
    Missing,
}

impl fmt::Display for ItemFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemFailure::Errored(e) => write!(f, "the provider batch answered an error: {e}"),
            ItemFailure::Expired => write!(f, "the provider batch expired before the request ran"),
            ItemFailure::Cancelled => {
                write!(f, "the provider batch was cancelled before the request ran")
            }
            ItemFailure::BatchFailed(m) => write!(f, "the provider refused the batch: {m}"),
            ItemFailure::Missing => write!(f, "the provider batch returned no result for it"),
        }
    }
}

/// One request's result, read as the online answer would be.
pub type Outcome = Result<Completion, ItemFailure>;

/// A provider's limits per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_requests: usize,
    /// Of the upload (OpenAI: the JSONL file; Anthropic: the creation body).
    pub max_bytes: usize,
}

/// How calls to the batch endpoints are retried and batches polled.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The first wait between two polls; each later one is longer, up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// Tries of one call to a batch endpoint, the first included.
    pub attempts: usize,
    /// The first backoff of a retried call (doubling, up to `max`).
    pub retry_base: Duration,
    /// A `retry-after` longer than this is not waited for: the call fails.
    pub max_retry_after: Duration,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling {
            first: Duration::from_secs(5),
            max: Duration::from_secs(300),
            attempts: 5,
            retry_base: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl Polling {
    /// Waits between polls: exponential from `first` to `max`, with jitter, without end.
    pub fn poll_delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max.max(self.first))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    fn retries(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.retry_base)
            .with_max_delay(self.max.max(self.retry_base))
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1))
    }
}

/// A provider's batch API.
#[derive(Clone)]
pub enum BatchClient {
    OpenAi(openai::Batches),
    Anthropic(anthropic::Batches),
}

impl BatchClient {
    pub fn api(&self) -> Api {
        match self {
            BatchClient::OpenAi(_) => Api::OpenAi,
            BatchClient::Anthropic(_) => Api::Anthropic,
        }
    }

    pub fn limits(&self) -> Limits {
        match self {
            BatchClient::OpenAi(b) => b.limits,
            BatchClient::Anthropic(b) => b.limits,
        }
    }

    /// Smaller limits than the provider's (never larger: a batch over them is refused).
    pub fn with_limits(self, limits: Limits) -> BatchClient {
        let cap = |l: Limits, p: Limits| Limits {
            max_requests: l.max_requests.clamp(1, p.max_requests),
            max_bytes: l.max_bytes.clamp(1, p.max_bytes),
        };
        match self {
            BatchClient::OpenAi(mut b) => {
                b.limits = cap(limits, openai::LIMITS);
                BatchClient::OpenAi(b)
            }
            BatchClient::Anthropic(mut b) => {
                b.limits = cap(limits, anthropic::LIMITS);
                BatchClient::Anthropic(b)
            }
        }
    }

    pub fn with_polling(self, polling: Polling) -> BatchClient {
        match self {
            BatchClient::OpenAi(mut b) => {
                b.http.polling = polling;
                BatchClient::OpenAi(b)
            }
            BatchClient::Anthropic(mut b) => {
                b.http.polling = polling;
                BatchClient::Anthropic(b)
            }
        }
    }

    /// Puts `requests` in as few batches as the provider's limits allow (OpenAI: one model per
    /// batch) and creates them. `label` goes into the batches' metadata where the API has it.
    /// A failure to create a batch ends the submission with that error; batches created
    /// before it are in the error's `created` list, so that they can be cancelled or used.
    pub async fn submit(
        &self,
        requests: &[Queued],
        label: Option<&str>,
    ) -> Result<Submission, SubmitError> {
        match self {
            BatchClient::OpenAi(b) => b.submit(requests, label).await,
            BatchClient::Anthropic(b) => b.submit(requests).await,
        }
    }

    /// The batches made since `since` (unix seconds) with `label` in their metadata, with
    /// their requests, for finding batches made by a service that stopped before it stored
    /// their ids. Anthropic's batches carry no metadata: none are found there.
    pub async fn labelled(&self, label: &str, since: u64) -> Result<Vec<Handle>, ProviderError> {
        match self {
            BatchClient::OpenAi(b) => b.labelled(label, since).await,
            BatchClient::Anthropic(_) => Ok(Vec::new()),
        }
    }

    /// Polls a batch once.
    pub async fn status(&self, h: &Handle) -> Result<Status, ProviderError> {
        match self {
            BatchClient::OpenAi(b) => b.status(h).await,
            BatchClient::Anthropic(b) => b.status(h).await,
        }
    }

    /// Polls until the batch is over, backing off between polls; `seen` is told each status.
    /// It waits as long as the batch runs (up to the provider's 24 hours): wrap it in a
    /// timeout for a deadline of one's own.
    pub async fn wait(
        &self,
        h: &Handle,
        mut seen: impl FnMut(&Status),
    ) -> Result<Status, ProviderError> {
        let mut delays = self.http().polling.poll_delays();
        loop {
            let status = self.status(h).await?;
            seen(&status);
            if status.phase.is_over() {
                return Ok(status);
            }
            let wait = delays.next().unwrap_or(self.http().polling.max);
            tokio::time::sleep(wait).await;
        }
    }

    /// Every request's outcome once the batch is over, in the order of `h.requests`: read
    /// from the provider's results and matched by custom id; a request with no result is
    /// [`ItemFailure::Missing`] (or the batch's own fate, when it failed, expired or was
    /// cancelled).
    pub async fn results(
        &self,
        h: &Handle,
        status: &Status,
    ) -> Result<Vec<(CustomId, Outcome)>, ProviderError> {
        let mut found = std::collections::HashMap::with_capacity(h.requests.len());
        if let Phase::Failed(why) = &status.phase {
            return Ok(h
                .requests
                .iter()
                .map(|id| (*id, Err(ItemFailure::BatchFailed(why.clone()))))
                .collect());
        }
        for source in &status.results {
            let lines = match self {
                BatchClient::OpenAi(b) => b.results(source).await?,
                BatchClient::Anthropic(b) => b.results(source).await?,
            };
            for (id, outcome) in lines {
                found.insert(id, outcome);
            }
        }
        let unrun = match status.phase {
            Phase::Expired => ItemFailure::Expired,
            Phase::Cancelled => ItemFailure::Cancelled,
            _ => ItemFailure::Missing,
        };
        Ok(h.requests
            .iter()
            .map(|id| (*id, found.remove(id).unwrap_or_else(|| Err(unrun.clone()))))
            .collect())
    }

    /// Asks the provider to cancel the batch; it says where the batch is then (cancelling,
    /// or over already).
    pub async fn cancel(&self, h: &Handle) -> Result<Status, ProviderError> {
        match self {
            BatchClient::OpenAi(b) => b.cancel(h).await,
            BatchClient::Anthropic(b) => b.cancel(h).await,
        }
    }

    /// How this client polls and retries.
    pub fn polling(&self) -> Polling {
        self.http().polling
    }

    fn http(&self) -> &Http {
        match self {
            BatchClient::OpenAi(b) => &b.http,
            BatchClient::Anthropic(b) => &b.http,
        }
    }
}

/// A submission that stopped on an error.
#[derive(Debug)]
pub struct SubmitError {
    pub error: ProviderError,
    /// What was done before it.
    pub done: Submission,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "creating a provider batch failed ({} created before): {}",
            self.done.batches.len(),
            self.error
        )
    }
}

impl std::error::Error for SubmitError {}

/// One encoded request, ready to go into a batch.
pub(crate) struct Encoded {
    pub id: CustomId,
    /// OpenAI: a batch takes one model.
    pub model: String,
    /// What it adds to the upload, in bytes.
    pub bytes: Vec<u8>,
}

/// Encodes every request with `encode`; those that cannot be are refused (to go online).
pub(crate) fn encode_all(
    http: &Http,
    requests: &[Queued],
    encode: impl Fn(&Queued) -> Result<Vec<u8>, ProviderError>,
) -> (Vec<Encoded>, Vec<(CustomId, ProviderError)>) {
    let mut encoded = Vec::with_capacity(requests.len());
    let mut refused = Vec::new();
    for q in requests {
        match encode(q) {
            Ok(bytes) => encoded.push(Encoded {
                id: q.id,
                model: q.chat.model.clone(),
                bytes,
            }),
            Err(e) => refused.push((q.id, http.redact(e))),
        }
    }
    (encoded, refused)
}

/// Groups encoded requests into batches within `limits` (`overhead` bytes per batch and
/// `per_item` per request, besides the requests' own), keeping the input order and, with
/// `by_model`, one model per batch. A request larger than a whole batch may be is refused.
pub(crate) fn split(
    encoded: Vec<Encoded>,
    limits: Limits,
    overhead: usize,
    per_item: usize,
    by_model: bool,
) -> (Vec<Vec<Encoded>>, Vec<(CustomId, ProviderError)>) {
    let mut groups: Vec<(String, Vec<Encoded>, usize)> = Vec::new();
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for e in encoded {
        let size = e.bytes.len() + per_item;
        if size + overhead > limits.max_bytes {
            refused.push((
                e.id,
                ProviderError::Unsupported(format!(
                    "the request is {} bytes, more than a provider batch takes ({} bytes)",
                    e.bytes.len(),
                    limits.max_bytes
                )),
            ));
            continue;
        }
        let key = if by_model {
            e.model.clone()
        } else {
            String::new()
        };
        let slot = match groups.iter().position(|(k, _, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key.clone(), Vec::new(), overhead));
                groups.len() - 1
            }
        };
        let (_, items, bytes) = &mut groups[slot];
        if items.len() + 1 > limits.max_requests || *bytes + size > limits.max_bytes {
            done.push(std::mem::take(items));
            *bytes = overhead;
        }
        let (_, items, bytes) = &mut groups[slot];
        *bytes += size;
        items.push(e);
    }
    done.extend(
        groups
            .into_iter()
            .map(|(_, items, _)| items)
            .filter(|g| !g.is_empty()),
    );
    (done, refused)
}

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
        e.redacted(self.secret.as_deref(), super::MAX_ERROR_CHARS)
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
        ProviderError::Connect(m) => m.starts_with(super::http::NOT_CONNECTED),
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

/// The HTTP status an error type of Anthropic's stands for, so that an errored request of a
/// batch is typed as the same online error would be.
pub(crate) fn anthropic_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_and_refuse_what_is_not_theirs() {
        let id = CustomId::new(123_456, 2);
        assert_eq!(id.to_string(), "i123456-a2");
        assert_eq!(CustomId::parse("i123456-a2"), Some(id));
        for bad in ["", "i-a1", "i1-a", "x1-a1", "i1-a1x", "i+1-a1", "i1a1"] {
            assert_eq!(CustomId::parse(bad), None, "{bad}");
        }
        let max = CustomId::new(u64::MAX, u32::MAX).to_string();
        assert!(max.len() <= 64 && max.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"i123456-a2\"");
    }

    fn enc(index: u64, model: &str, bytes: usize) -> Encoded {
        Encoded {
            id: CustomId::new(index, 0),
            model: model.into(),
            bytes: vec![b'x'; bytes],
        }
    }

    #[test]
    fn requests_are_split_at_the_count_and_byte_limits_and_by_model() {
        let limits = Limits {
            max_requests: 3,
            max_bytes: 100,
        };
        let items: Vec<Encoded> = (0..7).map(|i| enc(i, "m", 10)).collect();
        let (groups, refused) = split(items, limits, 0, 0, true);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert!(refused.is_empty());
        // Bytes: 40 + 40 fit in 100 with 10 of overhead, a third does not.
        let items: Vec<Encoded> = (0..3).map(|i| enc(i, "m", 40)).collect();
        let (groups, _) = split(items, limits, 10, 0, true);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        // One model per batch, in input order within each.
        let items = vec![enc(0, "a", 1), enc(1, "b", 1), enc(2, "a", 1)];
        let (groups, _) = split(items, limits, 0, 0, true);
        let ids: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| g.iter().map(|e| e.id.index).collect())
            .collect();
        assert_eq!(ids, [vec![0, 2], vec![1]]);
        // A request larger than a batch may be goes online.
        let (groups, refused) = split(vec![enc(0, "a", 200), enc(1, "a", 5)], limits, 0, 0, true);
        assert_eq!(groups.len(), 1);
        assert_eq!(refused[0].0, CustomId::new(0, 0));
    }

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
            crate::http::NOT_CONNECTED
        ))));
        assert!(!not_taken(&ProviderError::Connect(
            "connection reset by peer".into()
        )));
    }
}
