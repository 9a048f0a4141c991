//! The provider pool: routes (ordered fallback chains of provider steps) over a shared set of
//! providers, each behind its own tower stack of retries, circuit breaker, attempt timeout, rate
//! and concurrency limits (see [`stack`]), built once at start-up.
//!
//! Fallback sits above the stacks: a step that is skipped (no key), refused (open circuit, no
//! permit in time), exhausts its retries or deadline, or fails in a way another provider could
//! avoid moves the route to its next step, with that step's own model. A request the provider
//! rejects as malformed ends the route: every provider would refuse it.

//!
//! What travels a stack and what its layers share lives apart from the stack's assembly
//! ([`stack`]): the call and its trail ([`call`]), the kind of answer ([`reply`]), how a call
//! failed ([`failure`]) and a provider's metric handles ([`slot_metrics`]). The pool itself is
//! in rooms of its own: its providers' slots, its routes, the fallback loop, streaming,
//! pricing, provider batches and provider status.

pub mod attempt;
pub mod breaker;
pub mod call;
pub mod concurrency;
pub mod cost;
pub mod delivery;
pub mod failure;
pub mod rate_limit;
pub mod reply;
pub mod retry;
pub mod settings;
pub mod slot_metrics;
pub mod stack;
pub mod timeout;

mod batches;
mod fallback;
mod outcome;
mod pool;
mod price;
mod pricing;
mod slot;
mod status;
mod streaming;

pub use delivery::{Deliver, Via};
pub use outcome::{Attempt, Delivered, RouteFailed};
pub use pool::{Pool, Sends, Step, local_limiter};
pub use slot::ProviderSlot;
pub use status::ProviderStatus;
pub use streaming::{Pricing, StreamDelivered};
