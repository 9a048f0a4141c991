//! Rate limits: the provider never sees more than R requests in any window, and a saturated batch
//! runs at no less than 90% of R.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Records when each call arrived.
#[derive(Clone, Default)]
struct Clock {
    arrivals: Arc<Mutex<Vec<Instant>>>,
}
impl Respond for Clock {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.arrivals.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200).set_body_json(openai_answer("Verdict: 1"))
    }
}

#[tokio::test]
async fn requests_per_window_are_never_exceeded_and_a_saturated_batch_keeps_up() {
    const R: usize = 20;
    const N: usize = 60;
    const WINDOW: Duration = Duration::from_secs(2);
    let server = MockServer::start().await;
    let clock = Clock::default();
    Mock::given(method("POST"))
        .respond_with(clock.clone())
        .mount(&server)
        .await;
    let toml = openai_config("openai", &server, "gpt-4o").replace(
        "api_key = ",
        &format!(
            "requests_per_minute = {R}\nrate_window_s = {}\napi_key = ",
            WINDOW.as_secs()
        ),
    );
    let app = spawn(&toml, &[]).await;
    let items: Vec<Value> = (0..N)
        .map(|i| json!({"question":"q","answer":"a","prediction":format!("p{i}"),"options":{"cache":false}}))
        .collect();
    let started = Instant::now();
    let (status, body) = app
        .post(
            "/v1/judge/batch",
            &json!({"max_concurrent": 200, "items": items}),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["correct"], N, "{}", body["summary"]);
    let mut arrivals = clock.arrivals.lock().unwrap().clone();
    arrivals.sort();
    assert_eq!(arrivals.len(), N);
    let busiest = busiest_window(&arrivals, WINDOW);
    assert!(
        busiest <= R,
        "{busiest} requests in one {WINDOW:?} window, limit {R}"
    );
    // At 90% of R per window, N requests may take N / (0.9 R) windows.
    let allowed = WINDOW.mul_f64(N as f64 / (0.9 * R as f64));
    assert!(
        elapsed <= allowed,
        "the batch took {elapsed:?}, more than {allowed:?} (90% of the limit)"
    );
    assert!(
        elapsed >= WINDOW * 2,
        "60 at 20 per window cannot finish within two windows: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_permit_wait_past_its_budget_moves_the_route_on() {
    let limited = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Clock::default())
        .mount(&limited)
        .await;
    let backup = openai_standin("Verdict: 0").await;
    let toml = format!(
        r#"
[providers.limited]
kind = "openai"
base_url = "{}/v1"
api_key = "k"
requests_per_minute = 1
permit_wait_s = 0.2
[providers.backup]
kind = "openai"
base_url = "{}/v1"
api_key = "k"
[routes]
default = ["limited:m1", "backup:m2"]
"#,
        limited.uri(),
        backup.uri()
    );
    let app = spawn(&toml, &[]).await;
    let item = json!({"question":"q","answer":"a","prediction":"p","options":{"cache":false}});
    let (_, first) = app.post("/v1/judge/binary", &item).await;
    assert_eq!(first["provider"], "limited");
    let (_, second) = app.post("/v1/judge/binary", &item).await;
    assert_eq!(second["provider"], "backup", "{second}");
    assert_eq!(second["attempts"][0]["outcome"], "skipped");
    assert!(
        second["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("rate-limit")
    );
}
