//! The OpenAI shapes of an answer: a `chat.completion`, or the `chat.completion.chunk` events of
//! a streamed one, each with llm-judge's own fields under `x_llm_judge`; and the model list.

use std::convert::Infallible;

use axum::response::sse::Event;
use futures::{Stream, StreamExt};
use serde::Serialize;
use utoipa::ToSchema;

use llm_judge_chat::{ChatStream, Chunk, Finish, TokenLogprob, Usage};
use llm_judge_pool::Attempt;

/// A whole answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-` and the request's id (its `x-request-id`).
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model of the route step that answered.
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: CompletionUsage,
    #[schema(value_type = Option<String>)]
    pub system_fingerprint: Option<()>,
    pub x_llm_judge: Meta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop`, `length` or `content_filter`.
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: &'static str,
    pub content: Option<String>,
    /// The provider's refusal, when it reported one in a field of its own.
    pub refusal: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChoiceLogprobs {
    pub content: Vec<TokenLogprobOut>,
    #[schema(value_type = Option<Vec<TokenLogprobOut>>)]
    pub refusal: Option<()>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenLogprobOut {
    pub token: String,
    pub logprob: f64,
    /// The token's UTF-8 bytes.
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
}

impl From<Usage> for CompletionUsage {
    fn from(u: Usage) -> Self {
        CompletionUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total(),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_prompt_tokens,
            },
        }
    }
}

/// llm-judge's account of the answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meta {
    /// The route as the request named it.
    pub route: String,
    /// The provider and model of the step that answered.
    pub provider: String,
    pub model: String,
    /// Every provider attempt, skipped steps included.
    pub attempts: Vec<Attempt>,
    /// True when a later step of the route answered.
    pub fallback: bool,
    /// From the configured prices; null when the answering model has none.
    pub cost_usd: Option<f64>,
    /// True when the answer came from the verdict cache (no provider was called).
    pub cached: bool,
}

/// The routes, as OpenAI's model list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    pub data: Vec<Model>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    /// The route's name: what `model` takes.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    pub created: u64,
    /// `llm-judge`.
    pub owned_by: &'static str,
    pub x_llm_judge: ModelMeta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMeta {
    /// The route's steps as `provider:model`, tried in order.
    pub steps: Vec<String>,
    /// Whether this is the service's default route.
    pub default: bool,
}

/// A provider's finish reason in OpenAI's words.
pub fn finish_reason(reason: Option<&str>) -> &'static str {
    match Finish::of(reason) {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ContentFilter => "content_filter",
    }
}

/// Log probabilities in OpenAI's shape.
pub fn logprobs_out(tokens: Vec<TokenLogprob>) -> Vec<TokenLogprobOut> {
    tokens
        .into_iter()
        .map(|t| TokenLogprobOut {
            bytes: t.token.as_bytes().to_vec(),
            token: t.token,
            logprob: t.logprob,
            top_logprobs: t
                .top
                .into_iter()
                .map(|(token, logprob)| TopLogprob {
                    bytes: token.as_bytes().to_vec(),
                    token,
                    logprob,
                })
                .collect(),
        })
        .collect()
}

/// One event of a streamed answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    /// One choice; none in the last chunk when `stream_options.include_usage` is set.
    pub choices: Vec<ChunkChoice>,
    /// With `stream_options.include_usage`: `null` in every chunk but the last, which has the
    /// usage (as OpenAI streams it); left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CompletionUsage>)]
    pub usage: Option<Option<CompletionUsage>>,
    /// In the last chunk before `[DONE]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_llm_judge: Option<Meta>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<ChoiceLogprobs>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// What every chunk of one answer shares, and how its end is told.
pub struct StreamHead {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
    pub logprobs: bool,
    pub meta: Meta,
    /// The cost of the usage the stream reported.
    pub cost: Box<dyn Fn(Option<Usage>) -> Option<f64> + Send>,
}

impl StreamHead {
    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.include_usage.then_some(None),
            x_llm_judge: None,
        }
    }
}

fn data(chunk: &impl Serialize) -> Event {
    Event::default().data(serde_json::to_string(chunk).expect("a chunk serialises"))
}

/// The SSE events of a streamed answer: the role, each piece's text as it arrives, then the
/// finish reason, the usage (when asked for) with `x_llm_judge`, and `data: [DONE]`. A failure
/// after the first piece ends the events with an `error` event in OpenAI's error shape and no
/// `[DONE]`, so that no client mistakes a broken answer for a whole one.
pub fn events(
    head: StreamHead,
    stream: ChatStream,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let out = Outgoing {
        head,
        stream,
        started: false,
        finish: None,
        usage: None,
        over: false,
    };
    futures::stream::unfold(out, |mut out| async move {
        let events = out.next_events().await?;
        Some((events, out))
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)))
}

/// A streamed answer on its way out as events, and what it has told so far.
struct Outgoing {
    head: StreamHead,
    stream: ChatStream,
    started: bool,
    /// The provider's finish reason, once it sent one.
    finish: Option<String>,
    /// The last usage the provider sent.
    usage: Option<Usage>,
    /// The last events are out.
    over: bool,
}

impl Outgoing {
    /// The next events to send; `None` once the answer is over.
    async fn next_events(&mut self) -> Option<Vec<Event>> {
        if self.over {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(vec![data(&self.role())]);
        }
        loop {
            match self.stream.next().await {
                Some(Ok(c)) => {
                    if let Some(event) = self.piece(c) {
                        return Some(vec![event]);
                    }
                }
                Some(Err(e)) => {
                    self.over = true;
                    return Some(vec![self.failure(&e)]);
                }
                None => {
                    self.over = true;
                    return Some(self.end());
                }
            }
        }
    }

    /// The first chunk: the assistant's role and no text yet.
    fn role(&self) -> ChatCompletionChunk {
        self.head.chunk(vec![ChunkChoice {
            index: 0,
            delta: Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                refusal: None,
            },
            logprobs: None,
            finish_reason: None,
        }])
    }

    /// A piece of the answer as a chunk; `None` when it carries nothing to show (its finish
    /// reason and usage are kept for the end).
    fn piece(&mut self, c: Chunk) -> Option<Event> {
        if c.finish_reason.is_some() {
            self.finish = c.finish_reason;
        }
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        let logprobs = c.logprobs.filter(|l| self.head.logprobs && !l.is_empty());
        if c.text.is_empty() && c.refusal.is_none() && logprobs.is_none() {
            return None;
        }
        let chunk = self.head.chunk(vec![ChunkChoice {
            index: 0,
            delta: Delta {
                role: None,
                content: (!c.text.is_empty()).then_some(c.text),
                refusal: c.refusal,
            },
            logprobs: logprobs.map(|l| ChoiceLogprobs {
                content: logprobs_out(l),
                refusal: None,
            }),
            finish_reason: None,
        }]);
        Some(data(&chunk))
    }

    /// The `error` event of a provider that failed after the first piece.
    fn failure(&self, e: &impl std::fmt::Display) -> Event {
        tracing::warn!(provider = %self.head.meta.provider, error = %e, "a provider's stream failed after its first piece");
        let body = super::errors::OpenAiError {
            message: format!(
                "the provider {} failed in the middle of the answer, which is incomplete: {e}",
                self.head.meta.provider
            ),
            kind: "server_error",
            param: None,
            code: "provider_stream_failed".into(),
        };
        Event::default().event("error").data(
            serde_json::to_string(&super::errors::OpenAiErrorBody {
                error: body,
                x_llm_judge: None,
            })
            .expect("an error serialises"),
        )
    }

    /// The last events of a whole answer: the finish reason, the usage when asked for, the
    /// account (`x_llm_judge`, with the cost), and `[DONE]`.
    fn end(&self) -> Vec<Event> {
        let mut meta = self.head.meta.clone();
        meta.cost_usd = (self.head.cost)(self.usage);
        let mut finish = self.head.chunk(vec![ChunkChoice {
            index: 0,
            delta: Delta::default(),
            logprobs: None,
            finish_reason: Some(finish_reason(self.finish.as_deref())),
        }]);
        let mut out = Vec::with_capacity(3);
        if self.head.include_usage {
            out.push(data(&finish));
            let mut last = self.head.chunk(Vec::new());
            // A provider that reported no usage gets none here either.
            last.usage = Some(self.usage.map(Into::into));
            last.x_llm_judge = Some(meta);
            out.push(data(&last));
        } else {
            finish.x_llm_judge = Some(meta);
            out.push(data(&finish));
        }
        out.push(Event::default().data("[DONE]"));
        out
    }
}
