//! Azure OpenAI adapter: OpenAI's chat body and answer, sent to a deployment URL with an `api-key`.
//!
//! The request goes to `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V`,
//! where the deployment is [`ChatRequest::model`], percent-encoded as one path segment. An endpoint
//! given with the spec's `/openai` suffix (`https://res.openai.azure.com/openai`) is accepted too.
//!
//! Decisions:
//! * The body is the OpenAI body without `model` (Azure takes it from the path), built by
//!   [`wire_request`]. Its reasoning-model rule (`max_completion_tokens`, no `temperature`) looks at
//!   the deployment name, so a deployment must be named after its model (`o3-mini`, `gpt-5`) to
//!   get it.
//! * Only key authentication (`api-key` header); Entra ID bearer tokens are not supported. Without a
//!   key the adapter returns [`ProviderError::NoCredentials`] and sends nothing.
//! * A 400 whose `error.code` is `content_filter` or whose `error.inner_error.code` is
//!   `ResponsibleAIPolicyViolation`, and an answer with `finish_reason: content_filter` and no text,
//!   become [`ProviderError::ContentFilter`] (shared with the OpenAI adapter).

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::header::HeaderMap;

use super::http::HttpClient;
use super::openai::{openai_shaped, wire_request};
use super::{ChatRequest, Completion, Provider, ProviderError};

/// An Azure OpenAI resource bound to an endpoint, an API version and an optional key.
pub struct AzureProvider {
    client: HttpClient,
    endpoint: String,
    api_version: String,
    /// `api-key`, when a key is configured.
    headers: Option<Result<HeaderMap, ProviderError>>,
}

impl AzureProvider {
    /// `endpoint` is the resource URL (`https://my-res.openai.azure.com`); `api_version` is the
    /// data-plane version sent as `api-version` (`2024-10-21`).
    pub fn new(
        client: HttpClient,
        endpoint: &str,
        api_version: &str,
        api_key: Option<String>,
    ) -> Self {
        let endpoint = endpoint.trim_end_matches('/');
        let endpoint = endpoint.strip_suffix("/openai").unwrap_or(endpoint);
        Self {
            client,
            endpoint: endpoint.to_string(),
            api_version: api_version.to_string(),
            headers: api_key
                .filter(|k| !k.is_empty())
                .map(|k| super::fixed_headers(&[("api-key", &k)])),
        }
    }

    /// The URL for one deployment (it carries no credentials, so it may be logged).
    pub fn url(&self, deployment: &str) -> String {
        format!(
            "{}/openai/deployments/{}/chat/completions?api-version={}",
            self.endpoint,
            encode_path_segment(deployment),
            encode_path_segment(&self.api_version)
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the value stays one path
/// segment (or one query value) whatever it contains.
pub(crate) fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Provider for AzureProvider {
    fn kind(&self) -> &'static str {
        "azure"
    }

    fn has_credentials(&self) -> bool {
        self.headers.is_some()
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        async move {
            let headers = self.headers.as_ref().ok_or(ProviderError::NoCredentials)?;
            let headers = headers.as_ref().map_err(Clone::clone)?;
            // The URL names the deployment, so it is parsed per call.
            let url = super::parse_url(&self.url(&req.model))?;
            let body = wire_request(req, None);
            openai_shaped(self.client.post_json(&url, headers, &body).await?)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::providers::{ImageRef, Part, Usage};

    fn req(model: &str) -> ChatRequest {
        ChatRequest {
            model: model.into(),
            system: Some("You are a strict grader.".into()),
            user: vec![Part::Text("Is 2+2=4? Answer yes or no.".into())],
            temperature: Some(0.0),
            max_tokens: Some(8),
            grading: None,
        }
    }

    fn provider(endpoint: &str) -> AzureProvider {
        AzureProvider::new(
            HttpClient::default(),
            endpoint,
            "2024-10-21",
            Some("az-key".into()),
        )
    }

    const OK: &str = r#"{"id":"chatcmpl-A1","object":"chat.completion","created":1729000000,"model":"gpt-4o-2024-08-06","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"yes","refusal":null},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"usage":{"prompt_tokens":24,"completion_tokens":1,"total_tokens":25}}"#;

    #[test]
    fn url_encodes_the_deployment_and_tolerates_openai_suffix() {
        let p = provider("https://res.openai.azure.com/openai/");
        assert_eq!(
            p.url("gpt-4o"),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            p.url("my dep/x?y"),
            "https://res.openai.azure.com/openai/deployments/my%20dep%2Fx%3Fy/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(encode_path_segment("a~b_c.d-é"), "a~b_c.d-%C3%A9");
    }

    #[test]
    fn body_has_no_model_and_keeps_images() {
        let mut r = req("gpt-4o");
        r.user.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        let v = serde_json::to_value(wire_request(&r, None)).unwrap();
        assert_eq!(
            v,
            json!({
                "messages": [
                    {"role": "system", "content": "You are a strict grader."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Is 2+2=4? Answer yes or no."},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ]}
                ],
                "temperature": 0.0,
                "max_tokens": 8
            })
        );
    }

    #[test]
    fn no_key_means_no_credentials_and_no_request() {
        let p = AzureProvider::new(
            HttpClient::default(),
            "http://127.0.0.1:9",
            "v",
            Some(String::new()),
        );
        assert!(!p.has_credentials());
        assert_eq!(p.kind(), "azure");
        let r = req("gpt-4o");
        let err = futures::executor::block_on(p.chat(&r)).unwrap_err();
        assert_eq!(err, ProviderError::NoCredentials);
    }

    #[tokio::test]
    async fn sends_deployment_url_api_key_and_body_without_model() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/openai/deployments/gpt-4o-judge/chat/completions"))
            .and(query_param("api-version", "2024-10-21"))
            .and(header("api-key", "az-key"))
            .and(header("content-type", "application/json"))
            .and(|r: &Request| !r.headers.contains_key("authorization"))
            .and(body_json(json!({
                "messages": [
                    {"role": "system", "content": "You are a strict grader."},
                    {"role": "user", "content": "Is 2+2=4? Answer yes or no."}
                ],
                "temperature": 0.0,
                "max_tokens": 8
            })))
            .respond_with(ResponseTemplate::new(200).set_body_raw(OK, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
        let c = provider(&server.uri())
            .chat(&req("gpt-4o-judge"))
            .await
            .unwrap();
        assert_eq!(c.text, "yes");
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            c.usage,
            Usage {
                prompt_tokens: 24,
                completion_tokens: 1
            }
        );
    }

    #[tokio::test]
    async fn content_filter_400_and_finish_reason_are_content_filter() {
        let server = MockServer::start().await;
        let blocked = json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400, "inner_error": {"code": "ResponsibleAIPolicyViolation", "content_filter_results": {"violence": {"filtered": true, "severity": "high"}}}}});
        Mock::given(method("POST"))
            .and(path("/openai/deployments/blocked/chat/completions"))
            .and(query_param("api-version", "2024-10-21"))
            .respond_with(ResponseTemplate::new(400).set_body_json(blocked))
            .expect(1)
            .mount(&server)
            .await;
        let filtered = json!({"choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant", "content": null}, "content_filter_results": {"sexual": {"filtered": true, "severity": "medium"}}}], "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}});
        Mock::given(method("POST"))
            .and(path("/openai/deployments/filtered/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(filtered))
            .expect(1)
            .mount(&server)
            .await;
        let p = provider(&server.uri());
        match p.chat(&req("blocked")).await {
            Err(ProviderError::ContentFilter(m)) => {
                assert!(m.contains("content management policy"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.chat(&req("filtered")).await,
            Err(ProviderError::ContentFilter(_))
        ));
    }

    #[tokio::test]
    async fn rate_limit_reads_retry_after_and_never_leaks_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/openai/deployments/gpt-4o/chat/completions"))
            .and(query_param("api-version", "2024-10-21"))
            .and(header("api-key", "az-key"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after-ms", "1500")
                    .insert_header("retry-after", "2")
                    .set_body_json(json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 2 seconds."}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = provider(&server.uri())
            .chat(&req("gpt-4o"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
        assert!(err.is_retryable());
        let shown = err.to_string();
        assert!(shown.contains("exceeded token rate limit"), "{shown}");
        assert!(
            !shown.contains("az-key") && !shown.contains("127.0.0.1"),
            "{shown}"
        );
    }
}
