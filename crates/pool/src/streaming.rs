//! Streamed answers: the fallback loop up to a step's first piece, then the answering
//! provider's stream, its tokens and cost counted when it ends.

use std::sync::Arc;
use std::time::Duration;

use crate::cost;
use crate::outcome::{Attempt, RouteFailed};
use crate::pool::Pool;
use crate::slot::ProviderSlot;
use llm_judge_chat::{ChatRequest, ChatStream, Completion, Usage};
use llm_judge_metrics as m;

impl Pool {
    /// Sends `req` along the route for a streamed answer. Fallback and retries apply until a
    /// step's first piece has arrived; after that the stream is the answering provider's, and a
    /// failure ends it with an error. Its tokens and cost are counted when it ends.
    pub async fn stream(
        &self,
        route: &str,
        req: ChatRequest,
    ) -> Result<StreamDelivered, RouteFailed> {
        let a = self.deliver(route, req, |s| &s.stream_stack).await?;
        let pricing = Pricing {
            slot: a.slot.clone(),
            model: a.model.clone(),
        };
        let counted = pricing.clone();
        let provider: Arc<str> = a.provider.as_str().into();
        let stream = a.reply.on_end(move |end| {
            metrics::counter!(m::STREAMS, "provider" => provider.to_string(), "outcome" => end.outcome.as_str())
                .increment(1);
            if let Some(usage) = end.usage {
                let c = Completion {
                    usage,
                    ..Completion::default()
                };
                let cost = cost::of(&counted.slot, &counted.model, &c, cost::Channel::Online);
                cost::record(&counted.slot, &counted.model, &c, cost);
            }
        });
        Ok(StreamDelivered {
            stream,
            provider: a.provider,
            model: a.model,
            attempts: a.attempts,
            fallback: a.fallback,
            provider_time: a.provider_time,
            pricing,
        })
    }
}

/// A streamed answer and how it was obtained (its cost is known when it ends: [`Pricing`]).
pub struct StreamDelivered {
    pub stream: ChatStream,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    pub fallback: bool,
    /// Time spent waiting on providers up to the first piece.
    pub provider_time: Duration,
    pub pricing: Pricing,
}

/// The price of the step that answered, for usage known later.
#[derive(Clone)]
pub struct Pricing {
    slot: Arc<ProviderSlot>,
    model: String,
}

impl Pricing {
    /// What `usage` costs at the configured price; `None` when no price is configured.
    pub fn cost(&self, usage: Usage) -> Option<f64> {
        cost::of(
            &self.slot,
            &self.model,
            &Completion {
                usage,
                ..Completion::default()
            },
            cost::Channel::Online,
        )
    }
}
