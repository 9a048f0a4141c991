//! Prompt caching: built-in templates keep their fixed instructions (and a batch's rubric) in the
//! system prompt and the item after it; Anthropic gets the prefix marked with `cache_control`
//! (per provider `prompt_cache`, on by default); cached input comes back in every result's
//! `usage`, in the batch summary, in `llm_judge_tokens_total` and in the cost.

use crate::support::standin::Standin;
use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A rubric long enough (about 1,300 tokens) for Anthropic to cache.
fn long_rubric() -> String {
    (1..=130)
        .map(|i| format!("Criterion {i}: the response states the key fact plainly. "))
        .collect()
}

fn score_items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"question": format!("Question number {i}?"), "prediction": format!("Answer {i}."),
                   "rubric": long_rubric(), "min": 1, "max": 10})
        })
        .collect()
}

const SONNET_PRICE: &str = r#"
[prices]
"claude-sonnet-4-5" = { prompt_per_mtok = 3.0, completion_per_mtok = 15.0, cached_prompt_per_mtok = 0.3, cache_write_per_mtok = 3.75 }
"#;

fn anthropic_config(name: &str, base: &str, extra: &str) -> String {
    format!(
        r#"
[judge]
cache_entries = 0
[providers.{name}]
kind = "anthropic"
base_url = "{base}"
api_key = "sk-ant-test"
max_attempts = 1
{extra}
[routes]
default = ["{name}:claude-sonnet-4-5"]
{SONNET_PRICE}"#
    )
}

fn metric(text: &str, provider: &str, kind: &str) -> u64 {
    let prefix = format!(
        "llm_judge_tokens_total{{provider=\"{provider}\",model=\"claude-sonnet-4-5\",type=\"{kind}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_fixed_prefix_is_marked_and_the_item_follows_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Score: 6"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 1300, "cache_creation_input_tokens": 0}
        })))
        .mount(&server)
        .await;
    let app = spawn(&anthropic_config("marked", &server.uri(), ""), &[]).await;
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"kind": "score", "max_concurrent": 1, "items": score_items(2)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 2);
    for (i, req) in sent.iter().enumerate() {
        let system = &req["system"][0];
        assert_eq!(
            system["cache_control"],
            json!({"type": "ephemeral"}),
            "{req}"
        );
        assert!(system["text"].as_str().unwrap().contains("Criterion 130"));
        assert!(!system["text"].as_str().unwrap().contains("Question number"));
        let user = req["messages"][0]["content"][0]["text"].as_str().unwrap();
        assert!(user.contains(&format!("Question number {i}?")), "{user}");
        assert!(
            !user.contains("Criterion"),
            "the rubric is in the prefix, not the item"
        );
    }
    assert_eq!(
        sent[0]["system"], sent[1]["system"],
        "one prefix for both items"
    );
    // Usage and cost read the cached input.
    let r = &body["results"][0];
    assert_eq!(r["usage"]["cached_prompt_tokens"], 1300, "{r}");
    assert_eq!(r["usage"]["prompt_tokens"], 1340);
    let want = (40.0 * 3.0 + 1300.0 * 0.3 + 5.0 * 15.0) / 1e6;
    assert!(
        (r["cost_usd"].as_f64().unwrap() - want).abs() < 1e-12,
        "{r}"
    );
    assert_eq!(body["summary"]["usage"]["cached_prompt_tokens"], 2600);

    // With the provider's switch off, nothing is marked.
    let off = spawn(
        &anthropic_config("unmarked", &server.uri(), "prompt_cache = false"),
        &[],
    )
    .await;
    let (status, _) = off.post("/v1/judge/score", &score_items(1)[0]).await;
    assert_eq!(status, 200);
    let last: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[2].body).unwrap();
    assert!(last["system"].is_string(), "{last}");
}

#[tokio::test]
async fn a_batch_through_the_standin_writes_the_prefix_once_and_reads_it_after() {
    let standin = Standin::start(&[
        "--prompt-tokens",
        "2000",
        "--cached-tokens",
        "1500",
        "--completion-tokens",
        "10",
        "--text",
        "Score: 7",
    ]);
    let app = spawn(&anthropic_config("claude", &standin.base, ""), &[]).await;
    let n = 6;
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"kind": "score", "max_concurrent": 1, "items": score_items(n)}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "ok" && r["score"] == 7.0),
        "{body}"
    );
    let usage = |i: usize, k: &str| results[i]["usage"][k].as_u64().unwrap_or(0);
    assert_eq!(
        (
            usage(0, "cache_write_tokens"),
            usage(0, "cached_prompt_tokens")
        ),
        (1500, 0)
    );
    for (i, r) in results.iter().enumerate().skip(1) {
        assert_eq!(usage(i, "cached_prompt_tokens"), 1500, "{r}");
        assert_eq!(usage(i, "cache_write_tokens"), 0);
        assert_eq!(usage(i, "prompt_tokens"), 2000);
    }
    let write = (500.0 * 3.0 + 1500.0 * 3.75 + 10.0 * 15.0) / 1e6;
    let read = (500.0 * 3.0 + 1500.0 * 0.3 + 10.0 * 15.0) / 1e6;
    let cost = |i: usize| results[i]["cost_usd"].as_f64().unwrap();
    assert!((cost(0) - write).abs() < 1e-12 && (cost(1) - read).abs() < 1e-12);
    let s = &body["summary"];
    assert_eq!(s["usage"]["cached_prompt_tokens"], 1500 * (n as u64 - 1));
    assert_eq!(s["usage"]["cache_write_tokens"], 1500);
    let total = write + read * (n as f64 - 1.0);
    assert!(
        (s["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9,
        "{s}"
    );
    let (_, text) = app.get("/metrics").await;
    assert_eq!(
        metric(&text, "claude", "cached_prompt"),
        1500 * (n as u64 - 1)
    );
    assert_eq!(metric(&text, "claude", "cache_write"), 1500);
    assert_eq!(metric(&text, "claude", "prompt"), 2000 * n as u64);
}

#[tokio::test]
async fn openai_caches_by_itself_and_the_cached_price_applies() {
    let standin = Standin::start(&[
        "--prompt-tokens",
        "1800",
        "--cached-tokens",
        "1024",
        "--completion-tokens",
        "12",
    ]);
    let toml = format!(
        r#"
[judge]
cache_entries = 0
[providers.oai]
kind = "openai"
base_url = "{}/v1"
api_key = "sk-test"
[routes]
default = ["oai:gpt-4.1"]
[prices]
"gpt-4.1" = {{ prompt_per_mtok = 2.0, completion_per_mtok = 8.0, cached_prompt_per_mtok = 0.5 }}
"#,
        standin.base
    );
    let app = spawn(&toml, &[]).await;
    let items: Vec<Value> = (0..3)
        .map(|i| json!({"question": format!("q{i}"), "answer": "a", "prediction": "a"}))
        .collect();
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"max_concurrent": 1, "items": items}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r = &body["results"];
    // The first request of a prefix fills the cache, the later ones read it.
    assert!(
        r[0]["usage"].get("cached_prompt_tokens").is_none(),
        "{}",
        r[0]
    );
    assert_eq!(r[1]["usage"]["cached_prompt_tokens"], 1024);
    let read = ((1800.0 - 1024.0) * 2.0 + 1024.0 * 0.5 + 12.0 * 8.0) / 1e6;
    assert!(
        (r[2]["cost_usd"].as_f64().unwrap() - read).abs() < 1e-12,
        "{}",
        r[2]
    );
    assert_eq!(body["summary"]["usage"]["cached_prompt_tokens"], 2048);
}
