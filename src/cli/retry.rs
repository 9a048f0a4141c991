//! `llm-judge run --server URL --retry-errors JOB`: a finished job's errored items sent again on
//! the server (`POST /v1/jobs/JOB/retry`), the job followed until it ends (its progress on
//! standard error, with what it waits for while its providers are down), then all its results
//! written in index order (to `--output`, else standard output) and its summary printed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::args::{EXIT_FAILED, EXIT_PIPE_CLOSED, EXIT_USAGE};
use super::remote::error_chain;
use super::run::RunArgs;

/// Runs `--retry-errors JOB`.
pub async fn run(args: &RunArgs, job: &str) -> ExitCode {
    match retry(args, job).await {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("llm-judge run: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("llm-judge run: {msg}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

enum Failure {
    /// Nothing was sent again: the arguments, the job or the server said no.
    Usage(String),
    /// The job was sent again and did not complete, or its results could not be written.
    Failed(String),
}

struct Server {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str) -> Result<(u16, Vec<u8>), String> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach the server: {}", error_chain(&e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read the server's answer to {method} {path}: {e}"))?;
        Ok((status, body.to_vec()))
    }
}

/// The error message of an error body, else its text.
fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

async fn retry(args: &RunArgs, job: &str) -> Result<ExitCode, Failure> {
    if !llm_judge_work::jobs::is_job_id(job) {
        return Err(Failure::Usage(format!(
            "--retry-errors {job:?} is not a job id (job_ and 16 hex digits)"
        )));
    }
    let server = Server {
        client: reqwest::Client::new(),
        base: args
            .server
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        token: args.token.clone(),
    };
    let path = format!("/v1/jobs/{job}/retry");
    let (status, body) = server
        .call(reqwest::Method::POST, &path)
        .await
        .map_err(Failure::Usage)?;
    if status != 202 {
        return Err(Failure::Usage(format!(
            "the server answered {status} to POST {path}: {}",
            message(&body)
        )));
    }
    let requeued =
        serde_json::from_slice::<Value>(&body).map_or(0, |v| v["requeued"].as_u64().unwrap_or(0));
    eprintln!("llm-judge run: job {job}: {requeued} errored items sent again");
    let end = follow(&server, job).await?;
    write_results(args, &server, job).await?;
    let s = &end["summary"];
    eprintln!(
        "llm-judge run: job {job} {}: {} correct, {} incorrect, {} unscored, {} errors",
        end["status"].as_str().unwrap_or("?"),
        s["correct"],
        s["incorrect"],
        s["unscored"],
        s["errors"]
    );
    if end["status"] == "completed" {
        Ok(ExitCode::SUCCESS)
    } else {
        let why = end["error"].as_str().unwrap_or("no reason given");
        Err(Failure::Failed(format!(
            "job {job} ended {}: {why}",
            end["status"]
        )))
    }
}

/// Follows the job until it ends; its state then.
async fn follow(server: &Server, job: &str) -> Result<Value, Failure> {
    let path = format!("/v1/jobs/{job}");
    let mut said = String::new();
    loop {
        let (status, body) = server
            .call(reqwest::Method::GET, &path)
            .await
            .map_err(Failure::Failed)?;
        if status != 200 {
            return Err(Failure::Failed(format!(
                "the server answered {status} to GET {path}: {}",
                message(&body)
            )));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| Failure::Failed(format!("the server sent an unreadable job: {e}")))?;
        if matches!(
            v["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return Ok(v);
        }
        let p = &v["progress"];
        let mut line = format!("progress: {}/{} items", p["done"], p["total"]);
        if let Some(w) = p["waiting"].as_object() {
            line.push_str(&format!(
                "; waiting for {} ({})",
                w.get("providers").map_or(String::new(), Value::to_string),
                w.get("reason").and_then(Value::as_str).unwrap_or("")
            ));
        }
        if line != said {
            eprintln!("{line}");
            said = line;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Writes every result of the job, in index order.
async fn write_results(args: &RunArgs, server: &Server, job: &str) -> Result<(), Failure> {
    let path = format!("/v1/jobs/{job}/results");
    let (status, body) = server
        .call(reqwest::Method::GET, &path)
        .await
        .map_err(Failure::Failed)?;
    if status != 200 {
        return Err(Failure::Failed(format!(
            "the server answered {status} to GET {path}: {}",
            message(&body)
        )));
    }
    let written = match &args.output {
        Some(out) => std::fs::write(out, &body)
            .map_err(|e| format!("cannot write the output {}: {e}", out.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&body).and_then(|()| stdout.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    std::process::exit(i32::from(EXIT_PIPE_CLOSED))
                }
                other => other.map_err(|e| format!("cannot write the results: {e}")),
            }
        }
    };
    written.map_err(Failure::Failed)
}
