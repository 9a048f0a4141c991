//! Anthropic's Message Batches API.
//!
//! - Submit: `POST {base}/v1/messages/batches {"requests":[{"custom_id","params":<the Messages
//!   request>}]}` with the adapter's headers (`x-api-key`, `anthropic-version`).
//! - Poll: `GET {base}/v1/messages/batches/{id}`: `processing_status` in_progress -> canceling
//!   -> ended; `request_counts {processing, succeeded, errored, canceled, expired}` (Anthropic
//!   fills them in only once the batch has ended); `results_url` once ended.
//! - Results: `GET {results_url}` with the same headers: JSONL
//!   `{"custom_id","result":{"type":"succeeded","message"} | {"type":"errored","error"} |
//!   {"type":"canceled"} | {"type":"expired"}}`, in no particular order.
//! - Cancel: `POST {base}/v1/messages/batches/{id}/cancel`.
//!
//! Limits: 100,000 requests or 256 MB per batch. The credentials go only to the provider's
//! own host: a `results_url` elsewhere is refused.

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::batch::{
    Api, Counts, Handle, ItemFailure, Limits, Outcome, Phase, Queued, Status, Submission,
    SubmitError,
};
use super::calls::{Http, Replay, parse};
use super::custom_id::CustomId;
use super::packing::{Encoded, encode_all, split};
use crate::answer::{Answer, typed_error_message};
use crate::anthropic::Anthropic;
use crate::outgoing::encode_path_segment;
use crate::wire::WireFormat;
use llm_judge_chat::ProviderError;

/// Anthropic's limits per batch.
pub const LIMITS: Limits = Limits {
    max_requests: 100_000,
    max_bytes: 256_000_000,
};

/// `{"requests":[` and `]}` around the requests.
const ENVELOPE_BYTES: usize = 15;

/// Anthropic's Message Batches on the Messages API's base URL.
#[derive(Clone)]
pub struct Batches {
    pub(super) http: Http,
    pub(super) limits: Limits,
    /// `{base}/v1/messages/batches`.
    batches: reqwest::Url,
    headers: Option<HeaderMap>,
    wire: std::sync::Arc<Anthropic>,
}

fn error_message(body: &[u8]) -> String {
    typed_error_message(body, "/error/type")
}

impl Batches {
    pub fn new(http: Http, wire: std::sync::Arc<Anthropic>) -> Batches {
        let mut batches = wire.messages_url().clone();
        batches.set_path(&format!(
            "{}/batches",
            wire.messages_url().path().trim_end_matches('/')
        ));
        Batches {
            http,
            limits: LIMITS,
            batches,
            headers: wire.headers().cloned(),
            wire,
        }
    }

    fn headers(&self) -> Result<&HeaderMap, ProviderError> {
        self.headers.as_ref().ok_or(ProviderError::NoCredentials)
    }

    fn url(&self, rest: &str) -> String {
        format!("{}{rest}", self.batches.as_str().trim_end_matches('/'))
    }

    pub(super) async fn submit(&self, requests: &[Queued]) -> Result<Submission, SubmitError> {
        let mut done = Submission::default();
        let headers = match self.headers() {
            Ok(h) => h.clone(),
            Err(error) => return Err(SubmitError { error, done }),
        };
        // Exactly the online body: the same model, system prompt, cache mark and limits.
        let (encoded, unencodable) = encode_all(&self.http, requests, |q| {
            let params = self.wire.body(&q.chat)?;
            let mut bytes = Vec::with_capacity(params.len() + 40);
            bytes.extend_from_slice(b"{\"custom_id\":\"");
            bytes.extend_from_slice(q.id.to_string().as_bytes());
            bytes.extend_from_slice(b"\",\"params\":");
            bytes.extend_from_slice(&params);
            bytes.push(b'}');
            Ok(bytes)
        });
        done.refused = unencodable;
        // Each request after the first adds a comma.
        let (groups, refused) = split(encoded, self.limits, ENVELOPE_BYTES, 1, false);
        done.refused.extend(refused);
        for group in groups {
            match self.create(&headers, &group).await {
                Ok(h) => done.batches.push(h),
                Err(error) => return Err(SubmitError { error, done }),
            }
        }
        Ok(done)
    }

    async fn create(
        &self,
        headers: &HeaderMap,
        group: &[Encoded],
    ) -> Result<Handle, ProviderError> {
        let mut body = Vec::with_capacity(
            group.iter().map(|e| e.bytes.len() + 1).sum::<usize>() + ENVELOPE_BYTES,
        );
        body.extend_from_slice(b"{\"requests\":[");
        for (i, e) in group.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&e.bytes);
        }
        body.extend_from_slice(b"]}");
        let body = bytes::Bytes::from(body);
        let url = self.batches.clone();
        let created = self
            .http
            .call(
                Replay::OnlyIfNotTaken,
                || {
                    self.http
                        .client
                        .post(url.clone())
                        .headers(headers.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                error_message,
            )
            .await?;
        let batch: WireBatch = parse(&created, "the created message batch")?;
        Ok(Handle {
            api: Api::Anthropic,
            id: batch.id,
            input_file_id: None,
            requests: group.iter().map(|e| e.id).collect(),
        })
    }

    pub(super) async fn status(&self, h: &Handle) -> Result<Status, ProviderError> {
        let url = self.url(&format!("/{}", encode_path_segment(&h.id)));
        self.batch_call(&url, false).await
    }

    pub(super) async fn cancel(&self, h: &Handle) -> Result<Status, ProviderError> {
        let url = self.url(&format!("/{}/cancel", encode_path_segment(&h.id)));
        self.batch_call(&url, true).await
    }

    async fn batch_call(&self, url: &str, post: bool) -> Result<Status, ProviderError> {
        let body = self
            .http
            .fetch(post, url, self.headers()?, error_message)
            .await?;
        let batch: WireBatch = parse(&body, "the message batch")?;
        batch.status(&self.batches)
    }

    /// The outcomes listed at a batch's `results_url`.
    pub(super) async fn results(
        &self,
        results_url: &str,
    ) -> Result<Vec<(CustomId, Outcome)>, ProviderError> {
        self.http
            .outcomes(results_url, self.headers()?, error_message, |l| {
                self.outcome(l)
            })
            .await
    }

    fn outcome(&self, line: &[u8]) -> Option<(CustomId, Outcome)> {
        let l: WireResult = serde_json::from_slice(line).ok()?;
        let id = CustomId::parse(&l.custom_id)?;
        let outcome = match l.result.kind.as_str() {
            "succeeded" => {
                let message = l.result.message?;
                let answer = Answer {
                    status: 200,
                    headers: HeaderMap::new(),
                    body: bytes::Bytes::copy_from_slice(message.get().as_bytes()),
                };
                self.wire
                    .decode(answer)
                    .map_err(|e| ItemFailure::Errored(self.http.redact(e)))
            }
            "errored" => {
                let body = l
                    .result
                    .error
                    .map(|e| e.get().to_string())
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                // `{"type":"error","error":{"type","message"}}`, or the inner error alone.
                let kind = v
                    .pointer("/error/type")
                    .or_else(|| v.get("type"))
                    .and_then(|t| t.as_str())
                    .unwrap_or("api_error");
                let message = if v.pointer("/error/message").is_some() {
                    typed_error_message(body.as_bytes(), "/error/type")
                } else {
                    let msg = v.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    format!("{kind}: {msg}")
                };
                Err(ItemFailure::Errored(self.http.redact(
                    ProviderError::Status {
                        status: anthropic_status(kind),
                        message,
                        retry_after: None,
                        should_retry: None,
                    },
                )))
            }
            "canceled" => Err(ItemFailure::Cancelled),
            "expired" => Err(ItemFailure::Expired),
            _ => Err(ItemFailure::Missing),
        };
        Some((id, outcome))
    }
}

#[derive(Deserialize)]
struct WireBatch {
    id: String,
    processing_status: String,
    #[serde(default)]
    request_counts: Option<WireCounts>,
    #[serde(default)]
    results_url: Option<String>,
    #[serde(default)]
    cancel_initiated_at: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireCounts {
    #[serde(default)]
    processing: u64,
    #[serde(default)]
    succeeded: u64,
    #[serde(default)]
    errored: u64,
    #[serde(default)]
    canceled: u64,
    #[serde(default)]
    expired: u64,
}

#[derive(Deserialize)]
struct WireResult {
    custom_id: String,
    result: WireOutcome,
}

#[derive(Deserialize)]
struct WireOutcome {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Box<RawValue>>,
}

impl WireBatch {
    /// The status; a `results_url` on another host than the API's is refused, since the
    /// credentials go with the request for it.
    fn status(self, api: &reqwest::Url) -> Result<Status, ProviderError> {
        let c = self.request_counts.unwrap_or_default();
        let counts = Counts {
            total: c.processing + c.succeeded + c.errored + c.canceled + c.expired,
            succeeded: c.succeeded,
            errored: c.errored,
            expired: c.expired,
            cancelled: c.canceled,
        };
        let phase = match self.processing_status.as_str() {
            "ended" if self.cancel_initiated_at.is_some() => Phase::Cancelled,
            "ended" => Phase::Ended,
            "canceling" => Phase::Cancelling,
            _ => Phase::InProgress,
        };
        let mut results = Vec::new();
        if let Some(u) = self.results_url.filter(|_| phase.is_over()) {
            let parsed = reqwest::Url::parse(&u)
                .map_err(|e| ProviderError::Decode(format!("results_url is not a URL: {e}")))?;
            if parsed.origin() != api.origin() {
                return Err(ProviderError::Decode(
                    "results_url points at another host than the API's; the key is not sent there"
                        .into(),
                ));
            }
            results.push(u);
        }
        Ok(Status {
            phase,
            counts,
            results,
        })
    }
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

    fn batches() -> Batches {
        let wire = Anthropic::new("https://api.anthropic.com", Some("sk-ant-secret-99")).unwrap();
        Batches::new(
            Http::for_tests("sk-ant-secret-99"),
            std::sync::Arc::new(wire),
        )
    }

    #[test]
    fn urls_hang_off_the_messages_api() {
        let b = batches();
        assert_eq!(
            b.batches.as_str(),
            "https://api.anthropic.com/v1/messages/batches"
        );
        assert_eq!(
            b.url("/msgbatch_1/cancel"),
            "https://api.anthropic.com/v1/messages/batches/msgbatch_1/cancel"
        );
    }

    #[test]
    fn results_read_as_online_answers_and_typed_failures() {
        let b = batches();
        let ok = br#"{"custom_id":"i0-a0","result":{"type":"succeeded","message":{"type":"message","content":[{"type":"text","text":"Verdict: 0"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":2,"cache_read_input_tokens":100}}}}"#;
        let c = b.outcome(ok).unwrap().1.unwrap();
        assert_eq!(c.text, "Verdict: 0");
        assert_eq!(c.usage.cached_prompt_tokens, 100);
        let errored = br#"{"custom_id":"i1-a0","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}}}"#;
        match b.outcome(errored).unwrap().1 {
            Err(ItemFailure::Errored(e)) => {
                assert_eq!(e.status(), Some(529));
                assert!(e.is_retryable());
                assert!(
                    e.to_string().contains("overloaded_error: Overloaded"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        let bad = br#"{"custom_id":"i2-a0","result":{"type":"errored","error":{"type":"invalid_request_error","message":"max_tokens: required"}}}"#;
        match b.outcome(bad).unwrap().1 {
            Err(ItemFailure::Errored(e)) => assert_eq!(e.status(), Some(400)),
            other => panic!("{other:?}"),
        }
        let expired = br#"{"custom_id":"i3-a1","result":{"type":"expired"}}"#;
        assert_eq!(b.outcome(expired).unwrap().1, Err(ItemFailure::Expired));
        let canceled = br#"{"custom_id":"i4-a0","result":{"type":"canceled"}}"#;
        assert_eq!(b.outcome(canceled).unwrap().1, Err(ItemFailure::Cancelled));
    }

    #[test]
    fn a_results_url_on_another_host_is_refused() {
        let api = reqwest::Url::parse("https://api.anthropic.com/v1/messages/batches").unwrap();
        let batch = |url: &str| WireBatch {
            id: "b".into(),
            processing_status: "ended".into(),
            request_counts: None,
            results_url: Some(url.into()),
            cancel_initiated_at: None,
        };
        assert!(
            batch("https://api.anthropic.com/v1/messages/batches/b/results")
                .status(&api)
                .is_ok()
        );
        assert!(
            batch("https://elsewhere.example/results")
                .status(&api)
                .is_err()
        );
    }
}
