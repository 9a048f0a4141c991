//! A client token's daily budget shared by a fleet through Redis: what one replica spent counts
//! on every other, and a replica started again carries on from the day's spend.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

async fn judge(client: &reqwest::Client, base: &str, n: usize) -> (u16, Value) {
    let r = client
        .post(format!("{base}/v1/judge/binary"))
        .bearer_auth("fleet-token")
        .json(
            &json!({"question": "q", "answer": "a", "prediction": format!("p{n}"),
                      "options": {"cache": false, "max_tokens": 16}}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn replicas_share_a_client_tokens_day_and_a_restart_keeps_it() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let server = standin_600().await;
    let provider = format!("{}/v1", server.uri());
    let client = reqwest::Client::new();
    let env = [
        ("LLM_JUDGE__AUTH__TOKENS", "fleet-token"),
        ("LLM_JUDGE__AUTH__DAILY_BUDGET_TOKENS", "1000"),
        ("LLM_JUDGE__JUDGE__RULES_PRECHECK", "false"),
    ];
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut replicas: Vec<_> = (0..2)
        .map(|i| serve_replica(ports[i], dirs[i].path(), &provider, &redis.url(), &env))
        .collect();
    for b in &bases {
        wait_up(&client, b).await;
    }
    // Replica 0 spends the day: 1,200 tokens of 1,000.
    for n in 0..2 {
        let (status, body) = judge(&client, &bases[0], n).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = judge(&client, &bases[0], 2).await;
    assert_eq!(status, 429, "{body}");
    // Replica 1 has spent nothing itself, and refuses the token too: it hears what the others
    // spent every quarter second (2 s is many times that).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = judge(&client, &bases[1], 3).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "daily_budget_exhausted", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("1200 tokens"), "{msg}");
    // The day's spend is in Redis under a digest of the token, never the token.
    let keys = redis.command(&["KEYS", "*spend*"]).await;
    assert!(!keys.contains("fleet-token"), "{keys}");
    assert!(keys.contains(":spend:"), "{keys}");
    // A replica started again on a new data directory carries on from the day's spend.
    let mut first = replicas.remove(0);
    first.kill().unwrap();
    first.wait().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut again = serve_replica(port, fresh.path(), &provider, &redis.url(), &env);
    wait_up(&client, &base).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = judge(&client, &base, 4).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "daily_budget_exhausted", "{body}");
    again.kill().unwrap();
    again.wait().unwrap();
    for mut r in replicas {
        r.kill().unwrap();
        r.wait().unwrap();
    }
}
