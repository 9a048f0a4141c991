//! Requests refused before a handler runs: pages of other sites (with CORS for allowed ones), a
//! body that is not JSON, and what hyper refuses itself, each with the error body.

use super::*;

#[tokio::test]
async fn pages_of_other_sites_are_refused_and_allowed_ones_get_cors() {
    let app = spawn(
        &server_toml("allowed_origins = [\"https://dash.example\"]"),
        &[],
    )
    .await;
    let item = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    // A form-like cross-site POST from a page elsewhere (no preflight for text/plain).
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_origins"),
        "{body}"
    );
    // Its preflight too.
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/judge/binary"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The allowed page: preflight answered, CORS headers on the answer.
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/judge/binary"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .header("origin", "https://dash.example")
        .header("content-type", "application/json")
        .body(item)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    assert_eq!(r.headers()["access-control-expose-headers"], "x-request-id");
    // No Origin (curl, SDKs): served, without CORS headers.
    let (status, body) = app.post_raw("/v1/judge/binary", item).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_body_declared_as_something_other_than_json_gets_415() {
    let app = spawn("", &[]).await;
    let item = r#"{"question":"2+2?","answer":"4","prediction":"4"}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = app
            .client
            .post(app.url("/v1/judge/binary"))
            .header("content-type", content_type)
            .body(item)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
        assert_eq!(body["error"]["field"], "content-type");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    // JSON with parameters, and no content type at all (a raw client), are read as JSON.
    for content_type in [Some("application/json; charset=utf-8"), None] {
        let mut req = app.client.post(app.url("/v1/judge/binary")).body(item);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{content_type:?}");
    }
}

#[tokio::test]
async fn requests_hyper_refuses_before_routing_still_get_the_error_body() {
    let app = spawn("", &[]).await;
    for (request, status, code) in [
        (
            "POST /v1/judge/binary HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_string(),
            400,
            "malformed_request",
        ),
        (
            // More headers than hyper's limit of 100 (a head over its buffer is refused the
            // same way, unless one read happens to bring the whole head in).
            format!(
                "GET /healthz HTTP/1.1\r\nhost: t\r\n{}\r\n",
                (0..150).map(|i| format!("x-h{i}: v\r\n")).collect::<String>()
            ),
            431,
            "headers_too_large",
        ),
        (
            "GET /he\u{1}lthz HTTP/1.1\r\nhost: t\r\n\r\n".to_string(),
            400,
            "malformed_request",
        ),
    ] {
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        let _ = tcp.write_all(request.as_bytes()).await;
        let (got, head, body) = read_answer(&mut tcp).await;
        assert_eq!(got, status, "{}: {head}", &request[..40.min(request.len())]);
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(closed_within(&mut tcp, Duration::from_secs(2)).await.is_some());
    }
}
