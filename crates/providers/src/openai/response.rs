//! Reading an OpenAI-shaped answer: the first choice's text or refusal, usage with cached
//! tokens, log probabilities, and content-filter refusals as their own error.

use serde::Deserialize;
use serde_json::Value;

use crate::answer::{Answer, error_message};
use llm_judge_chat::{Completion, ProviderError, TokenLogprob, Usage};

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireAnswer>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

#[derive(Deserialize)]
pub(super) struct WireLogprobs {
    #[serde(default)]
    pub(super) content: Option<Vec<WireTokenLogprob>>,
}

#[derive(Deserialize)]
pub(super) struct WireTokenLogprob {
    token: String,
    logprob: f64,
    #[serde(default)]
    top_logprobs: Vec<WireTop>,
}

#[derive(Deserialize)]
struct WireTop {
    token: String,
    logprob: f64,
}

#[derive(Deserialize)]
pub(super) struct WireAnswer {
    #[serde(default)]
    pub(super) content: Option<Value>,
    #[serde(default)]
    pub(super) refusal: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Reads an OpenAI-shaped success body into a [`Completion`].
pub(crate) fn parse_response(body: &[u8]) -> Result<Completion, ProviderError> {
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Decode(format!("not a chat completion: {e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Decode("the response has no choices".into()))?;
    let (text, refusal) = match choice.message {
        Some(m) => (content_text(m.content), m.refusal.filter(|r| !r.is_empty())),
        None => (String::new(), None),
    };
    if choice.finish_reason.as_deref() == Some("content_filter") && text.is_empty() {
        return Err(ProviderError::ContentFilter(
            "the provider's content filter withheld the answer".into(),
        ));
    }
    Ok(Completion {
        text,
        usage: wire.usage.map(usage).unwrap_or_default(),
        finish_reason: choice.finish_reason,
        refusal,
        logprobs: choice.logprobs.and_then(|l| l.content).map(logprobs),
    })
}

pub(super) fn usage(u: WireUsage) -> Usage {
    Usage {
        cached_prompt_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(u.prompt_tokens),
        ..Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

pub(super) fn logprobs(tokens: Vec<WireTokenLogprob>) -> Vec<TokenLogprob> {
    tokens
        .into_iter()
        .map(|t| TokenLogprob {
            token: t.token,
            logprob: t.logprob,
            top: t
                .top_logprobs
                .into_iter()
                .map(|a| (a.token, a.logprob))
                .collect(),
        })
        .collect()
}

/// `content` is a string, null, or (on some compatible servers) an array of text parts.
pub(super) fn content_text(content: Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// True when an OpenAI-shaped error body says the content filter refused the prompt.
pub(crate) fn is_content_filter_error(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let code = v.pointer("/error/code").and_then(Value::as_str);
    let inner = v.pointer("/error/inner_error/code").and_then(Value::as_str);
    matches!(
        code,
        Some("content_filter") | Some("content_policy_violation")
    ) || inner == Some("ResponsibleAIPolicyViolation")
}

/// Turns an OpenAI-shaped answer into a [`Completion`] or a typed error.
pub(crate) fn openai_shaped(answer: Answer) -> Result<Completion, ProviderError> {
    if answer.is_success() {
        return parse_response(&answer.body);
    }
    if answer.status == 400 && is_content_filter_error(&answer.body) {
        return Err(ProviderError::ContentFilter(error_message(&answer.body)));
    }
    Err(answer.status_error(error_message(&answer.body)))
}
