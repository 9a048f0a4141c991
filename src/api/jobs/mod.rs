//! Job endpoints: submit a batch as a persistent job ([`submit`], with NDJSON uploads in
//! [`upload`]), follow its progress, read its results (resumable), stream its events, cancel it,
//! list jobs ([`follow`]), send a finished job's errored items again ([`retry`]).

pub mod accept;
pub mod follow;
mod lines;
pub mod retry;
pub mod submit;
pub mod upload;
