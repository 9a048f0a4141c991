//! The `[auth]` section: the client bearer tokens (each a tenant: it sees only its own jobs and
//! calibration runs), the admin tokens (which see everything), and what each client token may
//! spend per day, with their checks. Left out, there are no tokens (no authentication) and no
//! budgets.

use serde::Deserialize;

use llm_judge_chat::Secret;

use super::check::{ConfigError, opt_range};
use super::lists::secret_list;

/// Client bearer tokens. Empty (and no admin tokens): no authentication.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// A list, or (for environment variables) a comma-separated string. Each token is a tenant:
    /// its jobs, their results and events, its idempotency keys and its calibration runs are
    /// its own; another token gets 404 for them.
    #[serde(default, deserialize_with = "secret_list")]
    pub tokens: Vec<Secret>,
    /// Tokens for operators (and the console): they see and may cancel every tenant's jobs and
    /// runs. A list, or a comma-separated string. No daily budget applies to them.
    #[serde(default, deserialize_with = "secret_list")]
    pub admin_tokens: Vec<Secret>,
    /// What each client token may spend per UTC day, in US dollars (shared by the fleet and
    /// kept across restarts with `[redis]`, else in memory by each replica). Needs a price for
    /// every model a request may reach.
    #[serde(default)]
    pub daily_budget_usd: Option<f64>,
    /// What each client token may spend per UTC day, in tokens.
    #[serde(default)]
    pub daily_budget_tokens: Option<u64>,
}

/// Range checks of the daily budgets, which need client tokens to apply to.
pub(super) fn check_budgets(a: &AuthSettings) -> Result<(), ConfigError> {
    opt_range("auth.daily_budget_usd", a.daily_budget_usd, 0.0, 1e9)?;
    opt_range(
        "auth.daily_budget_tokens",
        a.daily_budget_tokens,
        1,
        u64::MAX,
    )?;
    let daily = a.daily_budget_usd.is_some() || a.daily_budget_tokens.is_some();
    if daily && a.tokens.is_empty() {
        return Err(ConfigError(
            "auth.daily_budget_usd and auth.daily_budget_tokens are per client token: set \
             auth.tokens too (with no tokens there is no client to give a budget to)"
                .into(),
        ));
    }
    Ok(())
}

/// No token is empty (an empty one must not pass for "authentication off"), and none is both a
/// client's and an admin's.
pub(super) fn check_tokens(a: &AuthSettings) -> Result<(), ConfigError> {
    for (key, list) in [("tokens", &a.tokens), ("admin_tokens", &a.admin_tokens)] {
        for (i, t) in list.iter().enumerate() {
            if t.expose().is_empty() {
                return Err(ConfigError(format!(
                    "auth.{key}[{i}] is empty: remove it (no tokens at all turns authentication off)"
                )));
            }
        }
    }
    if let Some(i) = a.admin_tokens.iter().position(|t| a.tokens.contains(t)) {
        return Err(ConfigError(format!(
            "auth.admin_tokens[{i}] is also in auth.tokens: a token is either a client's (a tenant) \
             or an admin's (sees every tenant), not both"
        )));
    }
    Ok(())
}

impl AuthSettings {
    /// Whether requests must carry a token (client or admin).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.admin_tokens.is_empty()
    }
}
