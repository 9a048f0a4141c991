//! The shared pool, built once at start-up: every provider's slot, the configured routes, and
//! the steps a route's name stands for (a configured route, or an ad-hoc one of providers).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tower::retry::budget::TpsBudget;

use crate::rate_limit::{Limiter, LocalLimiter};
use crate::settings::PoolSettings;
use crate::slot::{ProviderSlot, Shared};
use llm_judge_chat::Grader;
use llm_judge_providers::{ProviderKind, ProviderSettings};

/// One step of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub provider: String,
    pub model: String,
}

/// The route label metrics use for ad-hoc routes (their text is the client's).
const AD_HOC: &str = "adhoc";

/// The shared pool, built once at start-up.
pub struct Pool {
    pub(crate) slots: BTreeMap<String, Arc<ProviderSlot>>,
    pub(crate) routes: BTreeMap<String, Vec<Step>>,
    pub(crate) default_route: String,
}

impl Pool {
    /// Builds every provider's client and stack from the settings; `grader` answers for the
    /// `rules` provider.
    pub fn from_settings(s: &PoolSettings<'_>, grader: Arc<dyn Grader>) -> anyhow::Result<Pool> {
        Self::with_limiters(s, grader, &|p| Arc::new(local_limiter(p)))
    }

    /// [`Pool::from_settings`], with each provider's limiter made by `limiter` (a limiter
    /// shared by several replicas, say).
    pub fn with_limiters(
        s: &PoolSettings<'_>,
        grader: Arc<dyn Grader>,
        limiter: &dyn Fn(&ProviderSettings) -> Arc<dyn Limiter>,
    ) -> anyhow::Result<Pool> {
        let budget = Arc::new(TpsBudget::new(
            Duration::from_secs(10),
            s.retry.budget_min_per_s,
            s.retry.budget_ratio as f32,
        ));
        let prices = Arc::new(s.prices.clone());
        let mut slots = BTreeMap::new();
        let shared = Shared {
            settings: s,
            grader,
            budget,
            prices,
        };
        for (name, p) in s.providers {
            let slot = ProviderSlot::build(name, p, &shared, limiter)?;
            slots.insert(name.clone(), Arc::new(slot));
        }
        let routes = s
            .routes
            .iter()
            .map(|(name, steps)| {
                let steps = steps
                    .iter()
                    .map(|st| Step {
                        provider: st.provider.clone(),
                        model: st.model.clone(),
                    })
                    .collect();
                (name.clone(), steps)
            })
            .collect();
        Ok(Pool {
            slots,
            routes,
            default_route: s.default_route.to_string(),
        })
    }

    pub fn default_route(&self) -> &str {
        &self.default_route
    }

    /// The steps of a route: a configured route by name, else an ad-hoc route of configured
    /// providers, `provider:model[,provider:model...]`, where a bare `provider` means its
    /// default model. `Err` says why the name is neither.
    pub fn steps(&self, route: &str) -> Result<Cow<'_, [Step]>, String> {
        if let Some(steps) = self.routes.get(route) {
            return Ok(Cow::Borrowed(steps));
        }
        let mut steps = Vec::new();
        for part in route.split(',') {
            let part = part.trim();
            let (provider, model) = match part.split_once(':') {
                Some((p, m)) => (p.trim(), Some(m.trim())),
                None => (part, None),
            };
            let Some(slot) = self.slots.get(provider) else {
                return Err(
                    if steps.is_empty() && model.is_none() && !route.contains(',') {
                        format!("no route named {route:?}")
                    } else {
                        format!("{provider:?} is not a configured provider")
                    },
                );
            };
            let model = match model {
                Some("") => return Err(format!("the step {part:?} names no model")),
                Some(m) => m.to_string(),
                None if slot.kind == ProviderKind::Rules => "rules".to_string(),
                None => slot.default_model.clone().ok_or_else(|| {
                    format!(
                        "provider {provider:?} has no default_model; name one as {provider}:MODEL"
                    )
                })?,
            };
            steps.push(Step {
                provider: provider.to_string(),
                model,
            });
        }
        Ok(Cow::Owned(steps))
    }

    /// Whether `route` names a configured route or a valid ad-hoc one.
    pub fn has_route(&self, route: &str) -> bool {
        self.steps(route).is_ok()
    }

    /// Whether some step of the route is a deterministic `rules` provider (which grades the
    /// raw fields of [`ChatRequest::grading`](llm_judge_chat::ChatRequest::grading) rather than
    /// the prompt).
    pub fn route_uses_rules(&self, route: &str) -> bool {
        self.steps(route).is_ok_and(|steps| {
            steps.iter().any(|st| {
                self.slots
                    .get(&st.provider)
                    .is_some_and(|s| s.kind == ProviderKind::Rules)
            })
        })
    }

    /// Whether every step of the route is the `rules` provider.
    pub fn route_is_rules(&self, route: &str) -> bool {
        self.steps(route).is_ok_and(|steps| {
            steps.iter().all(|st| {
                self.slots
                    .get(&st.provider)
                    .is_some_and(|s| s.kind == ProviderKind::Rules)
            })
        })
    }

    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// The label `route` gets in metrics: its name, or `adhoc` for an ad-hoc route.
    pub fn route_label<'a>(&self, route: &'a str) -> &'a str {
        if self.routes.contains_key(route) {
            route
        } else {
            AD_HOC
        }
    }

    /// The first step of `route`: where a provider batch of its calls goes.
    /// Of a request's decoding, what `provider` sends for `model`: its temperature (reasoning
    /// models on the OpenAI wire take none) and its seed (Anthropic's API takes none); `None`
    /// for the rules judge (and a provider not configured), which is sent no decoding.
    pub fn sends(&self, provider: &str, model: &str) -> Option<Sends> {
        use llm_judge_providers::ProviderKind as K;
        let slot = self.slots.get(provider)?;
        Some(match slot.kind {
            K::Openai | K::Azure | K::Together => Sends {
                temperature: !llm_judge_providers::openai::is_reasoning_model(model),
                seed: true,
            },
            K::Cohere | K::Gemini => Sends {
                temperature: true,
                seed: true,
            },
            K::Anthropic => Sends {
                temperature: true,
                seed: false,
            },
            K::Rules => return None,
        })
    }

    pub fn first_step(&self, route: &str) -> Option<Step> {
        self.steps(route).ok()?.first().cloned()
    }
}

/// The in-process limiter of a provider: its limits and those of its models.
pub fn local_limiter(p: &ProviderSettings) -> LocalLimiter {
    p.model_limits.iter().fold(
        LocalLimiter::new(
            p.requests_per_minute.map(u64::from),
            p.tokens_per_minute,
            p.rate_window,
        ),
        |l, (model, m)| {
            l.with_model(
                model,
                m.requests_per_minute.map(u64::from),
                m.tokens_per_minute,
            )
        },
    )
}

/// What a provider sends of a request's decoding ([`Pool::sends`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sends {
    pub temperature: bool,
    pub seed: bool,
}
