//! The OpenAI batch client's own tests: a line's body, results read as online answers, and
//! statuses read as phases.

use super::wire::WireBatch;
use super::*;
use crate::provider_batch::batch::Phase;

fn batches() -> Batches {
    let wire = crate::openai::OpenAi::new(
        "openai",
        "https://api.openai.com/v1",
        Some("sk-secret-key-1234"),
        &[],
    )
    .unwrap();
    Batches::openai(
        Http::for_tests("sk-secret-key-1234"),
        "https://api.openai.com/v1/",
        wire.headers().cloned(),
        std::sync::Arc::new(wire),
    )
}

#[test]
fn a_line_carries_exactly_the_online_body() {
    let b = batches();
    let chat = crate::conformance::request();
    let q = Queued {
        id: CustomId::new(7, 1),
        chat: std::sync::Arc::new(chat.clone()),
    };
    let line: serde_json::Value = serde_json::from_slice(&b.line(&q).unwrap()).unwrap();
    let online: serde_json::Value =
        serde_json::from_slice(&b.wire.encode(&chat).unwrap().body).unwrap();
    assert_eq!(line["body"], online);
    assert_eq!(line["custom_id"], "i7-a1");
    assert_eq!(line["url"], "/v1/chat/completions");
    assert_eq!(line["method"], "POST");
    assert_eq!(b.url("/files"), "https://api.openai.com/v1/files");
}

#[test]
fn results_lines_read_as_online_answers_and_typed_failures() {
    let b = batches();
    let ok = br#"{"id":"r1","custom_id":"i3-a0","response":{"status_code":200,"request_id":"x","body":{"choices":[{"message":{"content":"Verdict: 1"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}},"error":null}"#;
    let (id, o) = b.outcome(ok).unwrap();
    assert_eq!(id, CustomId::new(3, 0));
    let c = o.unwrap();
    assert_eq!(c.text, "Verdict: 1");
    assert_eq!(c.usage.cached_prompt_tokens, 4);
    let failed = br#"{"custom_id":"i4-a0","response":{"status_code":500,"body":{"error":{"message":"boom sk-secret-key-1234","type":"server_error","param":null,"code":null}}},"error":null}"#;
    match b.outcome(failed).unwrap().1 {
        Err(ItemFailure::Errored(e)) => {
            assert_eq!(e.status(), Some(500));
            assert!(e.is_retryable());
            assert!(!e.to_string().contains("sk-secret"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let expired = br#"{"custom_id":"i5-a2","response":null,"error":{"code":"batch_expired","message":"late"}}"#;
    assert_eq!(b.outcome(expired).unwrap().1, Err(ItemFailure::Expired));
    assert!(b.outcome(br#"{"custom_id":"someone-else"}"#).is_none());
    assert!(b.outcome(b"not json").is_none());
}

#[test]
fn statuses_map_to_phases() {
    let s = |json: &str| serde_json::from_str::<WireBatch>(json).unwrap().status();
    let st = s(
        r#"{"id":"b","status":"completed","request_counts":{"total":3,"completed":2,"failed":1},"output_file_id":"f1","error_file_id":"f2"}"#,
    );
    assert_eq!(st.phase, Phase::Ended);
    assert_eq!(
        (st.counts.succeeded, st.counts.errored, st.counts.total),
        (2, 1, 3)
    );
    assert_eq!(st.results, ["f1", "f2"]);
    let st = s(
        r#"{"id":"b","status":"failed","errors":{"data":[{"code":"invalid","message":"line 1 is bad"}]}}"#,
    );
    assert_eq!(st.phase, Phase::Failed("line 1 is bad".into()));
    assert_eq!(
        s(r#"{"id":"b","status":"cancelling"}"#).phase,
        Phase::Cancelling
    );
}
