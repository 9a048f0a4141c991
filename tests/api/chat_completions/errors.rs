//! Errors on the OpenAI-compatible endpoints are in OpenAI's shape (`error.message`, `type`,
//! `param`, `code`), whatever refused the request; other endpoints keep the service's own body.

use super::*;

/// The client token the service is configured with.
const TOKEN: &str = "client-secret-token-1";

/// A chat completion request with `body`, carrying `token` when given: the status, the body
/// and the `x-should-retry` header.
async fn send(
    app: &TestApp,
    body: Value,
    token: Option<&'static str>,
) -> (u16, Value, Option<String>) {
    let mut b = app.client.post(app.url("/v1/chat/completions")).json(&body);
    if let Some(t) = token {
        b = b.bearer_auth(t);
    }
    let r = b.send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("x-should-retry")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json::<Value>().await.unwrap(), retry)
}

/// Asserts that `v` is an error in OpenAI's shape.
fn shape(v: &Value) {
    let e = v["error"].as_object().unwrap();
    for k in ["message", "type", "param", "code"] {
        assert!(e.contains_key(k), "{k} missing in {v}");
    }
}

#[tokio::test]
async fn errors_are_in_openais_shape_on_these_endpoints_only() {
    let up = openai_standin("x").await;
    let bad = down().await;
    let toml = config(
        &[("a", "openai", &up), ("z", "openai", &bad)],
        "default = [\"a:gpt-a\"]\ndead = [\"z:m\"]",
    ) + "[auth]\ntokens = [\"client-secret-token-1\"]\n";
    let app = spawn(&toml, &[]).await;
    requests_refused_by_the_service(&app).await;
    a_route_that_fails(&app).await;
    bodies_and_methods_refused_before_the_handler(&app).await;
    other_endpoints_keep_their_own_body(&app).await;
}

/// No token, an unknown model, bad fields and a route that is no chat model.
async fn requests_refused_by_the_service(app: &TestApp) {
    let tok = Some(TOKEN);
    let (s, v, _) = send(app, chat("default", "hi"), None).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    shape(&v);
    let (s, v, _) = send(app, chat("nope", "hi"), tok).await;
    assert_eq!(
        (s, v["error"]["code"].as_str(), v["error"]["param"].as_str()),
        (404, Some("model_not_found"), Some("model"))
    );
    let (s, v, _) = send(app, json!({"model": "default", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}), tok).await;
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("temperature"))
    );
    shape(&v);
    let (s, v, _) = send(
        app,
        json!({"model": "default", "messages": [{"role": "tool", "content": "hi"}]}),
        tok,
    )
    .await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("invalid_request_error")),
        "{v}"
    );
    assert_eq!(v["error"]["param"], "messages[0].role");
    let (s, v, _) = send(
        app,
        json!({"model": "default", "messages": [], "bogus": 1}),
        tok,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("bogus"),
        "{v}"
    );
    let (s, v, _) = send(app, chat("rules", "hi"), tok).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("not_a_chat_model"))
    );
}

/// A route whose every step is down: a server error, not to be retried by the client.
async fn a_route_that_fails(app: &TestApp) {
    let (s, v, retry) = send(app, chat("dead", "hi"), Some(TOKEN)).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (502, Some("server_error"))
    );
    assert_eq!(
        retry.as_deref(),
        Some("false"),
        "the route was already retried"
    );
    assert_eq!(v["x_llm_judge"]["attempts"].as_array().unwrap().len(), 2);
}

/// Malformed JSON, and a GET where only POST is served.
async fn bodies_and_methods_refused_before_the_handler(app: &TestApp) {
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("client-secret-token-1")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    shape(&r.json().await.unwrap());
    let r = app
        .client
        .get(app.url("/v1/chat/completions"))
        .bearer_auth("client-secret-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    shape(&r.json().await.unwrap());
    let r = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    shape(&r.json().await.unwrap());
}

/// Other endpoints keep the service's own body.
async fn other_endpoints_keep_their_own_body(app: &TestApp) {
    let r = app
        .client
        .post(app.url("/v1/judge/binary"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    assert!(v["error"].get("type").is_none(), "{v}");
}

#[tokio::test]
async fn a_provider_5xx_told_not_to_retry_is_a_server_error_not_a_bad_request() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("x-should-retry", "false")
                .set_body_json(json!({"error": {"message": "overloaded", "type": "server_error"}})),
        )
        .mount(&provider)
        .await;
    let toml = config(&[("a", "openai", &provider)], "default = [\"a:gpt-a\"]");
    let app = spawn(&toml, &[]).await;
    let (status, v, _) = send(&app, chat("default", "hi"), None).await;
    // The OpenAI SDKs raise a 400 as BadRequestError and never retry it; a provider's 5xx is
    // the provider's fault, not the request's.
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
}
