//! Values written as a list, or (for environment variables) as one comma-separated string:
//! route steps, panel judges, allowed origins, client tokens.

use serde::{Deserialize, Deserializer};

use llm_judge_chat::Secret;

/// A route as written: a list of `"provider:model"` (or a comma-separated string, for env vars).
#[derive(Debug, Clone)]
pub(super) struct RouteSpec(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for RouteSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(RouteSpec(match Either::deserialize(d)? {
            Either::One(s) => split_list(&s),
            Either::Many(v) => v,
        }))
    }
}

pub(super) fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(|p| p.trim().to_string()).collect()
}

pub(super) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(RouteSpec::deserialize(d)?
        .0
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect())
}

pub(super) fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    Ok(RouteSpec::deserialize(d)?
        .0
        .into_iter()
        .map(|t| Secret::new(t.trim()))
        .collect())
}
