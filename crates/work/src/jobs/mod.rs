//! Persistent jobs: a batch accepted at once (202), run in the background, each result committed
//! as it completes, resumed after a restart or a crash, readable while and after it runs, and
//! expired after a retention period.
//!
//! A job's status only moves through compare-and-set writes on its stored record, so a cancel
//! wins every race with the job's runner: a job cancelled before its runner starts (right after
//! a restart, or right after it was submitted) never calls a provider. A failed write (a full
//! disk) does not lose a job: its runner keeps the results not yet committed and retries until
//! the store works again.
//!
//! Its parts: what is stored about a job ([`record`]) and the store's contract ([`store`]); the
//! embedded store ([`embedded`]); the job manager ([`Jobs`]) with what the handlers ask of it,
//! its start, uploads and views; the runner of each job; and provider batches
//! ([`provider_batch`]).

mod conflict;
pub mod embedded;
mod facade;
mod lifecycle;
mod manager;
mod options;
pub mod provider_batch;
pub mod record;
mod retry;
mod runner;
pub mod store;
mod upload;
mod view;

pub use conflict::KeyConflict;
pub use embedded::{Embedded, Store};
pub use facade::is_job_id;
pub use manager::Jobs;
pub use options::{DEFAULT_PROVIDER_BATCH_DEADLINE_S, JobOptions, JobSettings};
pub use record::{Counts, JobRecord, JobStatus};
pub use retry::Retried;
pub use store::{Change, Created, Done, INVALID_LINE, JobStore, StoreError, Take, WorkItem};
pub use upload::{Begin, Upload};
pub use view::JobView;
