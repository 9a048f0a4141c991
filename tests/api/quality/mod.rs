//! Judge quality end to end: panels of stand-in judges that disagree in known patterns,
//! confidence from log probabilities (and its loud absence), structured verdicts on the OpenAI
//! and Anthropic wire, prompts that fence adversarial predictions, and bias figures in summaries.

mod bias;
mod by_judge;
mod corrected;
mod decoding;
mod panels;
mod verdicts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Calls per model, and the last request body per model.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    bodies: Arc<Mutex<HashMap<String, Value>>>,
}

impl Seen {
    fn calls(&self, model: &str) -> usize {
        self.calls.lock().unwrap().get(model).copied().unwrap_or(0)
    }
    fn body(&self, model: &str) -> Value {
        self.bodies
            .lock()
            .unwrap()
            .get(model)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// An OpenAI stand-in whose answer the model name chooses:
/// - `say-1` / `say-0`: `Verdict: 1` / `Verdict: 0`, with log probabilities when asked
///   (P(1) = 0.8 for `say-1`, P(0) = 0.9 for `say-0`);
/// - `vote-X`: reads `X=1` or `X=0` in the candidate text and answers that;
/// - `first`: prefers whichever response is shown first (`[[A]]`);
/// - `json-*`: a JSON verdict (`{"reason", "verdict": "0"}`);
/// - `long-likes`: scores by length (`Score: N` with N the response's length in tens, 1 to 10);
/// - any model under `/broken`: HTTP 500.
struct Panelists(Seen);

fn logprobs(verdict: &str, p: f64) -> Value {
    let other = if verdict == "1" { "0" } else { "1" };
    json!({"content": [
        {"token": "Verdict", "logprob": -0.01, "top_logprobs": []},
        {"token": ":", "logprob": -0.01, "top_logprobs": []},
        {"token": format!(" {verdict}"), "logprob": p.ln(),
         "top_logprobs": [{"token": format!(" {verdict}"), "logprob": p.ln()},
                          {"token": format!(" {other}"), "logprob": (1.0 - p).ln()}]}
    ]})
}

impl Respond for Panelists {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let model = body["model"].as_str().unwrap_or_default().to_string();
        *self
            .0
            .calls
            .lock()
            .unwrap()
            .entry(model.clone())
            .or_default() += 1;
        self.0
            .bodies
            .lock()
            .unwrap()
            .insert(model.clone(), body.clone());
        if req.url.path().starts_with("/broken") {
            return ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "down", "type": "server_error", "param": null, "code": null}}));
        }
        let user = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        let (text, lp) = match model.as_str() {
            "say-1" => (
                "The candidate matches.\nVerdict: 1".to_string(),
                Some(logprobs("1", 0.8)),
            ),
            "say-0" => (
                "It does not match.\nVerdict: 0".to_string(),
                Some(logprobs("0", 0.9)),
            ),
            m if m.starts_with("vote-") => {
                let who = &m[5..];
                let candidate = fenced(&user, "CANDIDATE");
                let yes = candidate.contains(&format!("{who}=1"));
                (format!("Verdict: {}", u8::from(yes)), None)
            }
            "first" => ("The first is better.\n[[A]]".to_string(), None),
            m if m.starts_with("json-") => (
                r#"{"reason": "they differ", "verdict": "0"}"#.to_string(),
                None,
            ),
            "long-likes" => {
                let n = fenced(&user, "RESPONSE").chars().count();
                (format!("Score: {}", (n / 10).clamp(1, 10)), None)
            }
            _ => ("Verdict: 1".to_string(), None),
        };
        let mut answer = openai_answer(&text);
        if body["logprobs"] == true
            && let Some(lp) = lp
        {
            answer["choices"][0]["logprobs"] = lp;
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }
}

async fn standin() -> (MockServer, Seen) {
    let server = MockServer::start().await;
    let seen = Seen::default();
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Panelists(seen.clone()))
        .mount(&server)
        .await;
    (server, seen)
}

/// Providers `p` (the stand-in) and `broken` (500s), the given routes and panels, no cache.
fn config(server: &MockServer, rest: &str) -> String {
    format!(
        r#"
[judge]
cache_entries = 0
[retry]
base_delay_ms = 1
max_delay_ms = 2
[providers.p]
kind = "openai"
base_url = "{uri}/v1"
api_key = "sk-test-p"
max_attempts = 1
[providers.broken]
kind = "openai"
base_url = "{uri}/broken/v1"
api_key = "sk-test-broken"
max_attempts = 1
breaker_failures = 1000
[routes]
yes = ["p:say-1"]
no = ["p:say-0"]
down = ["broken:say-1"]
{rest}
"#,
        uri = server.uri()
    )
}

/// The app over a fresh stand-in, with `rest` added to [`config`]'s routes.
async fn app_with(rest: &str) -> (TestApp, MockServer, Seen) {
    let (server, seen) = standin().await;
    let app = spawn(&config(&server, rest), &[]).await;
    (app, server, seen)
}

fn item(prediction: &str, judge: &str) -> Value {
    json!({"question": "What is 2 + 2?", "answer": "4", "prediction": prediction, "judge": judge})
}
