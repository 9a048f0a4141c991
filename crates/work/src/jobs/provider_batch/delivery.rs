//! How an item's call goes as part of its job's provider batch: which items may, the request
//! queued for the batch (the item then waits as a record, not as a call in flight), and the
//! answer when the batch gives it back (or the online call when it does not).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::batches::{Batches, Mail};
use crate::jobs::record::ATTEMPT;
use crate::jobs::store::INVALID_LINE;
use llm_judge_chat::{ChatRequest, ProviderError};
use llm_judge_judge::JudgeKind;
use llm_judge_pool::{Attempt, Deliver, Delivered, Pool, RouteFailed};
use llm_judge_providers::provider_batch::{CustomId, ItemFailure, Queued};

impl Batches {
    /// The delivery for one item of the job, when its call goes as a provider batch: it is in
    /// a batch made before, or its route's first step has a batch API (and it makes one call:
    /// not a panel, not a comparison asked in both orders).
    pub fn delivery(
        self: &Arc<Self>,
        kind: JudgeKind,
        route: &str,
        index: u64,
        item: &Value,
    ) -> Option<(Arc<dyn Deliver>, f64)> {
        let resumed = self.state.lock().unwrap().of_item.get(&index).copied();
        let step = match resumed {
            Some(n) => {
                let provider = self.state.lock().unwrap().records[n].provider.clone();
                let model = self
                    .step_of(kind, route, item)
                    .filter(|s| s.provider == provider)
                    .map(|s| s.model)
                    .unwrap_or_default();
                llm_judge_pool::Step { provider, model }
            }
            None => {
                if tokio::time::Instant::now() >= self.deadline {
                    return None;
                }
                let step = self.step_of(kind, route, item)?;
                self.judge.pool().batch_client(&step.provider)?;
                step
            }
        };
        let discount = self
            .judge
            .pool()
            .batch_discount(&step.provider, &step.model)
            .unwrap_or(0.0);
        self.state.lock().unwrap().outstanding += 1;
        let delivery = Arc::new(ItemDelivery {
            batches: self.clone(),
            index,
            provider: step.provider,
            used: Mutex::new(Use::Fresh),
        });
        Some((delivery, discount))
    }

    /// The first step of the item's route, when the item makes one call along it.
    fn step_of(&self, kind: JudgeKind, route: &str, item: &Value) -> Option<llm_judge_pool::Step> {
        if item.get(INVALID_LINE).is_some() {
            return None;
        }
        if kind == JudgeKind::Compare && item.get("swap").and_then(Value::as_bool) != Some(false) {
            return None;
        }
        let route = match item.get("judge").and_then(Value::as_str) {
            Some(name) => self.judge.resolve_route(Some(name)).ok()?,
            None => route.to_string(),
        };
        if self.judge.panels().contains_key(&route) {
            return None;
        }
        self.judge.pool().first_step(&route)
    }

    /// Queues item `index`'s request, or finds the batch made before that holds it (and
    /// polls it).
    fn enqueue(self: &Arc<Self>, provider: &str, index: u64, chat: ChatRequest) {
        let resumed = {
            let mut s = self.state.lock().unwrap();
            s.outstanding = s.outstanding.saturating_sub(1);
            match s.of_item.get(&index).copied() {
                Some(n) => Some(n),
                None => {
                    s.queued
                        .entry(provider.to_string())
                        .or_default()
                        .push(Queued {
                            id: CustomId::new(index, ATTEMPT),
                            chat: Arc::new(chat),
                        });
                    None
                }
            }
        };
        match resumed {
            Some(n) => self.ensure_polling(n),
            None => self.changed.notify_one(),
        }
    }

    /// The delivery of an item whose batch gave back its outcome `mail`, `waited` after the
    /// item was queued: judged again from its stored item, the call it makes is answered with
    /// the batch's answer, or (the batch did not answer it) made online.
    pub fn answer(self: &Arc<Self>, mail: Mail, waited: Duration) -> Arc<dyn Deliver> {
        Arc::new(Answer {
            batches: self.clone(),
            mail: Mutex::new(Some(mail)),
            waited,
        })
    }
}

#[derive(PartialEq)]
enum Use {
    Fresh,
    Queued,
}

/// How one item's first call is delivered: queued for the job's provider batch, with no answer
/// now (the item is judged again when its batch answers; see [`Answer`]).
struct ItemDelivery {
    batches: Arc<Batches>,
    index: u64,
    provider: String,
    used: Mutex<Use>,
}

impl Drop for ItemDelivery {
    fn drop(&mut self) {
        if *self.used.lock().unwrap() == Use::Fresh {
            self.batches.gone();
        }
    }
}

impl Deliver for ItemDelivery {
    fn deliver<'a>(
        &'a self,
        pool: &'a Pool,
        route: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Delivered, RouteFailed>> {
        Box::pin(async move {
            let first = {
                let mut used = self.used.lock().unwrap();
                std::mem::replace(&mut *used, Use::Queued) == Use::Fresh
            };
            let step = pool
                .first_step(route)
                .filter(|s| s.provider == self.provider);
            let Some(step) = step.filter(|_| first) else {
                if first {
                    self.batches.gone();
                }
                return pool.complete(route, req).await;
            };
            let chat = ChatRequest {
                model: step.model,
                ..req
            };
            self.batches.enqueue(&self.provider, self.index, chat);
            Err(RouteFailed::parked())
        })
    }
}

/// How the call of an item whose batch gave back its outcome is delivered: that answer, or
/// (the batch did not answer it) online, at most the job's concurrency at once.
struct Answer {
    batches: Arc<Batches>,
    mail: Mutex<Option<Mail>>,
    waited: Duration,
}

impl Deliver for Answer {
    fn deliver<'a>(
        &'a self,
        pool: &'a Pool,
        route: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Delivered, RouteFailed>> {
        Box::pin(async move {
            let mail = self.mail.lock().unwrap().take();
            let (Some((outcome, batch)), Some(step)) = (mail, pool.first_step(route)) else {
                return pool.complete(route, req).await;
            };
            let failure = match outcome {
                Ok(completion) => {
                    return Ok(pool.batch_delivered(
                        &step.provider,
                        &step.model,
                        completion,
                        &batch,
                        self.waited,
                    ));
                }
                Err(f) => f,
            };
            let noted = Attempt {
                provider: step.provider.clone(),
                model: step.model.clone(),
                outcome: "error",
                status: match &failure {
                    ItemFailure::Errored(ProviderError::Status { status, .. }) => Some(*status),
                    _ => None,
                },
                error: Some(failure.to_string()),
                latency_ms: (self.waited.as_secs_f64() * 1000.0).round(),
            };
            let _permit = self.batches.online.acquire().await;
            match pool.complete(route, req).await {
                Ok(mut d) => {
                    d.attempts.insert(0, noted);
                    Ok(d)
                }
                Err(mut f) => {
                    f.attempts.insert(0, noted);
                    Err(f)
                }
            }
        })
    }
}
