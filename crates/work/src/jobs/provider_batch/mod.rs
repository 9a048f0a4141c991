//! Provider batches for jobs: a job with `provider_batch` sends the items whose route's first
//! step has a batch API (OpenAI, Azure OpenAI, Anthropic) as provider batches, at the batch
//! price, and the others online as usual.
//!
//! Each such item is judged exactly as online ([`crate::batch::judge_one`]: the same prompt,
//! verdict cache, parser and result JSON); only its call is delivered differently: the item's
//! delivery (`ItemDelivery`) queues the request, the job's [`Batches`] submits what its items
//! queued once every item taken has queued its request (or finished without one: a verdict-cache
//! hit, the rules pre-check), polls each batch with backoff, and hands every item its outcome,
//! matched by `custom_id`. An item its batch did not answer (errored, expired, cancelled, missing,
//! or still running when the job's deadline passes: the batch is cancelled at the provider then) is
//! sent along its route online, retries and fallback included, so the job always completes.
//!
//! Every batch is stored in the job's record as soon as it is created: a restarted service
//! polls the same batches again (and reads their results) instead of making new ones.

mod batches;
mod delivery;
mod lease;
mod poll;
mod submit;

pub use super::record::{BatchRecord, Lease, SubmitMark};
pub use batches::Batches;
pub use lease::lease;
