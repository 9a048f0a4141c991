//! `llm-judge run --server URL`: items go to a running service's batch endpoint in chunks, and
//! the results come back renumbered to their place in the input file.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use llm_judge_judge::JudgeKind;

/// Most items per batch request.
pub const MAX_CHUNK: usize = 500;
/// Tries of one batch request when the server is unreachable, overloaded or restarting.
const TRIES: u32 = 5;

/// One item on its way to the server: its place in the input and its fields.
#[derive(Debug)]
pub struct Pending {
    pub index: usize,
    pub line: usize,
    pub value: Value,
}

/// A running llm-judge service.
pub struct Remote {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    kind: JudgeKind,
    judge: Option<String>,
    /// The route that judges items naming no judge, as `name [provider:model, ...]`.
    pub route: String,
    /// `--provider-batch`: each chunk goes as a job (`POST /v1/jobs` with `provider_batch`)
    /// judging this many items at once where it calls online.
    job_concurrency: Option<usize>,
}

/// Items per job of `--provider-batch` (the service's default `server.max_batch_items`).
pub const JOB_CHUNK: usize = 10_000;

impl Remote {
    /// Checks that the server answers, takes the token and knows the judge, before any item is
    /// sent.
    pub async fn connect(
        url: &str,
        token: Option<String>,
        kind: JudgeKind,
        judge: Option<String>,
    ) -> Result<Remote, String> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "--server {url:?} must be an http:// or https:// URL"
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut req = client
            .get(format!("{base}/v1/providers"))
            .timeout(Duration::from_secs(30));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach the server at {base}: {}", error_chain(&e)))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(format!(
                "the server at {base} refused the client token (401): set LLM_JUDGE_TOKEN or \
                 --token to one of its [auth] tokens"
            ));
        }
        if !status.is_success() {
            return Err(format!(
                "the server at {base} answered {status} to GET /v1/providers; is it llm-judge?"
            ));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("the server at {base} sent an unreadable answer: {e}"))?;
        let routes = body["routes"].as_object().cloned().unwrap_or_default();
        let name = judge
            .clone()
            .or_else(|| body["default_route"].as_str().map(str::to_string))
            .unwrap_or_else(|| "default".to_string());
        let panels = body["panels"].as_object().cloned().unwrap_or_default();
        let Some(steps) = routes.get(&name).or_else(|| panels.get(&name)) else {
            let known: Vec<&str> = routes
                .keys()
                .chain(panels.keys())
                .map(String::as_str)
                .collect();
            return Err(format!(
                "unknown judge {name:?}: the server at {base} has {}",
                known.join(", ")
            ));
        };
        let steps: Vec<&str> = steps
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Ok(Remote {
            client,
            base,
            token,
            kind,
            judge,
            route: format!("{name} [{}]", steps.join(", ")),
            job_concurrency: None,
        })
    }

    /// Sends each chunk as a job with `provider_batch`, judging `concurrency` items at once
    /// where it calls online.
    pub fn with_provider_batch(mut self, concurrency: usize) -> Remote {
        self.job_concurrency = Some(concurrency.max(1));
        self
    }

    /// Whether chunks go as provider-batch jobs.
    pub fn is_job(&self) -> bool {
        self.job_concurrency.is_some()
    }

    /// Judges a chunk; the entries carry the items' indices and line numbers in the input.
    /// `Err` when the server could not judge it at all (after retries): the run stops.
    /// `budget` is the chunk's own `max_cost_usd` / `max_tokens` (what is left of the run's).
    pub async fn judge(
        &self,
        items: Vec<Pending>,
        max_concurrent: usize,
        budget: Option<llm_judge_work::batch::Limits>,
    ) -> Result<Vec<Value>, String> {
        let max_concurrent = self.job_concurrency.unwrap_or(max_concurrent);
        let mut body = json!({
            "kind": self.kind.as_str(),
            "max_concurrent": max_concurrent.clamp(1, items.len().max(1)),
            "items": items.iter().map(|p| &p.value).collect::<Vec<_>>(),
        });
        if let Some(j) = &self.judge {
            body["judge"] = json!(j);
        }
        if let Some(b) = budget {
            if let Some(c) = b.max_cost_usd {
                body["max_cost_usd"] = json!(c);
            }
            if let Some(t) = b.max_tokens {
                body["max_tokens"] = json!(t);
            }
        }
        let answer = if self.is_job() {
            self.run_job(body).await?
        } else {
            self.post("/v1/judge/batch", &body).await?
        };
        let Some(results) = answer["results"].as_array() else {
            return Err("the server's batch answer has no results".to_string());
        };
        if results.len() != items.len() {
            return Err(format!(
                "the server answered {} results for {} items",
                results.len(),
                items.len()
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for r in results {
            let local = r["index"].as_u64().map_or(usize::MAX, |i| i as usize);
            let Some(p) = items.get(local) else {
                return Err(format!(
                    "the server answered an unknown index {}",
                    r["index"]
                ));
            };
            out.push(renumber(r.clone(), local, p));
        }
        Ok(out)
    }

    /// Runs a chunk as a provider-batch job: submitted (with an idempotency key made of the
    /// request, so that a run started again with the same chunk finds its job and its provider
    /// batches instead of making new ones), followed until it ends, and its results read.
    async fn run_job(&self, mut body: Value) -> Result<Value, String> {
        use sha2::Digest;
        body["provider_batch"] = json!(true);
        let digest = sha2::Sha256::digest(body.to_string().as_bytes());
        use base64::Engine;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        body["idempotency_key"] = json!(format!("run-{key}"));
        let accepted = self.post("/v1/jobs", &body).await?;
        let Some(id) = accepted["id"].as_str() else {
            return Err("the server's job answer has no id".to_string());
        };
        let mut wait = Duration::from_millis(200);
        loop {
            let job: Value = serde_json::from_slice(&self.get(&format!("/v1/jobs/{id}")).await?)
                .map_err(|e| format!("the server sent an unreadable job: {e}"))?;
            match job["status"].as_str() {
                Some("completed") => break,
                Some("cancelled") | Some("failed") => {
                    return Err(format!(
                        "the job {id} on the server ended {}{}",
                        job["status"],
                        job["error"]
                            .as_str()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ));
                }
                _ => {}
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        let text = self.get(&format!("/v1/jobs/{id}/results")).await?;
        let results: Result<Vec<Value>, _> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice::<Value>)
            .collect();
        let results = results.map_err(|e| format!("the job's results are unreadable: {e}"))?;
        Ok(json!({ "results": results }))
    }

    /// A GET of `path`: its body.
    async fn get(&self, path: &str) -> Result<bytes::Bytes, String> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .send(&format!("GET {path}"), || self.client.get(&url))
            .await?;
        resp.bytes()
            .await
            .map_err(|e| format!("cannot read the server's answer: {e}"))
    }

    /// A POST of `body` to `path`: its JSON answer.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .send(&format!("POST {path}"), || {
                self.client.post(&url).json(body)
            })
            .await?;
        resp.json()
            .await
            .map_err(|e| format!("the server sent an unreadable answer to POST {path}: {e}"))
    }

    /// Sends the request `make` makes (with the client token), again with backoff while the
    /// server is unreachable, overloaded or restarting; a success is the answer.
    async fn send(
        &self,
        what: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let mut last = String::new();
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            let mut req = make();
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                        .unwrap_or(text);
                    last = format!("the server answered {status} to {what}: {message}");
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status.is_server_error();
                    if !retryable {
                        return Err(last);
                    }
                }
                Err(e) => last = format!("cannot reach the server: {}", error_chain(&e)),
            }
        }
        Err(format!("{last} (gave up after {TRIES} tries)"))
    }
}

/// A result of a chunk, with the item's place in the input instead of its place in the chunk.
fn renumber(mut entry: Value, local: usize, p: &Pending) -> Value {
    entry["index"] = json!(p.index);
    entry["line"] = json!(p.line);
    let prefix = format!("items[{local}]");
    if let Some(field) = entry["error"]["field"].as_str()
        && let Some(rest) = field.strip_prefix(&prefix)
    {
        entry["error"]["field"] = json!(format!("items[{}]{rest}", p.index));
    }
    entry
}

/// An error with its chain of causes, for messages.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_moves_index_and_field_to_the_input() {
        let p = Pending {
            index: 1234,
            line: 1240,
            value: json!({}),
        };
        let e = json!({"index": 3, "status": "error", "error": {"code": "invalid_item", "field": "items[3].prediction"}});
        let r = renumber(e, 3, &p);
        assert_eq!(r["index"], 1234);
        assert_eq!(r["line"], 1240);
        assert_eq!(r["error"]["field"], "items[1234].prediction");
    }
}
