//! `llm-judge run --server URL`: items go to a running service's batch endpoint in chunks, and
//! the results come back renumbered to their place in the input file.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::judge::JudgeKind;

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
}

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
        })
    }

    /// Judges a chunk; the entries carry the items' indices and line numbers in the input.
    /// `Err` when the server could not judge it at all (after retries): the run stops.
    pub async fn judge(
        &self,
        items: Vec<Pending>,
        max_concurrent: usize,
    ) -> Result<Vec<Value>, String> {
        let mut body = json!({
            "kind": self.kind.as_str(),
            "max_concurrent": max_concurrent.clamp(1, items.len().max(1)),
            "items": items.iter().map(|p| &p.value).collect::<Vec<_>>(),
        });
        if let Some(j) = &self.judge {
            body["judge"] = json!(j);
        }
        let answer = self.post(&body).await?;
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

    async fn post(&self, body: &Value) -> Result<Value, String> {
        let url = format!("{}/v1/judge/batch", self.base);
        let mut last = String::new();
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            let mut req = self.client.post(&url).json(body);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    return resp
                        .json()
                        .await
                        .map_err(|e| format!("the server sent an unreadable batch answer: {e}"));
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                        .unwrap_or(text);
                    last = format!("the server answered {status} to a batch: {message}");
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
