//! The work on many items: batches ([`batch`]: many items in one request, results in order, a
//! summary), spend budgets ([`budget`]: a request's own and each client token's day), persistent
//! jobs ([`jobs`]) and calibration against labelled items ([`calibrate`]).
//!
//! Built on the judge (`llm-judge-judge`); knows nothing of HTTP or Redis: a fleet's shared
//! implementations of the traits owned here (the job store, the spend ledger) live above it.

pub mod batch;
pub mod budget;
pub mod calibrate;
pub mod jobs;
