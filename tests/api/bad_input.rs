//! Bad input gets a clear 4xx naming the field, never a 500.

use crate::support::*;
use serde_json::{Value, json};

fn field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn single_item_errors_name_the_field() {
    let app = spawn("[server]\nmax_body_bytes = 4096\n", &[]).await;
    let ok = json!({"question":"q","answer":"a","prediction":"p"});
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"question": 1, "answer":"a","prediction":"p"}),
            422,
            "invalid_field",
            "question",
        ),
        (
            json!({"question":"q","answer":"a"}),
            422,
            "invalid_field",
            "prediction",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"   "}),
            422,
            "invalid_field",
            "prediction",
        ),
        (
            json!({"question":"","answer":"a","prediction":"p"}),
            422,
            "invalid_field",
            "question",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","judge":"nobody"}),
            422,
            "unknown_judge",
            "judge",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","prompt":"{question} {context}"}),
            422,
            "invalid_field",
            "prompt",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","output_format":"maybe"}),
            422,
            "invalid_field",
            "output_format",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","images":["file:///etc/passwd"]}),
            422,
            "invalid_field",
            "images[0]",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","images":["data:image/png,notbase64"]}),
            422,
            "invalid_field",
            "images[0]",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","options":{"temperature":9}}),
            422,
            "invalid_field",
            "options.temperature",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","options":{"max_tokens":-1}}),
            422,
            "invalid_field",
            "options.max_tokens",
        ),
        (
            json!({"question":"q","answer":"a","prediction":"p","surprise":true}),
            422,
            "invalid_field",
            "surprise",
        ),
        (json!([1, 2]), 422, "invalid_field", "body"),
    ];
    for (body, status, code, f) in cases {
        let (s, resp) = app.post("/v1/judge/binary", &body).await;
        assert_eq!(s, status, "{body} -> {resp}");
        assert_eq!(resp["error"]["code"], code, "{body} -> {resp}");
        assert_eq!(field(&resp), f, "{body} -> {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // malformed JSON and an empty body: 400
    for raw in ["{\"question\": ", "not json", "", "{} trailing"] {
        let (s, resp) = app.post_raw("/v1/judge/binary", raw.to_string()).await;
        assert_eq!(s, 400, "{raw:?} -> {resp}");
        assert_eq!(resp["error"]["code"], "malformed_json");
    }
    // a body over the limit: 413
    let big = json!({"question": "q".repeat(8000), "answer":"a","prediction":"p"});
    let (s, resp) = app.post("/v1/judge/binary", &big).await;
    assert_eq!(s, 413, "{resp}");
    assert_eq!(resp["error"]["code"], "body_too_large");
    // and the good request still works
    assert_eq!(app.post("/v1/judge/binary", &ok).await.0, 200);
}

#[tokio::test]
async fn score_and_compare_validate_their_own_fields() {
    let app = spawn("", &[]).await;
    let (s, r) = app
        .post(
            "/v1/judge/score",
            &json!({"question":"q","prediction":"p","min":5,"max":1}),
        )
        .await;
    assert_eq!((s, field(&r)), (422, "max"), "{r}");
    let (s, r) = app
        .post(
            "/v1/judge/score",
            &json!({"question":"q","prediction":"p","pass_score":99}),
        )
        .await;
    assert_eq!((s, field(&r)), (422, "pass_score"), "{r}");
    let (s, r) = app
        .post(
            "/v1/judge/compare",
            &json!({"question":"q","response_a":"x"}),
        )
        .await;
    assert_eq!((s, field(&r)), (422, "response_b"), "{r}");
    let (s, r) = app.post("/v1/judge/compare", &json!({"question":"q","response_a":"x","response_b":"y","prompt":"{question} {prediction}"})).await;
    assert_eq!((s, field(&r)), (422, "prompt"), "{r}");
}

#[tokio::test]
async fn batch_level_errors_are_4xx_and_item_errors_are_entries() {
    let app = spawn(
        "[server]\nmax_batch_items = 3\nbatch_max_concurrent_limit = 50\n",
        &[],
    )
    .await;
    let item = json!({"question":"q","answer":"4","prediction":"4"});
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"kind":"binary","items":[item, item, item, item]}),
            "too_many_items",
            "items",
        ),
        (
            json!({"kind":"binary","items":[]}),
            "invalid_field",
            "items",
        ),
        (json!({"kind":"binary"}), "invalid_field", "items"),
        (
            json!({"kind":"ternary","items":[item]}),
            "invalid_field",
            "kind",
        ),
        (
            json!({"kind":"binary","judge":"nobody","items":[item]}),
            "unknown_judge",
            "judge",
        ),
        (
            json!({"kind":"binary","max_concurrent":0,"items":[item]}),
            "invalid_field",
            "max_concurrent",
        ),
        (
            json!({"kind":"binary","max_concurrent":51,"items":[item]}),
            "invalid_field",
            "max_concurrent",
        ),
        (
            json!({"kind":"binary","items":"many"}),
            "invalid_field",
            "items",
        ),
        (
            json!({"questions":["a","b"],"answers":["a"],"predictions":["a","b"]}),
            "invalid_field",
            "answers",
        ),
        (
            json!({"kind":"score","questions":["a"],"answers":["a"],"predictions":["a"]}),
            "invalid_field",
            "kind",
        ),
        (
            json!({"items":[item],"questions":["a"],"answers":["a"],"predictions":["a"]}),
            "invalid_field",
            "items",
        ),
    ];
    for (body, code, f) in cases {
        let (s, resp) = app.post("/v1/judge/batch", &body).await;
        assert_eq!(s, 422, "{body} -> {resp}");
        assert_eq!(resp["error"]["code"], code, "{body} -> {resp}");
        assert_eq!(field(&resp), f, "{body} -> {resp}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_the_error_body() {
    let app = spawn("", &[]).await;
    let (s, body) = app.get("/v1/nothing").await;
    assert_eq!(s, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let (s, body) = app.get("/v1/judge/binary").await;
    assert_eq!(s, 405);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_job_id_that_is_not_utf8_gets_the_error_body() {
    let app = spawn("", &[]).await;
    for (method, path) in [
        ("GET", "/v1/jobs/%FF"),
        ("DELETE", "/v1/jobs/%FF"),
        ("GET", "/v1/jobs/%FF/results"),
        ("GET", "/v1/jobs/%C3%28/events"),
    ] {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{method} {path}");
        let v: Value = r.json().await.expect("a JSON error body");
        assert_eq!(v["error"]["code"], "invalid_path", "{method} {path}: {v}");
        assert_eq!(v["error"]["field"], "id", "{method} {path}: {v}");
    }
}

#[tokio::test]
async fn images_that_are_not_base64_images_or_have_no_host_are_refused_naming_the_field() {
    let app = spawn("", &[]).await;
    let item = |image: &str| json!({"question":"q","answer":"4","prediction":"4","images":[image]});
    for bad in [
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png;base64,not*base64",
        "https://",
        "https:///cat.png",
    ] {
        let (s, r) = app.post("/v1/judge/binary", &item(bad)).await;
        assert_eq!((s, field(&r)), (422, "images[0]"), "{bad}: {r}");
    }
    // In a batch, the item becomes an error entry naming it; the others are judged.
    let good = item("data:image/png;base64,iVBORw0KGgo=");
    let body = json!({"kind": "binary", "items": [good, good, good, item("data:text/plain;base64,aGVsbG8=")]});
    let (s, r) = app.post("/v1/judge/batch", &body).await;
    assert_eq!(s, 200, "{r}");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results[3]["status"], "error", "{r}");
    assert_eq!(results[3]["error"]["field"], "items[3].images[0]", "{r}");
    assert!(results[..3].iter().all(|e| e["status"] == "ok"), "{r}");
}

#[tokio::test]
async fn a_job_id_not_of_the_services_form_is_404_before_any_store_sees_it() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let app = spawn(&format!("[redis]\nurl = \"{}\"\n", redis.url()), &[]).await;
    let (status, job) = app.post("/v1/jobs", &json!({"items": items(2)})).await;
    assert_eq!(status, 202, "{job}");
    let real = job["id"].as_str().unwrap();
    // A real job's id with the suffixes of the store's own keys for it, other text, and a
    // well-formed id of no job.
    let ids = [
        format!("{real}:q"),
        format!("{real}:ord"),
        format!("{real}:results"),
        "nothing".to_string(),
        "job_0123456789abcdef".to_string(),
    ];
    for id in &ids {
        for path in ["", "/results", "/events"] {
            let r = app
                .client
                .get(app.url(&format!("/v1/jobs/{id}{path}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 404, "{id}{path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "job_not_found", "{id}{path}: {body}");
        }
        let r = app
            .client
            .delete(app.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "DELETE {id}");
    }
    let metrics = get_text(&app.client, &app.url("/metrics")).await;
    assert_eq!(
        metric(&metrics, "llm_judge_redis_errors_total", ""),
        0.0,
        "no Redis call failed"
    );
}

#[tokio::test]
async fn a_misspelt_query_parameter_is_refused_naming_it() {
    let app = spawn("", &[]).await;
    let line = format!("{}\n", items(1)[0]);
    let r = app
        .client
        .post(app.url("/v1/jobs?judg=fast&max_concurent=2"))
        .header("content-type", "application/x-ndjson")
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    assert_eq!(field(&body), "judg", "{body}");
    for path in [
        "/v1/jobs?limt=3",
        "/v1/calibrate/runs?judges=x",
        "/v1/jobs/job_0123456789abcdef/results?ordr=index",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 422, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            ["limt", "judges", "ordr"].contains(&field(&body)),
            "{path}: {body}"
        );
    }
    // Nothing was stored under the default route.
    let list = get_json(&app.client, &app.url("/v1/jobs")).await.unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
}
