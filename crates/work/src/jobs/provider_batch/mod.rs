//! Provider batches for jobs: a job with `provider_batch` sends the items whose route's first
//! step has a batch API (OpenAI, Azure OpenAI, Anthropic) as provider batches, at the batch
//! price, and the others online as usual.
//!
//! Each such item is judged exactly as online ([`crate::batch::judge_one`]: the same prompt,
//! verdict cache, parser and result JSON); only its call is delivered differently. Judged a
//! first time, the item's request is queued and its judging stops there (a parked entry): while
//! its batch runs, the item is a record of the runner (its index and ticket), not a call in
//! flight. The job's [`Batches`] submits what its items queued once every item taken has queued
//! its request (or finished without one: a verdict-cache hit, the rules pre-check), polls each
//! batch with backoff, and gives back every item's outcome, matched by `custom_id`; the runner
//! reads those items from the job store again and judges them a second time, their call answered
//! by the batch ([`Batches::answer`]). An item its batch did not answer (errored, expired,
//! cancelled, missing, or still running when the job's deadline passes: the batch is cancelled at
//! the provider then) is sent along its route online, retries and fallback included, so the job
//! always completes.
//!
//! Every batch is stored in the job's record as soon as it is created: a restarted service
//! polls the same batches again (and reads their results) instead of making new ones.

mod batches;
mod delivery;
mod lease;
mod poll;
mod submit;

pub use super::record::{BatchRecord, Lease, SubmitMark};
pub use batches::{Batches, Mail};
pub use lease::lease;
