//! How a route's calls travel: online, through the pool's stacks, or handed to another
//! deliverer (a job's items that go as provider batches). The choice is a value, [`Via`], that
//! callers pass down with each call: nothing reroutes a call behind their back.

use std::sync::Arc;

use futures::future::BoxFuture;
use llm_judge_chat::ChatRequest;

use crate::outcome::{Delivered, RouteFailed};
use crate::pool::Pool;

/// Another way to deliver a route's calls than [`Pool::complete`]: a job's calls that go as
/// provider batches.
pub trait Deliver: Send + Sync {
    fn deliver<'a>(
        &'a self,
        pool: &'a Pool,
        route: &'a str,
        req: ChatRequest,
    ) -> BoxFuture<'a, Result<Delivered, RouteFailed>>;
}

/// How one item's calls travel, passed with each call ([`Pool::send`]).
#[derive(Clone, Default)]
pub enum Via {
    /// Through the pool's stacks, at once.
    #[default]
    Online,
    /// Handed to a deliverer, which may queue them (a provider batch) or send them online.
    Deliverer(Arc<dyn Deliver>),
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Online => "Via::Online",
            Via::Deliverer(_) => "Via::Deliverer",
        })
    }
}

impl Pool {
    /// Sends `req` along the route the way `via` says: online, as [`Pool::complete`] does, or
    /// handed to the deliverer `via` names (a job's provider batches).
    pub async fn send(
        &self,
        route: &str,
        req: ChatRequest,
        via: &Via,
    ) -> Result<Delivered, RouteFailed> {
        match via {
            Via::Online => self.complete(route, req).await,
            Via::Deliverer(d) => d.deliver(self, route, req).await,
        }
    }
}
