//! Job endpoints: submit a batch as a persistent job ([`submit`], with NDJSON uploads in
//! [`upload`]), follow its progress, read its results (resumable), stream its events, cancel it,
//! list jobs ([`follow`]).

pub mod accept;
pub mod follow;
mod lines;
pub mod submit;
pub mod upload;
