//! The `[panels]` section: panels of judges, usable wherever a route name is, checked against the
//! routes and providers.

use std::collections::BTreeMap;

use serde::Deserialize;

use llm_judge_judge::settings::{Aggregate, MAX_PANEL_JUDGES, OnTie, PanelSettings};
use llm_judge_pool::settings::StepSettings;
use llm_judge_providers::settings::ProviderSettings;

use super::check::{ConfigError, range};
use super::lists::RouteSpec;
use super::routes::parse_step;

/// A panel as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPanel {
    judges: RouteSpec,
    #[serde(default)]
    aggregate: Aggregate,
    quorum: Option<usize>,
    #[serde(default)]
    on_tie: OnTie,
    #[serde(default)]
    escalate: bool,
}

/// Checks every panel: its judges are routes (configured or ad hoc), not panels, each named
/// once; its quorum fits; escalation has a third judge to ask.
pub(super) fn validate(
    raw: &BTreeMap<String, RawPanel>,
    routes: &BTreeMap<String, Vec<StepSettings>>,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<BTreeMap<String, PanelSettings>, ConfigError> {
    let mut panels = BTreeMap::new();
    for (name, p) in raw {
        let key = format!("panels.{name}");
        let err = |m: String| ConfigError(format!("{key}: {m}"));
        if name.is_empty() || name.contains([':', ',']) {
            return Err(err("a panel name may not contain ':' or ','".into()));
        }
        if routes.contains_key(name) {
            return Err(err(format!(
                "a route is also named {name:?}; give the panel or the route another name"
            )));
        }
        let judges: Vec<String> = p.judges.0.iter().map(|j| j.trim().to_string()).collect();
        if judges.len() < 2 || judges.len() > MAX_PANEL_JUDGES {
            return Err(err(format!(
                "judges lists {} judges; a panel has from 2 to {MAX_PANEL_JUDGES}",
                judges.len()
            )));
        }
        for (i, j) in judges.iter().enumerate() {
            let at = format!("judges[{i}] = {j:?}");
            if judges[..i].contains(j) {
                return Err(err(format!("{at} is listed twice")));
            }
            if raw.contains_key(j) {
                return Err(err(format!(
                    "{at} is a panel; a panel's judges are routes (list its judges instead)"
                )));
            }
            if !routes.contains_key(j) {
                for step in j.split(',') {
                    parse_step(step, providers).map_err(|m| {
                        err(format!(
                            "{at} is neither a route in [routes] nor an ad-hoc route: {m}"
                        ))
                    })?;
                }
            }
        }
        let quorum = p.quorum.unwrap_or(judges.len() / 2 + 1);
        range(&format!("{key}.quorum"), quorum, 1, judges.len())?;
        if p.escalate {
            if p.aggregate != Aggregate::Majority {
                return Err(err(
                    "escalate asks a third judge to break a disagreement, so it needs \
                     aggregate = \"majority\""
                        .into(),
                ));
            }
            if judges.len() < 3 {
                return Err(err("escalate needs at least 3 judges".into()));
            }
            if quorum > 2 {
                return Err(err(format!(
                    "escalate stops after two judges that agree, so quorum = {quorum} could \
                     never be met that way; use quorum = 2 or turn escalate off"
                )));
            }
        }
        panels.insert(
            name.clone(),
            PanelSettings {
                judges,
                aggregate: p.aggregate,
                quorum,
                on_tie: p.on_tie,
                escalate: p.escalate,
            },
        );
    }
    Ok(panels)
}
