//! Test support: spawns the real server on a random loopback port, with settings from TOML text
//! and an explicit environment (never the test process's own).

#![allow(dead_code)]

use std::net::SocketAddr;

use llm_judge::Application;
use llm_judge::config::{Settings, Sources};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: llm_judge::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server's task: it ends when shutdown is over.
    pub served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Settings from TOML text and an explicit environment; jobs go to a fresh temporary directory
/// unless the test names one.
pub fn settings(toml: &str, env: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !toml.contains("data_dir") && !env.iter().any(|(k, _)| k == "LLM_JUDGE__JOBS__DATA_DIR") {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        env.push((
            "LLM_JUDGE__JOBS__DATA_DIR".into(),
            dir.display().to_string(),
        ));
    }
    Settings::from_sources(Sources {
        file: None,
        toml: Some(toml),
        env,
    })
    .expect("test settings are valid")
}

pub async fn spawn(toml: &str, env: &[(&str, &str)]) -> TestApp {
    spawn_settings(settings(toml, env)).await
}

pub async fn spawn_settings(s: Settings) -> TestApp {
    let app = Application::bind(s, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        state,
        shutdown: Some(tx),
        served: Some(served),
    }
}

impl TestApp {
    /// Starts the server's shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// An OpenAI chat-completion body with the given answer text.
pub fn openai_answer(text: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128}
    })
}

/// Config for one OpenAI-wire provider named `name` at the stand-in, as the default route.
pub fn openai_config(name: &str, server: &MockServer, model: &str) -> String {
    format!(
        r#"
[providers.{name}]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-test-{name}"
[retry]
base_delay_ms = 5
max_delay_ms = 20
[routes]
default = ["{name}:{model}"]
"#,
        server.uri()
    )
}

/// A stand-in that answers every chat completion with `text`.
pub async fn openai_standin(text: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer(text)))
        .mount(&server)
        .await;
    server
}

/// Calls in flight at a stand-in, counted exactly: in when the handler starts, out before the
/// answer is sent.
#[derive(Default)]
pub struct InFlight {
    pub now: std::sync::atomic::AtomicUsize,
    pub max: std::sync::atomic::AtomicUsize,
    pub calls: std::sync::atomic::AtomicUsize,
}

/// An OpenAI stand-in (axum on a loopback port) answering `text` after `delay`; returns its base
/// URL (with `/v1`) and its in-flight counter.
pub async fn counting_standin(
    text: &'static str,
    delay: std::time::Duration,
) -> (String, std::sync::Arc<InFlight>) {
    use std::sync::atomic::Ordering;
    let gauge = std::sync::Arc::new(InFlight::default());
    let g = gauge.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let g = g.clone();
            async move {
                let now = g.now.fetch_add(1, Ordering::SeqCst) + 1;
                g.max.fetch_max(now, Ordering::SeqCst);
                g.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                g.now.fetch_sub(1, Ordering::SeqCst);
                axum::Json(openai_answer(text))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), gauge)
}

/// The text a prompt fences between its `<<<LABEL-tag>>>` and `<<<END-LABEL-tag>>>` lines
/// (empty when there is no such fence).
pub fn fenced<'a>(user: &'a str, label: &str) -> &'a str {
    let open = format!("<<<{label}-");
    let Some(at) = user.find(&open) else {
        return "";
    };
    let rest = &user[at + open.len()..];
    let Some((tag, body)) = rest.split_once(">>>\n") else {
        return "";
    };
    let close = format!("\n<<<END-{label}-{tag}>>>");
    body.find(&close).map_or("", |end| &body[..end])
}

/// A free loopback port (for a server run as its own process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `llm-judge serve` as its own process on `port`, with jobs in `data_dir`, judging with the
/// OpenAI-wire stand-in `provider` and no verdict cache; `configure` may add to the command.
pub fn serve_process(
    port: u16,
    data_dir: &std::path::Path,
    provider: &MockServer,
    configure: impl FnOnce(&mut std::process::Command),
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-judge"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data_dir)
    .env_clear()
    .env("OPENAI_API_KEY", "sk-test")
    .env("OPENAI_API_URL", format!("{}/v1", provider.uri()))
    .env("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    configure(&mut cmd);
    cmd.spawn().unwrap()
}

/// A GET answered with JSON, or `None` (not listening yet, or not JSON).
pub async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// The text of a GET's answer.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// A POST of a JSON body, its answer read as JSON.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = client.post(url).json(body).send().await.unwrap();
    r.json().await.unwrap()
}
