//! A job across a restart of the service (killed with SIGKILL): it resumes without judging its
//! finished items again, and a cancel sent while the jobs are resumed wins.

use super::*;

#[tokio::test]
async fn a_job_resumes_after_sigkill_without_judging_finished_items_again() {
    const N: usize = 2000;
    let provider = MockServer::start().await;
    let counting = Counting::new(5);
    Mock::given(method("POST"))
        .respond_with(counting.clone())
        .mount(&provider)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = start_server(port, data.path(), &provider);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&client, &format!("{base}/healthz"))
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted: Value = post_json(
        &client,
        &format!("{base}/v1/jobs"),
        &json!({"items": items(N), "max_concurrent": 16}),
    )
    .await;
    let id = accepted["id"].as_str().unwrap().to_string();
    // Let it get part of the way.
    loop {
        let v = get_json(&client, &format!("{base}/v1/jobs/{id}"))
            .await
            .unwrap();
        if v["progress"]["done"].as_u64().unwrap() >= 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = get_text(&client, &format!("{base}/v1/jobs/{id}/results")).await;
    let committed: HashSet<String> = ndjson(&before)
        .iter()
        .map(|r| format!("item-{}", r["index"]))
        .collect();
    assert!(
        committed.len() >= 300 && committed.len() < N,
        "{}",
        committed.len()
    );
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();

    let mut server = start_server(port, data.path(), &provider);
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        if let Some(v) = get_json(&client, &format!("{base}/v1/jobs/{id}")).await
            && v["status"] == "completed"
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after = get_text(&client, &format!("{base}/v1/jobs/{id}/results")).await;
    let rows = ndjson(&after);
    server.kill().unwrap();
    server.wait().unwrap();

    let indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(
        indices,
        (0..N as u64).collect::<Vec<u64>>(),
        "every item has exactly one result"
    );
    assert!(rows.iter().all(|r| r["status"] == "ok"));
    let calls = counting.calls.lock().unwrap().clone();
    for item in &committed {
        assert_eq!(
            calls.get(item),
            Some(&1),
            "{item} was finished before the kill and must not be judged again"
        );
    }
    let resent: usize = calls.values().filter(|c| **c > 1).count();
    assert!(
        resent <= 16 + 256,
        "only items in flight or uncommitted at the kill may be sent twice: {resent}"
    );
    assert_eq!(finished["progress"]["done"], N);
    assert_eq!(finished["summary"]["correct"], N - N / 4);
    assert_eq!(finished["summary"]["incorrect"], N / 4);
    assert_eq!(finished["summary"]["total"], N);
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(client, &format!("{base}/healthz")).await.is_none() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Rounds of submit, kill, restart and cancel.
const ROUNDS: usize = 3;
/// Jobs per round, each of `ITEMS` items: the first `FAST` answered at once, the rest slowly.
const JOBS: usize = 4;
const ITEMS: usize = 1200;
const FAST: u64 = 800;
const CONCURRENCY: usize = 8;

/// A DELETE's status, body and when its answer came.
type Answered = (u16, Value, Instant);

/// A DELETE right after a restart, while the jobs are being resumed, must win: the job ends
/// `cancelled` and no call for it starts after the DELETE was answered (beyond the few that a
/// runner may have been starting at that instant).
#[tokio::test]
async fn a_cancel_during_resume_wins_and_no_provider_calls_follow_it() {
    let provider = MockServer::start().await;
    let recording = Recording {
        calls: Arc::default(),
        fast_below: FAST,
        slow: Duration::from_millis(100),
    };
    Mock::given(method("POST"))
        .respond_with(recording.clone())
        .mount(&provider)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for round in 0..ROUNDS {
        let mut server = start_server(port, data.path(), &provider);
        wait_healthy(&client, &base).await;
        let ids = submit_jobs(&client, &base, round).await;
        wait_until_most_fast_items_are_done(&client, &base, round, &ids).await;
        server.kill().unwrap();
        server.wait().unwrap();

        // Restart and cancel every job as soon as the server answers.
        let mut server = start_server(port, data.path(), &provider);
        wait_healthy(&client, &base).await;
        let answers = cancel_all(&client, &base, &ids).await;
        let finals = wait_until_finished(&client, &base, round, &ids).await;
        // Long enough for a call started by a runner that missed the cancel to show up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.kill().unwrap();
        server.wait().unwrap();

        let calls = recording.calls.lock().unwrap().clone();
        check_the_cancels_won(round, &calls, &answers, &finals);
    }
}

/// Submits the round's jobs; their ids.
async fn submit_jobs(client: &reqwest::Client, base: &str, round: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for j in 0..JOBS {
        let list: Vec<Value> = (0..ITEMS)
            .map(|i| json!({"question":"q","answer":"a","prediction":format!("r{round}j{j}-{i}")}))
            .collect();
        let accepted: Value = post_json(
            client,
            &format!("{base}/v1/jobs"),
            &json!({"items": list, "max_concurrent": CONCURRENCY}),
        )
        .await;
        ids.push(accepted["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Waits until every job has most of its fast items committed.
async fn wait_until_most_fast_items_are_done(
    client: &reqwest::Client,
    base: &str,
    round: usize,
    ids: &[String],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let v = get_json(client, &format!("{base}/v1/jobs/{id}"))
                .await
                .unwrap();
            if v["progress"]["done"].as_u64().unwrap() >= FAST * 3 / 4 {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// DELETEs every job at once.
async fn cancel_all(client: &reqwest::Client, base: &str, ids: &[String]) -> Vec<Answered> {
    futures::future::join_all(ids.iter().map(|id| {
        let client = client.clone();
        let url = format!("{base}/v1/jobs/{id}");
        async move {
            let r = client.delete(url).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body, Instant::now())
        }
    }))
    .await
}

/// Each job once it is cancelled or completed.
async fn wait_until_finished(
    client: &reqwest::Client,
    base: &str,
    round: usize,
    ids: &[String],
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut finals = Vec::new();
    for id in ids {
        let v = loop {
            let v = get_json(client, &format!("{base}/v1/jobs/{id}"))
                .await
                .unwrap();
            if v["status"] == "cancelled" || v["status"] == "completed" {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: never finished: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        finals.push(v);
    }
    finals
}

/// Every job ended cancelled, and at most a runner's calls in flight started after its DELETE
/// was answered.
fn check_the_cancels_won(
    round: usize,
    calls: &[(String, Instant)],
    answers: &[Answered],
    finals: &[Value],
) {
    for (j, ((status, answer, answered), fin)) in answers.iter().zip(finals).enumerate() {
        let tag = format!("r{round}j{j}-");
        let after = calls
            .iter()
            .filter(|(k, at)| k.starts_with(&tag) && at > answered)
            .count();
        assert_eq!(
            fin["status"], "cancelled",
            "round {round} job {j}: the cancel was lost: {fin}"
        );
        assert!(
            after <= CONCURRENCY,
            "round {round} job {j}: {after} calls started after the DELETE was answered"
        );
        assert_eq!(*status, 200, "{answer}");
        assert!(
            answer["status"] == "cancelled" || answer["status"] == "cancelling",
            "{answer}"
        );
    }
}
