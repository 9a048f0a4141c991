//! How an item's call goes as part of its job's provider batch: which items may, the request
//! queued for the batch, and the online call when the batch does not answer it.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::oneshot;

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

    /// Queues item `index`'s request (or finds the batch made before that holds it) and
    /// returns where its outcome arrives.
    fn enqueue(
        self: &Arc<Self>,
        provider: &str,
        index: u64,
        chat: Arc<ChatRequest>,
    ) -> oneshot::Receiver<Mail> {
        let rx = self.mailbox(index);
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
                            chat,
                        });
                    None
                }
            }
        };
        match resumed {
            Some(n) => self.ensure_polling(n),
            None => self.changed.notify_one(),
        }
        rx
    }
}

#[derive(PartialEq)]
enum Use {
    Fresh,
    Queued,
}

/// How one item's call is delivered: its first call through the job's provider batch (an item
/// asks once), any other online.
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
            // One copy of the request, shared by the queue and (should the batch not answer
            // it) the online call.
            let chat = Arc::new(ChatRequest {
                model: step.model.clone(),
                ..req
            });
            let started = tokio::time::Instant::now();
            let rx = self
                .batches
                .enqueue(&self.provider, self.index, chat.clone());
            let (outcome, batch) = rx
                .await
                .unwrap_or_else(|_| (Err(ItemFailure::Missing), String::new()));
            let failure = match outcome {
                Ok(completion) => {
                    return Ok(pool.batch_delivered(
                        &step.provider,
                        &step.model,
                        completion,
                        &batch,
                        started.elapsed(),
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
                latency_ms: (started.elapsed().as_secs_f64() * 1000.0).round(),
            };
            let _permit = self.batches.online.acquire().await;
            let req = Arc::try_unwrap(chat).unwrap_or_else(|shared| (*shared).clone());
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
