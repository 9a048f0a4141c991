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

use reqwest::header::HeaderMap;

use crate::answer::Answer;
use crate::openai::{ChunkReader, openai_shaped, wire_request, wire_stream_request};
use crate::outgoing::{Outgoing, encode_path_segment, fixed_headers, json_body, parse_url};
use crate::wire::{EventReader, StreamFormat, WireFormat};
use llm_judge_chat::{ChatRequest, Completion, ProviderError};

/// An Azure OpenAI resource bound to an endpoint, an API version and an optional key.
pub struct Azure {
    endpoint: String,
    api_version: String,
    /// `api-key`, when a key is configured.
    headers: Option<HeaderMap>,
}

impl Azure {
    /// `endpoint` is the resource URL (`https://my-res.openai.azure.com`); `api_version` is the
    /// data-plane version sent as `api-version` (`2024-10-21`).
    pub fn new(endpoint: &str, api_version: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/');
        let endpoint = endpoint.strip_suffix("/openai").unwrap_or(endpoint);
        Ok(Self {
            endpoint: endpoint.to_string(),
            api_version: api_version.to_string(),
            headers: api_key
                .map(|k| fixed_headers(&[("api-key", k)], &[]))
                .transpose()?,
        })
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

impl WireFormat for Azure {
    fn kind(&self) -> &'static str {
        "azure"
    }

    fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }

    fn encode(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        Ok(Outgoing {
            // The URL names the deployment, so it is made per call.
            url: parse_url(&self.url(&req.model))?,
            body: json_body(&wire_request(req, None))?,
        })
    }

    fn decode(&self, answer: Answer) -> Result<Completion, ProviderError> {
        openai_shaped(answer)
    }

    fn streaming(&self) -> Option<&dyn StreamFormat> {
        Some(self)
    }
}

/// Streams as OpenAI does (`stream_options.include_usage` needs api-version 2024-09-01 or later).
impl StreamFormat for Azure {
    fn encode_stream(&self, req: &ChatRequest) -> Result<Outgoing, ProviderError> {
        Ok(Outgoing {
            url: parse_url(&self.url(&req.model))?,
            body: json_body(&wire_stream_request(req, None))?,
        })
    }

    fn reader(&self) -> Box<dyn EventReader> {
        Box::new(ChunkReader::default())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::conformance::{answer, request};
    use llm_judge_chat::{ImageRef, Part};

    fn azure() -> Azure {
        Azure::new(
            "https://res.openai.azure.com/openai/",
            "2024-10-21",
            Some("az-key"),
        )
        .unwrap()
    }

    #[test]
    fn url_encodes_the_deployment_and_tolerates_openai_suffix() {
        let p = azure();
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
        let mut r = request();
        r.messages[0].parts.push(Part::Image(ImageRef {
            url: "https://example.com/cat.png".into(),
        }));
        let v = serde_json::to_value(wire_request(&r, None)).unwrap();
        assert!(v.get("model").is_none());
        assert_eq!(
            v["messages"][1]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}})
        );
    }

    #[test]
    fn content_filter_400_and_finish_reason_are_content_filter() {
        let blocked = json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400, "inner_error": {"code": "ResponsibleAIPolicyViolation", "content_filter_results": {"violence": {"filtered": true, "severity": "high"}}}}});
        match azure().decode(answer(400, &blocked.to_string())) {
            Err(ProviderError::ContentFilter(m)) => {
                assert!(m.contains("content management policy"))
            }
            other => panic!("{other:?}"),
        }
        let filtered = json!({"choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant", "content": null}, "content_filter_results": {"sexual": {"filtered": true, "severity": "medium"}}}], "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}});
        assert!(matches!(
            azure().decode(answer(200, &filtered.to_string())),
            Err(ProviderError::ContentFilter(_))
        ));
    }
}
