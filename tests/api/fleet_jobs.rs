//! Jobs any replica serves: three replica processes on one Redis, a job accepted by one and
//! read, cancelled and finished by the others, and a replica killed in the middle of a job.

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

/// Three replicas sharing `redis`, judging with the stand-in at `provider`.
struct Fleet {
    bases: Vec<String>,
    replicas: Vec<Option<Child>>,
    _dirs: Vec<tempfile::TempDir>,
    client: reqwest::Client,
}

impl Fleet {
    async fn start(redis: &RedisServer, provider: &MockServer) -> Fleet {
        let env = [
            ("LLM_JUDGE__REDIS__CLAIM_IDLE_S", "1"),
            ("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0"),
            ("LLM_JUDGE__JOBS__COMMIT_INTERVAL_MS", "20"),
        ];
        let base = format!("{}/v1", provider.uri());
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut bases = Vec::new();
        let mut replicas = Vec::new();
        for d in &dirs {
            let port = free_port();
            replicas.push(Some(serve_replica(
                port,
                d.path(),
                &base,
                &redis.url(),
                &env,
            )));
            bases.push(format!("http://127.0.0.1:{port}"));
        }
        let client = reqwest::Client::new();
        for b in &bases {
            wait_up(&client, b).await;
        }
        Fleet {
            bases,
            replicas,
            _dirs: dirs,
            client,
        }
    }

    fn url(&self, replica: usize, path: &str) -> String {
        format!("{}{path}", self.bases[replica])
    }

    async fn job(&self, replica: usize, id: &str) -> Value {
        get_json(&self.client, &self.url(replica, &format!("/v1/jobs/{id}")))
            .await
            .unwrap()
    }

    async fn submit(&self, replica: usize, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(replica, "/v1/jobs"))
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Items of jobs this replica judged (its `llm_judge_batch_items_total`).
    async fn judged(&self, replica: usize) -> f64 {
        let text = get_text(&self.client, &self.url(replica, "/metrics")).await;
        metric(&text, "llm_judge_batch_items_total", "")
    }

    fn kill(&mut self, replica: usize) {
        if let Some(mut c) = self.replicas[replica].take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    async fn wait_status(&self, replica: usize, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.job(replica, id).await;
            if v["status"] == status {
                return v;
            }
            assert!(Instant::now() < deadline, "still {}", v["status"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
    }
}

/// The job a replica is killed in the middle of: its items, and how many run at once.
const N: usize = 1200;
const MAX_CONCURRENT: usize = 4;

#[tokio::test]
async fn a_job_accepted_by_one_replica_is_finished_by_the_others_when_it_dies() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let provider = MockServer::start().await;
    let counting = Counting::new(20);
    Mock::given(method("POST"))
        .respond_with(counting.clone())
        .mount(&provider)
        .await;
    let mut fleet = Fleet::start(&redis, &provider).await;
    let id = submit_and_read_elsewhere(&fleet).await;

    // Every replica takes part; then the one that accepted it dies.
    wait_until_every_replica_works(&fleet, &id).await;
    fleet.kill(0);
    let before_kill_done = fleet.job(1, &id).await["progress"]["done"]
        .as_u64()
        .unwrap();
    assert!(
        before_kill_done < N as u64,
        "the job was over before the kill"
    );

    let finished = fleet.wait_status(1, &id, "completed").await;
    check_one_result_per_index(&fleet, &id, &finished).await;
    let calls = counting.calls.lock().unwrap().clone();
    let total: usize = calls.values().sum();
    assert_eq!(calls.len(), N, "every item reached the provider");
    assert!(
        total <= N + MAX_CONCURRENT,
        "{total} provider calls for {N} items: only what the killed replica held may go twice"
    );
    eprintln!(
        "fleet job: {N} items, {} judged twice after the kill, replicas B and C judged {} and {}",
        total - N,
        fleet.judged(1).await,
        fleet.judged(2).await
    );
}

/// Submits the job to the first replica; it is readable from the others at once, listed by
/// them too. Its id.
async fn submit_and_read_elsewhere(fleet: &Fleet) -> String {
    let (status, accepted) = fleet
        .submit(
            0,
            &json!({"items": items(N), "max_concurrent": MAX_CONCURRENT}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let seen = fleet.job(1, &id).await;
    assert_eq!(seen["id"], id.as_str());
    assert_eq!(seen["total"], N);
    let list = get_json(&fleet.client, &fleet.url(2, "/v1/jobs"))
        .await
        .unwrap();
    assert!(
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str())
    );
    id
}

/// Waits until a good part of the job is done and every replica has judged some of it.
async fn wait_until_every_replica_works(fleet: &Fleet, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = fleet.job(1, id).await["progress"]["done"].as_u64().unwrap();
        let all_working = fleet.judged(0).await > 0.0
            && fleet.judged(1).await > 0.0
            && fleet.judged(2).await > 0.0;
        if done >= 300 && all_working {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "done {done}, every replica working: {all_working}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The finished job has one result per index, in index order and in completion order.
async fn check_one_result_per_index(fleet: &Fleet, id: &str, finished: &Value) {
    let rows = ndjson(
        &get_text(
            &fleet.client,
            &fleet.url(2, &format!("/v1/jobs/{id}/results")),
        )
        .await,
    );
    let indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(
        indices,
        (0..N as u64).collect::<Vec<_>>(),
        "every index has exactly one result"
    );
    assert!(rows.iter().all(|r| r["status"] == "ok"));
    assert_eq!(finished["progress"]["done"], N);
    assert_eq!(finished["summary"]["total"], N);
    assert_eq!(finished["summary"]["correct"], N - N / 4);
    assert_eq!(finished["summary"]["incorrect"], N / 4);
    // In completion order, with sequence numbers 0.., resumable with `after`.
    let by_completion = ndjson(
        &get_text(
            &fleet.client,
            &fleet.url(
                1,
                &format!("/v1/jobs/{id}/results?order=completion&after=99"),
            ),
        )
        .await,
    );
    assert_eq!(by_completion.len(), N - 100);
    assert_eq!(by_completion[0]["seq"], 100);
    let distinct: HashSet<u64> = by_completion
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(distinct.len(), N - 100);
}

#[tokio::test]
async fn idempotency_cancel_and_events_work_across_replicas() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let provider = MockServer::start().await;
    let counting = Counting::new(50);
    Mock::given(method("POST"))
        .respond_with(counting.clone())
        .mount(&provider)
        .await;
    let fleet = Fleet::start(&redis, &provider).await;
    let id = one_job_per_idempotency_key(&fleet).await;
    events_from_a_replica_that_did_not_accept_it(&fleet, &id).await;
    let cancelled = cancelled_from_a_third_replica(&fleet, &id, &counting).await;
    results_from_the_other_replicas(&fleet, &id, &cancelled).await;
    an_upload_finished_and_read_elsewhere(&fleet).await;
    // A job no replica has is a 404 on every one.
    let missing = fleet
        .client
        .get(fleet.url(1, "/v1/jobs/job_none"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The same key and body sent to two replicas name one job; another body with the key is a
/// conflict on a third. The job's id.
async fn one_job_per_idempotency_key(fleet: &Fleet) -> String {
    let body = json!({"items": items(2000), "max_concurrent": 2, "idempotency_key": "run-7"});
    let (s1, a) = fleet.submit(0, &body).await;
    let (s2, b) = fleet.submit(1, &body).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(
        a["id"], b["id"],
        "the same key and body name the same job fleet-wide"
    );
    assert_eq!(b["created"], false);
    let mut other = body.clone();
    other["max_concurrent"] = json!(3);
    let (s3, conflict) = fleet.submit(2, &other).await;
    assert_eq!(s3, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "idempotency_conflict");
    a["id"].as_str().unwrap().to_string()
}

/// Events from a replica that did not accept the job.
async fn events_from_a_replica_that_did_not_accept_it(fleet: &Fleet, id: &str) {
    let mut events = fleet
        .client
        .get(fleet.url(2, &format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: progress"));
    drop(events);
}

/// Cancelled from a third replica once some items are done: every replica stops. The job as
/// cancelled.
async fn cancelled_from_a_third_replica(fleet: &Fleet, id: &str, counting: &Counting) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet.job(0, id).await["progress"]["done"].as_u64().unwrap() < 20 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = fleet
        .client
        .delete(fleet.url(2, &format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cancelled = fleet.wait_status(1, id, "cancelled").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls_then: usize = counting.calls.lock().unwrap().values().sum();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls_later: usize = counting.calls.lock().unwrap().values().sum();
    assert_eq!(
        calls_then, calls_later,
        "no provider calls after the cancel settled"
    );
    assert!(calls_later < 2000);
    cancelled
}

/// The cancelled job's results, whole and after an index, from other replicas.
async fn results_from_the_other_replicas(fleet: &Fleet, id: &str, cancelled: &Value) {
    let done = cancelled["progress"]["done"].as_u64().unwrap();
    let rows = ndjson(
        &get_text(
            &fleet.client,
            &fleet.url(0, &format!("/v1/jobs/{id}/results")),
        )
        .await,
    );
    assert!(
        rows.len() as u64 >= done,
        "{} results, {done} done",
        rows.len()
    );
    // Results after an index, from another replica.
    let after = rows[rows.len() / 2]["index"].as_u64().unwrap();
    let tail = ndjson(
        &get_text(
            &fleet.client,
            &fleet.url(1, &format!("/v1/jobs/{id}/results?after={after}")),
        )
        .await,
    );
    assert!(tail.iter().all(|r| r["index"].as_u64().unwrap() > after));
    assert_eq!(
        tail.len(),
        rows.iter()
            .filter(|r| r["index"].as_u64().unwrap() > after)
            .count()
    );
}

/// An NDJSON upload to one replica, finished and read on another.
async fn an_upload_finished_and_read_elsewhere(fleet: &Fleet) {
    let upload = "{\"question\":\"q\",\"answer\":\"a\",\"prediction\":\"item-1\"}\nnot json\n{\"question\":\"q\",\"answer\":\"a\",\"prediction\":\"item-4\"}\n";
    let r = fleet
        .client
        .post(fleet.url(1, "/v1/jobs?kind=binary&idempotency_key=up-1"))
        .header("content-type", "application/x-ndjson")
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let up: Value = r.json().await.unwrap();
    let up_id = up["id"].as_str().unwrap();
    let done = fleet.wait_status(2, up_id, "completed").await;
    assert_eq!(done["summary"]["total"], 3);
    assert_eq!(done["summary"]["errors"], 1);
    let rows = ndjson(
        &get_text(
            &fleet.client,
            &fleet.url(0, &format!("/v1/jobs/{up_id}/results")),
        )
        .await,
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["error"]["code"], "invalid_line");
}

#[tokio::test]
async fn a_provider_batch_job_is_driven_by_one_replica_and_taken_over_when_it_dies() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let standin = crate::support::standin::Standin::judging(&["--batch-delay-ms", "3000"]);
    let base = format!("{}/v1", standin.base);
    let env = [
        ("LLM_JUDGE__REDIS__CLAIM_IDLE_S", "1"),
        ("LLM_JUDGE__JUDGE__CACHE_ENTRIES", "0"),
        ("LLM_JUDGE__JUDGE__RULES_PRECHECK", "false"),
        ("LLM_JUDGE__JOBS__COMMIT_INTERVAL_MS", "20"),
        ("LLM_JUDGE__PROVIDERS__P__BATCH_POLL_S", "0.05"),
        ("LLM_JUDGE__PROVIDERS__P__BATCH_POLL_MAX_S", "0.2"),
    ];
    let client = reqwest::Client::new();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = [free_port(), free_port()];
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    // The first replica alone takes the job and makes its batch.
    let mut first = serve_replica(ports[0], dirs[0].path(), &base, &redis.url(), &env);
    wait_up(&client, &bases[0]).await;
    let accepted = post_json(
        &client,
        &format!("{}/v1/jobs", bases[0]),
        &json!({"items": items(300), "provider_batch": true, "max_tokens": 10_000_000}),
    )
    .await;
    let id = accepted["id"].as_str().unwrap().to_string();
    let urls: Vec<String> = bases.iter().map(|b| format!("{b}/v1/jobs/{id}")).collect();
    let job = |b: usize| get_json(&client, &urls[b]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = job(0).await.unwrap_or_default();
        if v["progress"]["provider_batches"][0]["phase"] == "in_progress" {
            break;
        }
        assert!(Instant::now() < deadline, "no batch: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A second replica joins; the first dies while its batch runs.
    let mut second = serve_replica(ports[1], dirs[1].path(), &base, &redis.url(), &env);
    wait_up(&client, &bases[1]).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let v = job(1).await.unwrap_or_default();
        if v["status"] == "completed" {
            break v;
        }
        assert!(Instant::now() < deadline, "not completed: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = get_text(&client, &format!("{}/v1/jobs/{id}/results", bases[1])).await;
    // An online job's budget would be kept by each replica: refused.
    let (status, refused) = {
        let r = client
            .post(format!("{}/v1/jobs", bases[1]))
            .json(&json!({"items": items(1), "max_tokens": 1000}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "max_tokens");
    second.kill().unwrap();
    second.wait().unwrap();
    let stats = standin.stats().await;
    assert_eq!(stats["batches"]["openai"]["batches_created"], 1, "{stats}");
    assert_eq!(stats["calls"], 0, "{stats}");
    let batch = done["progress"]["provider_batches"][0]["id"].clone();
    let results = ndjson(&text);
    assert_eq!(results.len(), 300);
    for r in &results {
        assert_eq!(r["provider_batch"], batch, "{r}");
        assert_eq!(r["verdict"], "correct", "{r}");
    }
    assert_eq!(
        done["summary"]["delivery"],
        json!({"provider_batch": 300, "online": 0})
    );
    assert_eq!(done["summary"]["budget"]["spent_tokens"], 300 * 309);
}

/// Starts an NDJSON upload with idempotency key `key` on `base` and leaves it arriving: the
/// headers and one line are sent, the rest never is. The connection, to keep it open.
async fn upload_left_arriving(base: &str, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let line = format!("{}\n", items(1)[0]);
    let head = format!(
        "POST /v1/jobs?idempotency_key={key} HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{line}\r\n",
        line.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn an_upload_cut_off_with_its_replica_fails_and_frees_its_key() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let provider = openai_standin("Verdict: 1").await;
    let mut fleet = Fleet::start(&redis, &provider).await;
    let _left = upload_left_arriving(&fleet.bases[0], "cut-off").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let stranded = loop {
        let list = get_json(&fleet.client, &fleet.url(1, "/v1/jobs"))
            .await
            .unwrap();
        if let Some(j) = list["jobs"].as_array().unwrap().first() {
            break j["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the upload never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The replica receiving it dies mid-upload.
    fleet.kill(0);
    // The same key, to another replica: refused while the upload may still be arriving, then
    // (its replica not heard of for `claim_idle`) a new job of its own.
    let body = format!("{}\n", items(2)[0]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        let r = fleet
            .client
            .post(fleet.url(1, "/v1/jobs?idempotency_key=cut-off"))
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if status == 202 && v["created"] == true {
            break v["id"].as_str().unwrap().to_string();
        }
        assert_eq!(status, 409, "{v}");
        assert!(Instant::now() < deadline, "the key was never freed: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(fresh, stranded);
    let old = fleet.job(2, &stranded).await;
    assert_eq!(old["status"], "failed", "{old}");
    assert!(
        old["error"]
            .as_str()
            .is_some_and(|e| e.contains("broke off")),
        "{old}"
    );
    fleet.wait_status(2, &fresh, "completed").await;
}
