//! A full disk in the middle of a job: the store stops taking writes, `/readyz` says so with a
//! reason, the job waits with its results in memory, and once space returns the store reopens,
//! `/readyz` is ready again and the job finishes with every item judged exactly once.
//!
//! The full disk is the server process's file-size limit (`RLIMIT_FSIZE`, lowered to the size
//! of the database file while the job runs, raised again later): writes that would grow the file
//! fail with `EFBIG`, as they fail with `ENOSPC` on a full disk. No root, no mount.

#![cfg(target_os = "linux")]

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Sets the soft file-size limit of process `pid` (the hard limit stays unlimited).
fn set_file_size_limit(pid: u32, soft: u64) {
    let limit = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: libc::RLIM64_INFINITY,
    };
    let rc = unsafe {
        libc::prlimit64(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

async fn poll<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Items in the job.
const N: u64 = 400;

#[tokio::test]
async fn a_full_disk_makes_the_store_not_ready_and_the_job_resumes_once_space_returns() {
    // Long answers: each result is about 8 KB, so the job's results need the file to grow.
    let text = format!(
        "{}\nVerdict: 1",
        "The candidate matches the reference. ".repeat(220)
    );
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(openai_answer(&text))
                .set_delay(Duration::from_millis(10)),
        )
        .mount(&provider)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve_process(port, data.path(), &provider, |cmd| {
        // A write past the limit then fails with EFBIG instead of killing the process.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    let pid = server.id();
    poll("the server", 20, async || {
        get_json(&client, &format!("{base}/healthz")).await
    })
    .await;
    let job_url = a_job_under_way(&client, &base).await;

    // The disk fills up: the file may not grow any more.
    let db = data.path().join("jobs.redb");
    set_file_size_limit(pid, std::fs::metadata(&db).unwrap().len());
    while_the_disk_is_full(&client, &base, &job_url, &data, &mut server).await;

    // Space returns: the store reopens by itself, is ready again, and the job finishes.
    set_file_size_limit(pid, libc::RLIM64_INFINITY);
    poll("/readyz to be ready again", 30, async || {
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    check_every_item_judged_once(&client, &job_url).await;
    server.kill().unwrap();
    server.wait().unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Submits a job of [`N`] items and waits for some of its results: the job's URL.
async fn a_job_under_way(client: &reqwest::Client, base: &str) -> String {
    let items: Vec<Value> = (0..N)
        .map(|i| json!({"question": "q", "answer": "a", "prediction": format!("p{i}")}))
        .collect();
    let accepted: Value = post_json(
        client,
        &format!("{base}/v1/jobs"),
        &json!({"items": items, "max_concurrent": 4}),
    )
    .await;
    let id = accepted["id"].as_str().unwrap().to_string();
    let job_url = format!("{base}/v1/jobs/{id}");
    poll("some results", 30, async || {
        let v = get_json(client, &job_url).await?;
        (v["progress"]["done"].as_u64()? >= 20).then_some(())
    })
    .await;
    job_url
}

/// While the disk is full: `/readyz` reports the store (with a reason and no paths), the server
/// keeps running, and the job does not finish.
async fn while_the_disk_is_full(
    client: &reqwest::Client,
    base: &str,
    job_url: &str,
    data: &tempfile::TempDir,
    server: &mut std::process::Child,
) {
    let not_ready: Value = poll("/readyz to report the store", 30, async || {
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        if r.status() != 503 {
            return None;
        }
        r.json().await.ok()
    })
    .await;
    assert_eq!(not_ready["status"], "store_unavailable", "{not_ready}");
    let reason = not_ready["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{not_ready}");
    assert!(
        !reason.contains(data.path().to_str().unwrap()),
        "no paths in the answer: {reason}"
    );
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server keeps running"
    );
    // While the disk is full, the job does not finish (and is not marked done with items missing).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = client.get(job_url).send().await.unwrap();
    let (status, v) = (r.status(), r.json::<Value>().await.unwrap());
    match status.as_u16() {
        200 => assert!(!v["status"].as_str().unwrap().ends_with("ed"), "{v}"),
        503 => assert_eq!(v["error"]["code"], "store_unavailable", "{v}"),
        _ => panic!("{status} {v}"),
    }

    // Still not ready: the job's own commit keeps failing (a small probe write that happens to
    // fit does not make the store ready).
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

/// The job completes with every item judged exactly once.
async fn check_every_item_judged_once(client: &reqwest::Client, job_url: &str) {
    let done: Value = poll("the job to finish", 60, async || {
        let v = get_json(client, job_url).await?;
        v["status"].as_str()?.ends_with("ed").then_some(v)
    })
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"]["done"], N, "{done}");
    assert_eq!(done["summary"]["correct"], N, "{done}");
    let text = get_text(client, &format!("{job_url}/results")).await;
    let indices: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        indices,
        (0..N).collect::<Vec<_>>(),
        "every item has exactly one result"
    );
}

/// One binary judgment whose prediction is `word` (a new one misses the verdict cache).
async fn judge_once(client: &reqwest::Client, base: &str, word: &str) {
    let r = client
        .post(format!("{base}/v1/judge/binary"))
        .json(&json!({"question": "q", "answer": "a", "prediction": word}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// A calibration run to keep: its status and answer.
async fn calibrate_and_keep(client: &reqwest::Client, base: &str) -> (u16, Value) {
    let body = json!({"kind": "binary", "judges": ["default"], "items": [
        {"question": "q", "answer": "a", "prediction": "calibrate", "label": "correct"}
    ]});
    let r = client
        .post(format!("{base}/v1/calibrate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_verdict_cache_and_the_run_store_recover_from_a_full_disk_too() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_answer("Verdict: 1")))
        .mount(&provider)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve_process(port, data.path(), &provider, |cmd| {
        // The log goes to a pipe, as to a collector: a file would be as full as the disk.
        cmd.env("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "1000")
            .env("LLM_JUDGE__CACHE__DISK_MB", "8")
            .stderr(std::process::Stdio::piped());
        // A write past the limit then fails with EFBIG instead of killing the process.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    let log = {
        use std::io::Read;
        let mut stderr = server.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        })
    };
    poll("the server", 20, async || {
        get_json(&client, &format!("{base}/healthz")).await
    })
    .await;
    judge_once(&client, &base, "before").await;

    // The disk is full: no file may be written past its start.
    set_file_size_limit(server.id(), 0);
    for i in 0..200 {
        judge_once(&client, &base, &format!("while full {i}")).await;
    }
    // A run that cannot be kept is not answered as kept.
    let (status, answer) = calibrate_and_keep(&client, &base).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable", "{answer}");
    let not_ready: Value = poll("/readyz to report a store", 30, async || {
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 503).then_some(())?;
        r.json().await.ok()
    })
    .await;
    assert_eq!(not_ready["status"], "store_unavailable", "{not_ready}");

    // Room again: every store reopens by itself, the service is ready, runs are kept.
    set_file_size_limit(server.id(), libc::RLIM64_INFINITY);
    let mut n = 0;
    poll("/readyz to be ready again", 30, async || {
        n += 1;
        judge_once(&client, &base, &format!("after {n}")).await;
        let r = client.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let (status, answer) = calibrate_and_keep(&client, &base).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], true, "{answer}");
    server.kill().unwrap();
    server.wait().unwrap();
    // The failing writes were said about once a minute, not once an item.
    let text = log.join().unwrap();
    let warnings = text
        .lines()
        .filter(|l| l.contains("verdict cache on disk") && l.contains("WARN"))
        .count();
    assert!((1..=3).contains(&warnings), "{warnings} warnings:\n{text}");
}
