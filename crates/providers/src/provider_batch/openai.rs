//! OpenAI's Files and Batch API, and Azure OpenAI's global-batch deployments, which speak it.
//!
//! - Submit: the requests as a JSONL file, one line each,
//!   `{"custom_id","method":"POST","url":"/v1/chat/completions","body":<the chat request>}`,
//!   uploaded to `POST {base}/files` (multipart, `purpose=batch`); then
//!   `POST {base}/batches {input_file_id, endpoint, completion_window: "24h", metadata?}`.
//! - Poll: `GET {base}/batches/{id}`: `status` validating -> in_progress -> finalizing ->
//!   completed, or failed / expired / cancelling / cancelled; `request_counts`.
//! - Results: `GET {base}/files/{output_file_id}/content` and the same for `error_file_id`:
//!   JSONL `{"custom_id","response":{"status_code","body"},"error"}`.
//! - Cancel: `POST {base}/batches/{id}/cancel`.
//!
//! Limits: 50,000 requests and 200 MB per batch, and one model per batch. For OpenAI `base` is
//! the provider's `base_url` (`https://api.openai.com/v1`); for Azure it is
//! `{endpoint}/openai`, every call carries `api-version`, and the line's `url` and the batch's
//! `endpoint` are `/chat/completions` with the global-batch deployment as the body's `model`.

use std::collections::HashMap;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    CustomId, Encoded, Handle, Http, ItemFailure, Limits, Outcome, Phase, Queued, Replay, Status,
    Submission, SubmitError, encode_all, parse, split,
};
use crate::{Answer, WireFormat, encode_path_segment, error_message, json_body};
use llm_judge_chat::ProviderError;

/// OpenAI's limits per batch.
pub const LIMITS: Limits = Limits {
    max_requests: 50_000,
    max_bytes: 200_000_000,
};

/// A batch API that speaks OpenAI's.
#[derive(Clone)]
pub struct Batches {
    pub(super) http: Http,
    pub(super) limits: Limits,
    /// `https://api.openai.com/v1`, or Azure's `{endpoint}/openai`.
    base: String,
    /// Azure's `api-version`, sent with every call.
    api_version: Option<String>,
    /// The chat endpoint named in each line and in the batch.
    endpoint: &'static str,
    headers: Option<HeaderMap>,
    /// The wire format whose `decode` reads each result.
    wire: std::sync::Arc<dyn WireFormat>,
}

impl Batches {
    /// OpenAI's Batch API at `base_url` (which includes `/v1`).
    pub fn openai(
        http: Http,
        base_url: &str,
        headers: Option<HeaderMap>,
        wire: std::sync::Arc<dyn WireFormat>,
    ) -> Batches {
        Batches {
            http,
            limits: LIMITS,
            base: base_url.trim_end_matches('/').to_string(),
            api_version: None,
            endpoint: "/v1/chat/completions",
            headers,
            wire,
        }
    }

    /// Azure OpenAI's Batch API on a resource `endpoint`, with `api_version`.
    pub fn azure(
        http: Http,
        endpoint: &str,
        api_version: &str,
        headers: Option<HeaderMap>,
        wire: std::sync::Arc<dyn WireFormat>,
    ) -> Batches {
        let endpoint_url = endpoint.trim_end_matches('/');
        let endpoint_url = endpoint_url.strip_suffix("/openai").unwrap_or(endpoint_url);
        Batches {
            http,
            limits: LIMITS,
            base: format!("{endpoint_url}/openai"),
            api_version: Some(api_version.to_string()),
            endpoint: "/chat/completions",
            headers,
            wire,
        }
    }

    /// `{base}{path}`, with Azure's `api-version`.
    fn url(&self, path: &str) -> String {
        self.url_with(path, &[])
    }

    /// `{base}{path}?{query}`, with Azure's `api-version` among the query's pairs (no `?` when
    /// there are none).
    fn url_with(&self, path: &str, query: &[(&str, &str)]) -> String {
        let pairs: Vec<String> = query
            .iter()
            .copied()
            .chain(self.api_version.as_deref().map(|v| ("api-version", v)))
            .map(|(k, v)| format!("{k}={}", encode_path_segment(v)))
            .collect();
        match pairs.is_empty() {
            true => format!("{}{path}", self.base),
            false => format!("{}{path}?{}", self.base, pairs.join("&")),
        }
    }

    fn headers(&self) -> Result<&HeaderMap, ProviderError> {
        self.headers.as_ref().ok_or(ProviderError::NoCredentials)
    }

    /// One JSONL line: the online chat body, with the model in it (Azure's online calls carry
    /// the deployment in the path instead).
    fn line(&self, q: &Queued) -> Result<Vec<u8>, ProviderError> {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            custom_id: String,
            method: &'static str,
            url: &'static str,
            body: &'a RawValue,
        }
        let body = match self.api_version {
            None => self.wire.encode(&q.chat)?.body,
            Some(_) => json_body(&crate::openai::wire_request(&q.chat, Some(&q.chat.model)))?,
        };
        let body = String::from_utf8(body)
            .map_err(|_| ProviderError::Unsupported("the request is not UTF-8".into()))?;
        let body = RawValue::from_string(body)
            .map_err(|e| ProviderError::Unsupported(format!("the request is not JSON: {e}")))?;
        let mut out = json_body(&Line {
            custom_id: q.id.to_string(),
            method: "POST",
            url: self.endpoint,
            body: &body,
        })?;
        out.push(b'\n');
        Ok(out)
    }

    pub(super) async fn submit(
        &self,
        requests: &[Queued],
        label: Option<&str>,
    ) -> Result<Submission, SubmitError> {
        let mut done = Submission::default();
        let headers = match self.headers() {
            Ok(h) => h.clone(),
            Err(error) => return Err(SubmitError { error, done }),
        };
        let (encoded, unencodable) = encode_all(&self.http, requests, |q| self.line(q));
        done.refused = unencodable;
        let (groups, refused) = split(encoded, self.limits, 0, 0, true);
        done.refused.extend(refused);
        for group in groups {
            match self.create(&headers, &group, label).await {
                Ok(h) => done.batches.push(h),
                Err(error) => return Err(SubmitError { error, done }),
            }
        }
        Ok(done)
    }

    /// Uploads one batch's file and creates the batch.
    async fn create(
        &self,
        headers: &HeaderMap,
        group: &[Encoded],
        label: Option<&str>,
    ) -> Result<Handle, ProviderError> {
        let file: Vec<u8> = group.iter().flat_map(|e| e.bytes.iter().copied()).collect();
        let file = bytes::Bytes::from(file);
        let url = self.url("/files");
        // A second upload after a lost answer leaves an unused file, never a second batch.
        let uploaded = self
            .http
            .call(
                Replay::Safe,
                || {
                    let part = reqwest::multipart::Part::stream(file.clone())
                        .file_name("llm-judge-batch.jsonl")
                        .mime_str("application/jsonl")
                        .expect("a valid media type");
                    let form = reqwest::multipart::Form::new()
                        .text("purpose", "batch")
                        .part("file", part);
                    self.http
                        .client
                        .post(&url)
                        .headers(headers.clone())
                        .multipart(form)
                },
                error_message,
            )
            .await?;
        let uploaded: WireFile = parse(&uploaded, "the uploaded file")?;
        let mut create = serde_json::json!({
            "input_file_id": uploaded.id,
            "endpoint": self.endpoint,
            "completion_window": "24h",
        });
        if let Some(l) = label {
            create["metadata"] = serde_json::json!({ LABEL_KEY: l });
        }
        let body = serde_json::to_vec(&create).expect("JSON serialises");
        let url = self.url("/batches");
        let asked = super::unix_now().saturating_sub(super::CLOCK_SLACK_S);
        let created = self
            .http
            .call(
                Replay::OnlyIfNotTaken,
                || {
                    self.http
                        .client
                        .post(&url)
                        .headers(headers.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                error_message,
            )
            .await;
        let requests = group.iter().map(|e| e.id).collect();
        let id = match created {
            Ok(created) => parse::<WireBatch>(&created, "the created batch")?.id,
            // The answer was lost after the request was sent (a timeout, a dropped connection,
            // a 5xx from a gateway): the batch may have been made all the same. Running both
            // it and the online calls that replace it would bill every request twice.
            Err(e) if !refused_outright(&e) => {
                match self.made_from(headers, &uploaded.id, asked).await {
                    Ok(Some(id)) => {
                        tracing::warn!(batch = %id, "creating a provider batch seemed to fail, but the provider made it: it is used");
                        id
                    }
                    Ok(None) => return Err(e),
                    Err(lookup) => {
                        tracing::warn!(error = %lookup, "could not check whether a provider batch was made after its creation failed");
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        Ok(Handle {
            api: super::Api::OpenAi,
            id,
            input_file_id: Some(uploaded.id),
            requests,
        })
    }

    /// The batches made since `since` (unix seconds), newest first, as `GET /batches` lists
    /// them, page by page; at most [`super::MAX_LISTED`] are looked at.
    async fn listed_since(
        &self,
        headers: &HeaderMap,
        since: u64,
        mut keep: impl FnMut(&WireBatch) -> bool,
    ) -> Result<Vec<WireBatch>, ProviderError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        let mut seen = 0usize;
        loop {
            let mut query = vec![("limit", "100")];
            if let Some(a) = &after {
                query.push(("after", a.as_str()));
            }
            let url = self.url_with("/batches", &query);
            let body = self.http.fetch(false, &url, headers, error_message).await?;
            let page: WireList = parse(&body, "the list of batches")?;
            let mut older = false;
            let cursor = after.clone();
            for b in page.data {
                seen += 1;
                if b.created_at.is_some_and(|t| t < since) {
                    older = true;
                    break;
                }
                after = Some(b.id.clone());
                if keep(&b) {
                    out.push(b);
                }
            }
            // A page that does not move the cursor would be asked for again and again.
            let stuck = after.is_none() || after == cursor;
            if older || !page.has_more || stuck || seen >= super::MAX_LISTED {
                return Ok(out);
            }
        }
    }

    /// The id of the batch made since `since` from the uploaded file `file_id`, if any.
    async fn made_from(
        &self,
        headers: &HeaderMap,
        file_id: &str,
        since: u64,
    ) -> Result<Option<String>, ProviderError> {
        let found = self
            .listed_since(headers, since, |b| {
                b.input_file_id.as_deref() == Some(file_id)
            })
            .await?;
        Ok(found.into_iter().next().map(|b| b.id))
    }

    /// The batches made since `since` (unix seconds) whose metadata carries `label`: batches
    /// this service made and has no record of (it stopped between making one and storing its
    /// id). Their requests are read back from their input files.
    pub(super) async fn labelled(
        &self,
        label: &str,
        since: u64,
    ) -> Result<Vec<Handle>, ProviderError> {
        let headers = self.headers()?.clone();
        let found = self
            .listed_since(&headers, since, |b| {
                b.metadata
                    .as_ref()
                    .and_then(|m| m.get(LABEL_KEY))
                    .and_then(serde_json::Value::as_str)
                    == Some(label)
            })
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for b in found {
            let Some(file) = b.input_file_id else {
                continue;
            };
            let requests = self.input_ids(&headers, &file).await?;
            out.push(Handle {
                api: super::Api::OpenAi,
                id: b.id,
                input_file_id: Some(file),
                requests,
            });
        }
        Ok(out)
    }

    /// The custom ids in an uploaded input file, in its order.
    async fn input_ids(
        &self,
        headers: &HeaderMap,
        file_id: &str,
    ) -> Result<Vec<CustomId>, ProviderError> {
        #[derive(Deserialize)]
        struct Line {
            custom_id: String,
        }
        let url = self.url(&format!("/files/{}/content", encode_path_segment(file_id)));
        let mut ids = Vec::new();
        self.http
            .lines(
                || self.http.client.get(&url).headers(headers.clone()),
                error_message,
                |line| {
                    if let Some(id) = serde_json::from_slice::<Line>(line)
                        .ok()
                        .and_then(|l| CustomId::parse(&l.custom_id))
                    {
                        ids.push(id);
                    }
                },
            )
            .await?;
        Ok(ids)
    }

    pub(super) async fn status(&self, h: &Handle) -> Result<Status, ProviderError> {
        let url = self.url(&format!("/batches/{}", encode_path_segment(&h.id)));
        self.batch_call(&url, false).await
    }

    pub(super) async fn cancel(&self, h: &Handle) -> Result<Status, ProviderError> {
        let url = self.url(&format!("/batches/{}/cancel", encode_path_segment(&h.id)));
        self.batch_call(&url, true).await
    }

    async fn batch_call(&self, url: &str, post: bool) -> Result<Status, ProviderError> {
        let body = self
            .http
            .fetch(post, url, self.headers()?, error_message)
            .await?;
        let batch: WireBatch = parse(&body, "the batch")?;
        Ok(batch.status())
    }

    /// The outcomes in one output or error file.
    pub(super) async fn results(
        &self,
        file_id: &str,
    ) -> Result<Vec<(CustomId, Outcome)>, ProviderError> {
        let url = self.url(&format!("/files/{}/content", encode_path_segment(file_id)));
        self.http
            .outcomes(&url, self.headers()?, error_message, |l| self.outcome(l))
            .await
    }

    /// One results line read as the online answer would be; `None` for a line that is not a
    /// result of ours.
    fn outcome(&self, line: &[u8]) -> Option<(CustomId, Outcome)> {
        let l: WireResult = serde_json::from_slice(line).ok()?;
        let id = CustomId::parse(&l.custom_id)?;
        let outcome = match (l.response, l.error) {
            (Some(r), _) => {
                let answer = Answer {
                    status: r.status_code,
                    headers: HeaderMap::new(),
                    body: bytes::Bytes::copy_from_slice(r.body.get().as_bytes()),
                };
                self.wire
                    .decode(answer)
                    .map_err(|e| ItemFailure::Errored(self.http.redact(e)))
            }
            (None, Some(e)) => Err(match e.code.as_deref() {
                Some("batch_expired") => ItemFailure::Expired,
                Some("batch_cancelled") => ItemFailure::Cancelled,
                _ => ItemFailure::Errored(self.http.redact(ProviderError::Status {
                    status: 500,
                    message: format!(
                        "{}: {}",
                        e.code.as_deref().unwrap_or("error"),
                        e.message.unwrap_or_default()
                    ),
                    retry_after: None,
                    should_retry: None,
                })),
            }),
            (None, None) => Err(ItemFailure::Missing),
        };
        Some((id, outcome))
    }
}

/// The metadata key a batch's label goes under.
const LABEL_KEY: &str = "llm_judge";

/// Whether a failed creation is one the provider answered with a refusal (a 4xx other than
/// a timeout): no batch was made. Anything else (a timeout, a lost connection, a 5xx) leaves
/// it open.
fn refused_outright(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => (400..500).contains(status) && *status != 408,
        ProviderError::Tls(_) | ProviderError::NoCredentials | ProviderError::Unsupported(_) => {
            true
        }
        _ => false,
    }
}

#[derive(Deserialize)]
struct WireFile {
    id: String,
}

#[derive(Deserialize)]
struct WireList {
    #[serde(default)]
    data: Vec<WireBatch>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct WireBatch {
    id: String,
    status: String,
    #[serde(default)]
    created_at: Option<u64>,
    #[serde(default)]
    input_file_id: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    request_counts: Option<WireCounts>,
    #[serde(default)]
    output_file_id: Option<String>,
    #[serde(default)]
    error_file_id: Option<String>,
    #[serde(default)]
    errors: Option<WireErrors>,
}

#[derive(Deserialize, Default)]
struct WireCounts {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    completed: u64,
    #[serde(default)]
    failed: u64,
}

#[derive(Deserialize)]
struct WireErrors {
    #[serde(default)]
    data: Vec<WireError>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireResult {
    custom_id: String,
    #[serde(default)]
    response: Option<WireResponse>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireResponse {
    status_code: u16,
    body: Box<RawValue>,
}

impl WireBatch {
    fn status(self) -> Status {
        let phase = match self.status.as_str() {
            "validating" => Phase::Validating,
            "in_progress" => Phase::InProgress,
            "finalizing" => Phase::Finalizing,
            "cancelling" => Phase::Cancelling,
            "completed" => Phase::Ended,
            "expired" => Phase::Expired,
            "cancelled" => Phase::Cancelled,
            "failed" => Phase::Failed(
                self.errors
                    .map(|e| {
                        let mut seen = HashMap::new();
                        e.data
                            .into_iter()
                            .filter_map(|d| d.message.or(d.code))
                            .filter(|m| seen.insert(m.clone(), ()).is_none())
                            .take(3)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "no reason given".into()),
            ),
            // A status this client does not know yet: keep polling.
            _ => Phase::InProgress,
        };
        let c = self.request_counts.unwrap_or_default();
        let counts = super::Counts {
            total: c.total,
            succeeded: c.completed,
            errored: c.failed,
            ..super::Counts::default()
        };
        let results = [self.output_file_id, self.error_file_id]
            .into_iter()
            .flatten()
            .filter(|f| !f.is_empty())
            .collect();
        Status {
            phase,
            counts,
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches() -> Batches {
        let wire = crate::openai::OpenAi::new(
            "openai",
            "https://api.openai.com/v1",
            Some("sk-secret-key-1234"),
            &[],
        )
        .unwrap();
        Batches::openai(
            Http::for_tests("sk-secret-key-1234"),
            "https://api.openai.com/v1/",
            wire.headers().cloned(),
            std::sync::Arc::new(wire),
        )
    }

    #[test]
    fn a_line_carries_exactly_the_online_body() {
        let b = batches();
        let chat = crate::conformance::request();
        let q = Queued {
            id: CustomId::new(7, 1),
            chat: std::sync::Arc::new(chat.clone()),
        };
        let line: serde_json::Value = serde_json::from_slice(&b.line(&q).unwrap()).unwrap();
        let online: serde_json::Value =
            serde_json::from_slice(&b.wire.encode(&chat).unwrap().body).unwrap();
        assert_eq!(line["body"], online);
        assert_eq!(line["custom_id"], "i7-a1");
        assert_eq!(line["url"], "/v1/chat/completions");
        assert_eq!(line["method"], "POST");
        assert_eq!(b.url("/files"), "https://api.openai.com/v1/files");
    }

    #[test]
    fn results_lines_read_as_online_answers_and_typed_failures() {
        let b = batches();
        let ok = br#"{"id":"r1","custom_id":"i3-a0","response":{"status_code":200,"request_id":"x","body":{"choices":[{"message":{"content":"Verdict: 1"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}},"error":null}"#;
        let (id, o) = b.outcome(ok).unwrap();
        assert_eq!(id, CustomId::new(3, 0));
        let c = o.unwrap();
        assert_eq!(c.text, "Verdict: 1");
        assert_eq!(c.usage.cached_prompt_tokens, 4);
        let failed = br#"{"custom_id":"i4-a0","response":{"status_code":500,"body":{"error":{"message":"boom sk-secret-key-1234","type":"server_error","param":null,"code":null}}},"error":null}"#;
        match b.outcome(failed).unwrap().1 {
            Err(ItemFailure::Errored(e)) => {
                assert_eq!(e.status(), Some(500));
                assert!(e.is_retryable());
                assert!(!e.to_string().contains("sk-secret"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let expired = br#"{"custom_id":"i5-a2","response":null,"error":{"code":"batch_expired","message":"late"}}"#;
        assert_eq!(b.outcome(expired).unwrap().1, Err(ItemFailure::Expired));
        assert!(b.outcome(br#"{"custom_id":"someone-else"}"#).is_none());
        assert!(b.outcome(b"not json").is_none());
    }

    #[test]
    fn statuses_map_to_phases() {
        let s = |json: &str| serde_json::from_str::<WireBatch>(json).unwrap().status();
        let st = s(
            r#"{"id":"b","status":"completed","request_counts":{"total":3,"completed":2,"failed":1},"output_file_id":"f1","error_file_id":"f2"}"#,
        );
        assert_eq!(st.phase, Phase::Ended);
        assert_eq!(
            (st.counts.succeeded, st.counts.errored, st.counts.total),
            (2, 1, 3)
        );
        assert_eq!(st.results, ["f1", "f2"]);
        let st = s(
            r#"{"id":"b","status":"failed","errors":{"data":[{"code":"invalid","message":"line 1 is bad"}]}}"#,
        );
        assert_eq!(st.phase, Phase::Failed("line 1 is bad".into()));
        assert_eq!(
            s(r#"{"id":"b","status":"cancelling"}"#).phase,
            Phase::Cancelling
        );
    }
}
