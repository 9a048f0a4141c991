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

#[cfg(test)]
mod tests;
mod wire;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use self::wire::{WireBatch, WireFile, WireList, WireResult};
use super::batch::{
    Api, Handle, ItemFailure, Limits, Outcome, Queued, Status, Submission, SubmitError,
};
use super::calls::{Http, Replay, parse};
use super::clock::{CLOCK_SLACK_S, unix_now};
use super::custom_id::CustomId;
use super::packing::{Encoded, encode_all, split};
use crate::answer::{Answer, error_message};
use crate::outgoing::{encode_path_segment, json_body};
use crate::wire::WireFormat;
use llm_judge_chat::ProviderError;

/// OpenAI's limits per batch.
pub const LIMITS: Limits = Limits {
    max_requests: 50_000,
    max_bytes: 200_000_000,
};

/// The most batches looked at when searching a provider's list of batches.
const MAX_LISTED: usize = 10_000;

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
        let asked = unix_now().saturating_sub(CLOCK_SLACK_S);
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
            api: Api::OpenAi,
            id,
            input_file_id: Some(uploaded.id),
            requests,
        })
    }

    /// The batches made since `since` (unix seconds), newest first, as `GET /batches` lists
    /// them, page by page; at most [`MAX_LISTED`] are looked at.
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
            if older || !page.has_more || stuck || seen >= MAX_LISTED {
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
                api: Api::OpenAi,
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
