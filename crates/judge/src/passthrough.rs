//! Chat completions passed through: a request the client wrote (not a judge template) sent along
//! a route, whole or streamed, through the verdict cache.
//!
//! The cache answers only requests at temperature 0 without log probabilities, keyed on the route
//! and every part of the request that can change the answer (system prompt, every message and
//! image, temperature, token budget, stop sequences, seed, response format); only answers that
//! finished normally (no refusal, not cut at the token budget, not filtered) are kept.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cache::{CachedAnswer, VerdictCache};
use crate::error::JudgeError;
use crate::judge::Judge;
use llm_judge_chat::{ChatRequest, ChatStream, Completion, Finish, Part, ResponseFormat};
use llm_judge_pool::{Attempt, Delivered, Pricing};

/// A whole chat answer and how it was obtained.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    pub delivered: Delivered,
    /// True when the answer came from the verdict cache (no provider was called).
    pub cached: bool,
}

/// A streamed chat answer and how it was obtained.
pub struct ChatStreamAnswer {
    pub stream: ChatStream,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    pub fallback: bool,
    pub cached: bool,
    /// The answering step's price for the usage the stream reports; `None` for a cached answer,
    /// which cost nothing.
    pub pricing: Option<Pricing>,
}

impl Judge {
    /// Sends a client's chat request along `route` for a whole answer. `use_cache` false skips
    /// the verdict cache both ways.
    pub async fn chat(
        &self,
        route: &str,
        req: ChatRequest,
        use_cache: bool,
    ) -> Result<ChatAnswer, JudgeError> {
        let key = self.chat_key(route, &req, use_cache);
        if let Some(hit) = self.chat_hit(key.as_ref()).await {
            return Ok(ChatAnswer {
                delivered: Delivered {
                    completion: cached_completion(hit.text),
                    provider: hit.provider,
                    model: hit.model,
                    attempts: Vec::new(),
                    fallback: false,
                    cost_usd: Some(0.0),
                    provider_time: Duration::ZERO,
                    provider_batch: None,
                },
                cached: true,
            });
        }
        let d = self
            .pool
            .complete(route, req)
            .await
            .map_err(|f| JudgeError::from_route(route, f))?;
        if let Some(k) = key
            && keeps(
                d.completion.finish_reason.as_deref(),
                d.completion.refusal.is_some(),
            )
        {
            self.cache.put(
                k,
                CachedAnswer {
                    text: d.completion.text.clone(),
                    provider: d.provider.clone(),
                    model: d.model.clone(),
                    // Requests asking for log probabilities are not cached.
                    logprobs: None,
                },
            );
        }
        Ok(ChatAnswer {
            delivered: d,
            cached: false,
        })
    }

    /// Sends a client's chat request along `route` for a streamed answer; a cached answer comes
    /// as a stream of one piece, and a streamed answer that finished normally is cached when it
    /// ends.
    pub async fn chat_stream(
        self: &Arc<Self>,
        route: &str,
        req: ChatRequest,
        use_cache: bool,
    ) -> Result<ChatStreamAnswer, JudgeError> {
        let key = self.chat_key(route, &req, use_cache);
        if let Some(hit) = self.chat_hit(key.as_ref()).await {
            return Ok(ChatStreamAnswer {
                stream: ChatStream::whole(cached_completion(hit.text)),
                provider: hit.provider,
                model: hit.model,
                attempts: Vec::new(),
                fallback: false,
                cached: true,
                pricing: None,
            });
        }
        let d = self
            .pool
            .stream(route, req)
            .await
            .map_err(|f| JudgeError::from_route(route, f))?;
        let mut stream = d.stream;
        if let Some(key) = key {
            #[derive(Default)]
            struct Seen {
                text: String,
                finish: Option<String>,
                refused: bool,
            }
            let seen = Arc::new(Mutex::new(Seen::default()));
            let (judge, from) = (self.clone(), seen.clone());
            let (provider, model) = (d.provider.clone(), d.model.clone());
            stream = stream
                .inspect(move |c| {
                    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                    s.text.push_str(&c.text);
                    s.refused |= c.refusal.is_some();
                    if c.finish_reason.is_some() {
                        s.finish.clone_from(&c.finish_reason);
                    }
                })
                .on_end(move |end| {
                    let s = std::mem::take(&mut *from.lock().unwrap_or_else(|p| p.into_inner()));
                    if end.outcome == llm_judge_chat::StreamOutcome::Complete
                        && keeps(s.finish.as_deref(), s.refused)
                    {
                        judge.cache.put(
                            key,
                            CachedAnswer {
                                text: s.text,
                                provider,
                                model,
                                logprobs: None,
                            },
                        );
                    }
                });
        }
        Ok(ChatStreamAnswer {
            stream,
            provider: d.provider,
            model: d.model,
            attempts: d.attempts,
            fallback: d.fallback,
            cached: false,
            pricing: Some(d.pricing),
        })
    }

    /// The cached answer under `key`, when there is a key and an answer.
    async fn chat_hit(&self, key: Option<&[u8; 32]>) -> Option<CachedAnswer> {
        self.cache.get(key?).await
    }

    /// The cache key of a chat request, when it may be answered from the cache.
    fn chat_key(&self, route: &str, req: &ChatRequest, use_cache: bool) -> Option<[u8; 32]> {
        let cacheable = use_cache
            && req.temperature == Some(0.0)
            && req.top_logprobs.is_none()
            && self.cache.enabled();
        cacheable.then(|| chat_key(route, req))
    }
}

/// Every part of a chat request that can change its answer, and the route, in one key. The
/// first part keeps these keys apart from the judge's.
pub fn chat_key(route: &str, req: &ChatRequest) -> [u8; 32] {
    let mut parts: Vec<String> = vec![
        "chat.completions/1".into(),
        route.into(),
        req.system.as_deref().unwrap_or("").into(),
        format!("{:?}", req.temperature),
        format!("{:?}", req.max_tokens),
        format!("{:?}", req.seed),
        match &req.response_format {
            None => String::new(),
            Some(ResponseFormat::JsonObject) => "json_object".into(),
            Some(ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            }) => format!("json_schema {name} {strict} {schema}"),
        },
        format!("stop {}", req.stop.len()),
    ];
    parts.extend(req.stop.iter().cloned());
    for msg in &req.messages {
        parts.push(format!("{} {}", msg.role.as_str(), msg.parts.len()));
        for p in &msg.parts {
            parts.push(match p {
                Part::Text(t) => format!("t{t}"),
                Part::Image(i) => format!("i{}", i.url),
            });
        }
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    VerdictCache::key(&refs)
}

/// Whether an answer that ended this way may be cached.
fn keeps(finish_reason: Option<&str>, refused: bool) -> bool {
    !refused && Finish::of(finish_reason) == Finish::Stop
}

fn cached_completion(text: String) -> Completion {
    Completion {
        text,
        finish_reason: Some("stop".into()),
        ..Completion::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_judge_chat::{ImageRef, Message, Role};

    fn req() -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            temperature: Some(0.0),
            max_tokens: Some(16),
            ..ChatRequest::user(Some("sys".into()), vec![Part::Text("hi".into())])
        }
    }

    #[test]
    fn the_key_covers_route_and_every_decoding_parameter() {
        let base = chat_key("default", &req());
        assert_eq!(base, chat_key("default", &req()));
        assert_ne!(base, chat_key("fb", &req()));
        type Change = Box<dyn Fn(&mut ChatRequest)>;
        let changes: Vec<Change> = vec![
            Box::new(|r| r.system = None),
            Box::new(|r| r.temperature = Some(0.5)),
            Box::new(|r| r.max_tokens = Some(17)),
            Box::new(|r| r.seed = Some(1)),
            Box::new(|r| r.stop = vec!["x".into()]),
            Box::new(|r| r.response_format = Some(ResponseFormat::JsonObject)),
            Box::new(|r| r.messages[0].role = Role::Assistant),
            Box::new(|r| {
                r.messages[0].parts.push(Part::Image(ImageRef {
                    url: "data:image/png;base64,AA".into(),
                }))
            }),
            Box::new(|r| {
                r.messages
                    .push(Message::user(vec![Part::Text("more".into())]))
            }),
            // The same text split differently is another conversation.
            Box::new(|r| {
                r.messages[0].parts = vec![Part::Text("h".into()), Part::Text("i".into())]
            }),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut r = req();
            change(&mut r);
            assert_ne!(chat_key("default", &r), base, "change {i}");
        }
        // The model is the route step's, not the client's: it is not part of the key.
        let mut r = req();
        r.model = "other".into();
        assert_eq!(chat_key("default", &r), base);
    }

    #[test]
    fn only_answers_that_finished_normally_are_kept() {
        for r in [None, Some("stop"), Some("end_turn"), Some("COMPLETE")] {
            assert!(keeps(r, false), "{r:?}");
        }
        for r in [Some("length"), Some("max_tokens"), Some("content_filter")] {
            assert!(!keeps(r, false), "{r:?}");
        }
        assert!(!keeps(Some("stop"), true));
    }
}
