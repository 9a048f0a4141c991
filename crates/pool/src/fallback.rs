//! The fallback loop over a route's steps: each step through its provider's stack until one
//! answers, moving on when another provider could do better and stopping when the request
//! itself is at fault; and the online completion built on it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceExt;

use crate::call::Call;
use crate::cost;
use crate::failure::{Failure, classify};
use crate::outcome::{Attempt, Delivered, RouteFailed};
use crate::pool::{Pool, Step};
use crate::reply::Reply;
use crate::slot::ProviderSlot;
use llm_judge_chat::{ChatRequest, ProviderError};
use llm_judge_metrics as m;

/// How a step ended without an answer.
enum StepEnd {
    /// Try the next step; the reason is a bounded label.
    Next(&'static str, String),
    /// Stop the route: the request itself is at fault.
    Stop(String),
}

impl Pool {
    /// Sends `req` along the route: each step with its own model, until one answers.
    pub async fn complete(&self, route: &str, req: ChatRequest) -> Result<Delivered, RouteFailed> {
        let a = self.deliver(route, req, |s| &s.stack).await?;
        let cost = cost::of(&a.slot, &a.model, &a.reply, cost::Channel::Online);
        cost::record(&a.slot, &a.model, &a.reply, cost);
        Ok(Delivered {
            completion: a.reply,
            provider: a.provider,
            model: a.model,
            attempts: a.attempts,
            fallback: a.fallback,
            cost_usd: cost,
            provider_time: a.provider_time,
            provider_batch: None,
        })
    }

    /// The fallback loop both kinds of answer share: each step through its provider's stack
    /// (`stack` picks which of the two), until one answers.
    pub(crate) async fn deliver<R: Reply>(
        &self,
        route: &str,
        req: ChatRequest,
        stack: impl Fn(&ProviderSlot) -> &tower::util::BoxCloneSyncService<Call, R, tower::BoxError>,
    ) -> Result<Answered<R>, RouteFailed> {
        let steps = match self.steps(route) {
            Ok(s) => s,
            Err(why) => {
                return Err(RouteFailed {
                    attempts: Vec::new(),
                    provider_time: Duration::ZERO,
                    last_error: why,
                    client_error: true,
                    outage: false,
                    parked: false,
                });
            }
        };
        let label = self.route_label(route);
        let mut chat = Arc::new(req);
        let mut attempts = Vec::new();
        let mut provider_time = Duration::ZERO;
        let mut last_error = format!("route {route:?} has no steps");
        let mut prev: Option<(&Step, &'static str)> = None;
        // Whether every step so far failed for a transient reason (a skipped step did not).
        let mut outage = true;
        for (i, step) in steps.iter().enumerate() {
            if let Some((from, reason)) = prev.take() {
                metrics::counter!(m::FALLBACKS, "route" => label.to_string(), "from" => from.provider.clone(),
                    "to" => step.provider.clone(), "reason" => reason)
                .increment(1);
            }
            let Some(slot) = self.slots.get(&step.provider) else {
                outage = false;
                attempts.push(skipped(step, "provider is not configured"));
                last_error = format!("provider {} is not configured", step.provider);
                prev = Some((step, "not_configured"));
                continue;
            };
            if !slot.has_credentials {
                outage = false;
                attempts.push(skipped(step, "no API key configured"));
                last_error = format!("{} has no API key", step.provider);
                prev = Some((step, "no_credentials"));
                continue;
            }
            // The only copy of the request is made here, and only when a step needs another
            // model while a clone is still shared (never, once the stack is done with it).
            if chat.model != step.model {
                Arc::make_mut(&mut chat).model.clone_from(&step.model);
            }
            let started = Instant::now();
            let call = Call::new(chat.clone(), started + slot.deadline);
            let trail = call.trail.clone();
            let result = stack(slot).clone().oneshot(call).await;
            provider_time += started.elapsed();
            attempts.extend(trail.take());
            match result {
                Ok(reply) => {
                    return Ok(Answered {
                        reply,
                        slot: slot.clone(),
                        provider: step.provider.clone(),
                        model: step.model.clone(),
                        attempts,
                        fallback: i > 0,
                        provider_time,
                    });
                }
                Err(e) => match step_end(step, &classify(&e), trail.stopped()) {
                    StepEnd::Next(reason, msg) => {
                        outage &= classify(&e).is_transient();
                        last_error = msg;
                        prev = Some((step, reason));
                    }
                    StepEnd::Stop(msg) => {
                        return Err(RouteFailed {
                            attempts,
                            provider_time,
                            last_error: msg,
                            client_error: true,
                            outage: false,
                            parked: false,
                        });
                    }
                },
            }
        }
        Err(RouteFailed {
            attempts,
            provider_time,
            last_error,
            client_error: false,
            outage: outage && !steps.is_empty(),
            parked: false,
        })
    }
}

/// What a step that answered gave back, before the kind of answer is accounted for.
pub(crate) struct Answered<R> {
    pub reply: R,
    pub slot: Arc<ProviderSlot>,
    pub provider: String,
    pub model: String,
    pub attempts: Vec<Attempt>,
    pub fallback: bool,
    pub provider_time: Duration,
}

/// How a step that failed with `failure` ends; `stopped` is why its retries ended, if they did.
fn step_end(step: &Step, failure: &Failure<'_>, stopped: Option<&'static str>) -> StepEnd {
    let msg = |what: &dyn std::fmt::Display| format!("{}: {what}", step.provider);
    match failure {
        Failure::CircuitOpen => StepEnd::Next("circuit_open", msg(&"circuit open")),
        Failure::NoPermit => StepEnd::Next("rate_limit_wait", msg(&"no rate-limit permit in time")),
        Failure::Other(e) => StepEnd::Next("error", msg(e)),
        Failure::TimedOut => StepEnd::Next(
            if stopped == Some("deadline") {
                "deadline"
            } else {
                "retries_exhausted"
            },
            msg(&"timed out"),
        ),
        Failure::Provider(e) if e.is_retryable() => StepEnd::Next(
            if stopped == Some("deadline") {
                "deadline"
            } else {
                "retries_exhausted"
            },
            msg(e),
        ),
        Failure::Provider(e) if another_provider_could_avoid(e) => {
            StepEnd::Next(fallback_reason(e), msg(e))
        }
        Failure::Provider(e) => StepEnd::Stop(msg(e)),
    }
}

/// Non-retryable errors that another provider might not have: every status but the ones that
/// say the request itself is at fault (400, 413, 422: it would fail everywhere), including a
/// retryable one told not to retry here (`x-should-retry: false`) and a redirect; unreadable
/// answers, content filters, unsupported input, untrusted certificates.
fn another_provider_could_avoid(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => !matches!(status, 400 | 413 | 422),
        ProviderError::ContentFilter(_)
        | ProviderError::NoCredentials
        | ProviderError::Unsupported(_)
        | ProviderError::Tls(_) => true,
        // Retryable kinds told not to retry (x-should-retry: false) still fall back.
        ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::Decode(_) => true,
    }
}

fn fallback_reason(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::Status {
            status: 401 | 403 | 498,
            ..
        } => "auth",
        ProviderError::Status { status: 404, .. } => "not_found",
        ProviderError::Status { status: 429, .. } => "rate_limited",
        ProviderError::Status { status, .. } if *status >= 500 => "server_error",
        ProviderError::Status { status, .. } if (300..400).contains(status) => "redirect",
        ProviderError::Decode(_) => "decode_error",
        ProviderError::ContentFilter(_) => "content_filter",
        ProviderError::Unsupported(_) => "unsupported",
        ProviderError::Tls(_) => "tls",
        _ => "error",
    }
}

fn skipped(step: &Step, why: &str) -> Attempt {
    Attempt {
        provider: step.provider.clone(),
        model: step.model.clone(),
        outcome: "skipped",
        status: None,
        error: Some(why.to_string()).filter(|s| !s.is_empty()),
        latency_ms: 0.0,
    }
}
