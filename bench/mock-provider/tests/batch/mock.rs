//! The stand-in as a process for one test: started on a free loopback port, asked over HTTP,
//! ended when the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A running stand-in.
pub struct Mock {
    child: Child,
    base: String,
    pub client: reqwest::Client,
}

impl Mock {
    /// Starts the stand-in with these flags on a free loopback port.
    pub fn start(flags: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm-judge-mock"))
            .args(["--listen", "127.0.0.1:0", "--threads", "1"])
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the stand-in starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Mock {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth("sk-test")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub async fn text(&self, path_or_url: &str) -> (u16, String) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        let resp = self
            .client
            .get(url)
            .header("x-api-key", "sk-test")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth("sk-test")
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Uploads `content` as a batch input file named `name`, as the OpenAI SDKs do.
    pub async fn upload(&self, name: &str, content: &str) -> (u16, Value) {
        let form = Form::new().text("purpose", "batch").part(
            "file",
            Part::bytes(content.as_bytes().to_vec())
                .file_name(name.to_owned())
                .mime_str("application/octet-stream")
                .unwrap(),
        );
        let resp = self
            .client
            .post(self.url("/v1/files"))
            .bearer_auth("sk-test")
            .multipart(form)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Polls `path` every 10 ms until `done` holds (at most 10 s); every answer seen, in order.
    pub async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let (status, body) = self.get(path).await;
            assert_eq!(status, 200, "{body}");
            let finished = done(&body);
            seen.push(body);
            if finished {
                return seen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "not done in time: {}",
                seen.last().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stats(&self) -> Value {
        self.get("/stats").await.1
    }

    /// Uploads `content`, makes a chat batch of it and polls it until `done`: the batch as
    /// created, and every poll's answer.
    pub async fn openai_batch(
        &self,
        content: &str,
        done: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let (status, file) = self.upload("in.jsonl", content).await;
        assert_eq!(status, 200, "{file}");
        let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                            "completion_window": "24h"});
        let (status, batch) = self.post("/v1/batches", &create).await;
        assert_eq!(status, 200, "{batch}");
        let path = format!("/v1/batches/{}", batch["id"].as_str().unwrap());
        let seen = self.poll(&path, done).await;
        (batch, seen)
    }

    /// The lines of OpenAI file `id`.
    pub async fn file_lines(&self, id: &Value) -> Vec<Value> {
        let (status, text) = self
            .text(&format!("/v1/files/{}/content", id.as_str().unwrap()))
            .await;
        assert_eq!(status, 200, "{text}");
        lines(&text)
    }

    /// Makes a message batch of `body` and polls it until it ends: every poll's answer, and
    /// the results read from its `results_url`.
    pub async fn message_batch(&self, body: &Value) -> (Vec<Value>, Vec<Value>) {
        let (status, batch) = self.post("/v1/messages/batches", body).await;
        assert_eq!(status, 200, "{batch}");
        let path = format!("/v1/messages/batches/{}", batch["id"].as_str().unwrap());
        let seen = self
            .poll(&path, |b| b["processing_status"] == "ended")
            .await;
        let url = seen.last().unwrap()["results_url"].as_str().unwrap();
        let (status, text) = self.text(url).await;
        assert_eq!(status, 200, "{text}");
        (seen, lines(&text))
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The answer text the tests give the stand-in (`--text`).
pub const TEXT: &str = "Verdict: 1";

/// The JSON values of a JSONL text, one a line.
pub fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
