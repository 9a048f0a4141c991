//! The `[routes]` section: each route's steps (`"provider:model"`) and options, validated against
//! the providers, and the default route, chosen when none is configured.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use llm_judge_judge::settings::RouteOptions;
use llm_judge_pool::settings::StepSettings;
use llm_judge_providers::settings::{ProviderKind, ProviderSettings};

use super::check::ConfigError;
use super::lists::{RouteSpec, split_list};

/// A route as written: a list of steps (or a comma-separated string), or a table with `steps`
/// and the route's options (`structured`, `confidence`).
#[derive(Debug, Clone)]
pub(super) struct RawRoute {
    steps: Vec<String>,
    options: RouteOptions,
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawRoute;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of \"provider:model\" steps, or a table with `steps` and optionally \
                     `structured`, `confidence` and `seed`",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRoute, E> {
                Ok(RawRoute {
                    steps: split_list(v),
                    options: RouteOptions::default(),
                })
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawRoute, A::Error> {
                let steps =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(RawRoute {
                    steps,
                    options: RouteOptions::default(),
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawRoute, A::Error> {
                let mut route = RawRoute {
                    steps: Vec::new(),
                    options: RouteOptions::default(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "steps" => route.steps = map.next_value::<RouteSpec>()?.0,
                        "structured" => route.options.structured = map.next_value()?,
                        "confidence" => route.options.confidence = map.next_value()?,
                        "seed" => route.options.seed = Some(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["steps", "structured", "confidence", "seed"],
                            ));
                        }
                    }
                }
                Ok(route)
            }
        }
        d.deserialize_any(V)
    }
}

/// The configured routes, validated.
pub(super) struct Routes {
    /// Each route's steps.
    pub(super) steps: BTreeMap<String, Vec<StepSettings>>,
    /// The options of the routes that set any other than the defaults.
    pub(super) options: BTreeMap<String, RouteOptions>,
}

/// Validates every configured route: its steps, and its options where they are not the
/// defaults.
pub(super) fn validate(
    raw: &BTreeMap<String, RawRoute>,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<Routes, ConfigError> {
    let mut routes = BTreeMap::new();
    let mut route_options = BTreeMap::new();
    for (name, route) in raw {
        let key = format!("routes.{name}");
        if route.steps.is_empty() {
            return Err(ConfigError(format!("{key} has no steps")));
        }
        let mut steps = Vec::new();
        for s in &route.steps {
            steps.push(parse_step(s, providers).map_err(|m| ConfigError(format!("{key}: {m}")))?);
        }
        routes.insert(name.clone(), steps);
        if route.options != RouteOptions::default() {
            route_options.insert(name.clone(), route.options);
        }
    }
    Ok(Routes {
        steps: routes,
        options: route_options,
    })
}

/// Parses `"provider:model"`, split at the first ':' (model names may contain ':').
pub(super) fn parse_step(
    s: &str,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<StepSettings, String> {
    let s = s.trim();
    let (provider, model) = match s.split_once(':') {
        Some((p, m)) => (p.trim(), m.trim().to_string()),
        None => (s, String::new()),
    };
    let p = providers.get(provider).ok_or_else(|| {
        format!(
            "step {s:?} names the provider {provider:?}, which is not configured (known: {})",
            providers.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let model = if model.is_empty() {
        p.default_model
            .clone()
            .or_else(|| (p.kind == ProviderKind::Rules).then(|| "rules".to_string()))
            .ok_or_else(|| {
                format!("step {s:?} names no model and {provider} has no default_model")
            })?
    } else {
        model
    };
    Ok(StepSettings {
        provider: provider.to_string(),
        model,
    })
}

/// Sets the default route `name`. `API_TYPE` / `MODEL_VERSION` choose it, as they do for
/// lmms-eval; without them, and with no route or panel (`is_panel`) of that name configured, it
/// is the first provider with credentials, else the rules judge. Returns true when it was chosen
/// automatically and is the rules judge.
pub(super) fn set_default(
    routes: &mut BTreeMap<String, Vec<StepSettings>>,
    name: &str,
    is_panel: bool,
    providers: &BTreeMap<String, ProviderSettings>,
    env: &BTreeMap<String, String>,
) -> Result<bool, ConfigError> {
    let mut rules_only = false;
    if let Some(api_type) = env.get("API_TYPE").map(|s| s.trim().to_ascii_lowercase()) {
        let step = api_type_step(api_type, providers, env)?;
        routes.insert(name.to_string(), vec![step]);
    } else if !routes.contains_key(name) && !is_panel {
        let step = first_with_credentials(providers, env).unwrap_or_else(|| {
            rules_only = true;
            rules_step()
        });
        routes.insert(name.to_string(), vec![step]);
    }
    Ok(rules_only)
}

/// The step `API_TYPE` names: that provider, with `MODEL_VERSION` or its default model.
fn api_type_step(
    api_type: String,
    providers: &BTreeMap<String, ProviderSettings>,
    env: &BTreeMap<String, String>,
) -> Result<StepSettings, ConfigError> {
    let p = providers.get(&api_type).ok_or_else(|| {
        ConfigError(format!(
            "API_TYPE = {api_type:?} names no provider (known: {})",
            providers.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let model = env
        .get("MODEL_VERSION")
        .map(|m| m.trim().to_string())
        .or_else(|| p.default_model.clone())
        .unwrap_or_else(|| "rules".into());
    Ok(StepSettings {
        provider: api_type,
        model,
    })
}

/// No default route configured: the first provider with credentials, if any.
fn first_with_credentials(
    providers: &BTreeMap<String, ProviderSettings>,
    env: &BTreeMap<String, String>,
) -> Option<StepSettings> {
    let order = [
        "openai",
        "azure",
        "anthropic",
        "gemini",
        "cohere",
        "together",
    ];
    order.iter().find_map(|n| {
        let p = providers.get(*n)?;
        let model = if *n == "openai" {
            env.get("MODEL_VERSION")
                .cloned()
                .or(p.default_model.clone())
        } else {
            p.default_model.clone()
        };
        (p.api_key.is_some() && !(p.kind == ProviderKind::Azure && p.base_url.is_empty())).then(
            || StepSettings {
                provider: n.to_string(),
                model: model.unwrap_or_default(),
            },
        )
    })
}

/// The route named `rules` exists, whatever else is configured.
pub(super) fn add_rules(routes: &mut BTreeMap<String, Vec<StepSettings>>) {
    routes
        .entry("rules".into())
        .or_insert_with(|| vec![rules_step()]);
}

/// The one step of the rules judge.
fn rules_step() -> StepSettings {
    StepSettings {
        provider: "rules".into(),
        model: "rules".into(),
    }
}
