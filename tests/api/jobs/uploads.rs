//! Jobs uploaded as NDJSON: items streamed to disk with bad lines reported by number, and an
//! idempotency key held by an upload until it finishes or is aborted.

use super::*;

#[tokio::test]
async fn an_ndjson_upload_streams_items_to_disk_and_reports_bad_lines_by_number() {
    let app = spawn("", &[]).await;
    let body = "{\"question\":\"2+2?\",\"answer\":\"4\",\"prediction\":\"4\"}\n\n{not json}\n[1,2]\n{\"question\":\"3+3?\",\"answer\":\"6\",\"prediction\":\"7\"}";
    let r = app
        .client
        .post(app.url("/v1/jobs?kind=binary&idempotency_key=upload-1"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    let done = wait_for(&app, &id, |v| v["status"] == "completed").await;
    assert_eq!(done["total"], 4, "blank lines are not items: {done}");
    let (_, text) = app.get(&format!("/v1/jobs/{id}/results")).await;
    let rows = ndjson(&text);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["verdict"], "correct");
    assert_eq!(rows[1]["error"]["code"], "invalid_line");
    assert!(
        rows[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 3:"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 4:"),
        "{}",
        rows[2]
    );
    assert_eq!(rows[3]["verdict"], "incorrect");
    // the same key and the same upload return the same job; another upload under it is a 409
    let again = |body: &'static str| {
        app.client
            .post(app.url("/v1/jobs?idempotency_key=upload-1"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let r = again(body).await.unwrap();
    assert_eq!(r.status(), 202);
    let again_v: Value = r.json().await.unwrap();
    assert_eq!(again_v["id"], id.as_str());
    assert_eq!(again_v["created"], false);
    let r = again("{}").await.unwrap();
    assert_eq!(r.status(), 409);
    let conflict: Value = r.json().await.unwrap();
    assert_eq!(
        conflict["error"]["code"], "idempotency_conflict",
        "{conflict}"
    );
    assert_eq!(conflict["error"]["field"], "idempotency_key", "{conflict}");
    assert!(
        conflict["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"upload-1\""),
        "{conflict}"
    );
    // a bad judge is refused before anything is stored
    let r = app
        .client
        .post(app.url("/v1/jobs?judge=nobody"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

/// Starts an NDJSON upload on a raw connection (chunked, so it can stay open) and sends its
/// first line; dropping the stream aborts the upload.
async fn start_upload(app: &TestApp, key: &str, first_line: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let line = format!("{first_line}\n");
    let head = format!(
        "POST /v1/jobs?idempotency_key={key} HTTP/1.1\r\nhost: {}\r\n\
         content-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{line}\r\n",
        app.addr,
        line.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.flush().await.unwrap();
    tcp
}

async fn post_ndjson(app: &TestApp, key: &str, body: &'static str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/v1/jobs?idempotency_key={key}")))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_key_in_use_by_an_unfinished_upload_is_a_409_and_an_aborted_upload_frees_it() {
    let app = spawn("", &[]).await;
    let line = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    let upload = start_upload(&app, "k-1", line).await;
    // Wait until the first upload's job exists (it is listed as uploading).
    let deadline = Instant::now() + Duration::from_secs(10);
    let first_id = loop {
        let (_, listing) = app.get("/v1/jobs").await;
        let listing: Value = serde_json::from_str(&listing).unwrap();
        if let Some(j) = listing["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["status"] == "uploading")
        {
            break j["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // A second upload with the key is refused while the first is arriving: it does not get
    // an id that would turn into a 404 if the first one broke off.
    let body = "{\"question\":\"3+3?\",\"answer\":\"6\",\"prediction\":\"6\"}\n";
    let (s, v) = post_ndjson(&app, "k-1", body).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "idempotency_in_progress", "{v}");
    assert_eq!(v["error"]["field"], "idempotency_key", "{v}");
    // So is a JSON submission with it.
    let (s, v) = app
        .post(
            "/v1/jobs",
            &json!({"items": items(1), "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("idempotency_in_progress")),
        "{v}"
    );

    // The client goes away mid-upload: the upload is removed and the key is free again.
    drop(upload);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (s, v) = loop {
        let (s, v) = post_ndjson(&app, "k-1", body).await;
        if s != 409 {
            break (s, v);
        }
        assert!(Instant::now() < deadline, "the key was never released: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["created"], true, "{v}");
    let id = v["id"].as_str().unwrap();
    assert_ne!(id, first_id);
    assert_eq!(app.get(&format!("/v1/jobs/{first_id}")).await.0, 404);
    let done = wait_for(&app, id, |v| v["status"] == "completed").await;
    assert_eq!(done["total"], 1);
}
