//! The batch endpoints answer over h2c (HTTP/2 with prior knowledge) too.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::mock::{Mock, lines};
use crate::requests::{jsonl, message_batch};

/// Sends `req` and reads its JSON answer, checking it came over HTTP/2.
async fn h2_json(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn batch_endpoints_answer_over_h2c_too() {
    let mock = Mock::start(&["--batch-delay-ms", "0"]);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let form = Form::new().text("purpose", "batch").part(
        "file",
        Part::bytes(jsonl(3).into_bytes()).file_name("in.jsonl"),
    );
    let file = h2_json(h2.post(mock.url("/files")).multipart(form)).await;
    assert!(file["id"].as_str().unwrap().starts_with("file-"), "{file}");
    let create = json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions",
                        "completion_window": "24h"});
    let batch = h2_json(h2.post(mock.url("/batches")).json(&create)).await;
    let path = format!("/batches/{}", batch["id"].as_str().unwrap());
    let done = h2_json(h2.get(mock.url(&path))).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["request_counts"]["completed"], 3);

    let batch = h2_json(
        h2.post(mock.url("/v1/messages/batches"))
            .json(&message_batch(3)),
    )
    .await;
    let path = format!("/v1/messages/batches/{}", batch["id"].as_str().unwrap());
    let ended = h2_json(h2.get(mock.url(&path))).await;
    let url = ended["results_url"].as_str().unwrap();
    assert_eq!(url, mock.url(&format!("{path}/results")));
    let text = h2.get(url).send().await.unwrap().text().await.unwrap();
    assert_eq!(lines(&text).len(), 3);
}
