//! The committed OpenAPI document is what the server serves and `llm-judge openapi` prints.

use std::process::Command;

#[test]
fn committed_openapi_document_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-judge"))
        .arg("openapi")
        .output()
        .expect("run llm-judge openapi");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap_or_default();
    assert!(
        printed == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = serde_json::to_value(llm_judge::api::openapi()).unwrap();
    assert_eq!(doc, expected, "the printed document is the served one");
}
