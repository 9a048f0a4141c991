//! Test support: spawns the real server on a random loopback port, with settings from TOML text
//! and an explicit environment (never the test process's own).

#![allow(dead_code)]

pub mod standin;

use std::net::SocketAddr;

use llm_judge::Application;
use llm_judge::config::{Settings, Sources};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: llm_judge::api::AppState,
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

/// A stand-in whose every answer reports 600 tokens: more than a judgment's estimate, so a day
/// of 1,000 tokens is spent after two calls.
pub async fn standin_600() -> MockServer {
    let server = MockServer::start().await;
    let mut answer = openai_answer("Verdict: 1");
    answer["usage"] = json!({"prompt_tokens": 592, "completion_tokens": 8, "total_tokens": 600});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    server
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

/// `llm-judge serve --listen 127.0.0.1:PORT --data-dir DIR`, with an empty environment and its
/// output thrown away.
pub fn serve_command(port: u16, data_dir: &std::path::Path) -> std::process::Command {
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
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// The most arrivals in any window of `window` length (in any order).
pub fn busiest_window(arrivals: &[std::time::Instant], window: std::time::Duration) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut best = 0;
    for (i, start) in sorted.iter().enumerate() {
        let n = sorted[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < window)
            .count();
        best = best.max(n);
    }
    best
}

/// `llm-judge serve` as its own process on `port`, with jobs in `data_dir`, judging with the
/// OpenAI-wire stand-in `provider` and no verdict cache; `configure` may add to the command.
pub fn serve_process(
    port: u16,
    data_dir: &std::path::Path,
    provider: &MockServer,
    configure: impl FnOnce(&mut std::process::Command),
) -> std::process::Child {
    let mut cmd = serve_command(port, data_dir);
    cmd.env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_API_URL", format!("{}/v1", provider.uri()))
        .env("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0");
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

/// A `redis-server` of its own on a free loopback port, with its files in a temporary
/// directory; stopped (by its pid) when dropped.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` (after saying why) when `LLM_JUDGE_SKIP_REDIS=1` and there
    /// is no `redis-server`. Without that variable a missing `redis-server` fails the test:
    /// CI installs it (`.ci/run`).
    pub async fn start() -> Option<RedisServer> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("LLM_JUDGE_SKIP_REDIS").as_deref() == Ok("1") {
                eprintln!("skipped: no redis-server on PATH and LLM_JUDGE_SKIP_REDIS=1");
                return None;
            }
            panic!(
                "redis-server is not installed (apt-get install redis-server; .ci/run does it); \
                 set LLM_JUDGE_SKIP_REDIS=1 to skip the tests that need it"
            );
        }
        let mut r = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.restart().await;
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on the same port with the same files.
    pub async fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").await.is_ok()
                    && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Freezes the server (SIGSTOP) for `how_long`, on a thread of its own: connections stay
    /// open and nothing answers, as in a stall; then it goes on (SIGCONT).
    pub fn stall(&self, how_long: std::time::Duration) -> std::thread::JoinHandle<()> {
        let pid = self.child.as_ref().map(|c| c.id() as libc::pid_t);
        std::thread::spawn(move || {
            let Some(pid) = pid else { return };
            // SAFETY: kill(2) with the pid of a child this helper started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            std::thread::sleep(how_long);
            unsafe { libc::kill(pid, libc::SIGCONT) };
        })
    }

    /// Stops the server (SIGKILL: as abrupt as an outage gets).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One command through redis-cli-free RESP, for inspecting keys: the raw reply.
    pub async fn command(&self, args: &[&str]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `llm-judge serve` as its own process on `port`, sharing `redis` with the other replicas,
/// judging with one OpenAI-wire provider `p` at `provider_base` (with `/v1`); `env` adds
/// variables (LLM_JUDGE__... settings). With `LLM_JUDGE_TEST_LOG_DIR` set, its log goes there.
pub fn serve_replica(
    port: u16,
    data_dir: &std::path::Path,
    provider_base: &str,
    redis_url: &str,
    env: &[(&str, &str)],
) -> std::process::Child {
    let mut cmd = serve_command(port, data_dir);
    cmd.env("LLM_JUDGE__PROVIDERS__P__KIND", "openai")
        .env("LLM_JUDGE__PROVIDERS__P__BASE_URL", provider_base)
        .env("LLM_JUDGE__PROVIDERS__P__API_KEY", "sk-test")
        .env("LLM_JUDGE__ROUTES__DEFAULT", "p:m")
        .env("LLM_JUDGE__REDIS__URL", redis_url)
        .env("LLM_JUDGE__RETRY__BASE_DELAY_MS", "5")
        .env("LLM_JUDGE__RETRY__MAX_DELAY_MS", "20")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Ok(path) = std::env::var("LLM_JUDGE_TEST_LOG_DIR") {
        let f = std::fs::File::create(format!("{path}/replica-{port}.log")).unwrap();
        cmd.stderr(f);
    }
    cmd.spawn().unwrap()
}

/// Waits until `base`/healthz answers (a process just started).
pub async fn wait_up(client: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_json(client, &format!("{base}/healthz")).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "{base} did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A Prometheus sample: the sum of `name`'s series whose labels contain `label` ("" for all).
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Counts calls per prediction text and answers after `delay`.
#[derive(Clone)]
pub struct Counting {
    pub calls: Arc<Mutex<HashMap<String, usize>>>,
    pub delay: Duration,
}
impl Counting {
    pub fn new(delay_ms: u64) -> Self {
        Self {
            calls: Arc::default(),
            delay: Duration::from_millis(delay_ms),
        }
    }
}
/// The prediction a judge request asks about (the text between the candidate's marker lines).
pub fn prediction_of(req: &Request) -> String {
    let body: Value = req.body_json().unwrap();
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    fenced(user, "CANDIDATE").to_string()
}

impl Respond for Counting {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let key = prediction_of(req);
        let n: u64 = key.trim_start_matches("item-").parse().unwrap_or(0);
        *self.calls.lock().unwrap().entry(key).or_default() += 1;
        ResponseTemplate::new(200)
            .set_body_json(openai_answer(if n.is_multiple_of(4) {
                "Verdict: 0"
            } else {
                "Verdict: 1"
            }))
            .set_delay(self.delay)
    }
}

pub fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("item-{i}")}))
        .collect()
}

/// The JSON lines of an NDJSON body.
pub fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
