//! Tenants: whose jobs, results, events, idempotency keys and calibration runs a request sees.
//!
//! With client tokens configured, each token is a tenant: what it makes belongs to it (by the
//! token's name, a digest that is the same on every replica and leads back to no token), and it
//! sees only that; anything else answers 404 as if it did not exist. An admin token sees every
//! tenant's. With no tokens at all there is one tenant, everyone.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use llm_judge_work::budget::daily::ClientId;

/// Who a request speaks for, set by the authentication layer.
#[derive(Debug, Clone, Default)]
pub enum Tenant {
    /// No tokens are configured: there is one tenant.
    #[default]
    Everyone,
    /// An admin token (its name): sees every tenant's jobs and runs.
    Admin(Arc<str>),
    /// A client token (its name): sees its own.
    Client(Arc<str>),
}

impl Tenant {
    /// The owner recorded on what this request makes (`None` with no tokens configured).
    pub fn owner(&self) -> Option<String> {
        match self {
            Tenant::Everyone => None,
            Tenant::Admin(name) | Tenant::Client(name) => Some(name.to_string()),
        }
    }

    /// Whose things this request sees: `None` for everyone's (no tokens, or an admin token).
    pub fn sees(&self) -> Option<&str> {
        match self {
            Tenant::Client(name) => Some(name),
            Tenant::Everyone | Tenant::Admin(_) => None,
        }
    }

    /// The tenant the authentication layer set on a request (everyone when it set none: the
    /// layer sets one on every request it lets through once tokens are configured).
    pub fn of(extensions: &axum::http::Extensions) -> Tenant {
        extensions.get::<Tenant>().cloned().unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Tenant, Self::Rejection> {
        Ok(Tenant::of(&parts.extensions))
    }
}

/// Who sent a request: its tenant, and its client token's place when it was one (whose daily
/// budget the work spends).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub tenant: Tenant,
    pub client: Option<ClientId>,
}

impl Caller {
    /// The caller the authentication layer set on a request.
    pub fn of(extensions: &axum::http::Extensions) -> Caller {
        Caller {
            tenant: Tenant::of(extensions),
            client: extensions.get::<ClientId>().copied(),
        }
    }
}
