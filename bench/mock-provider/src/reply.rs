//! What the server does with a request, whatever the protocol: an answer, or one of the faults
//! that give none.

use bytes::Bytes;

/// What the server does with a request, whatever the protocol.
pub enum Reply {
    /// Answer with this status and body; `retry_after` adds that header.
    Answer {
        status: u16,
        body: Bytes,
        content_type: &'static str,
        retry_after: bool,
    },
    /// The `timeout` fault: the connection was held for --hang-s; close it unanswered.
    Hang,
    /// The `reset` fault: close the connection with RST, unanswered.
    Reset,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::Answer {
            status: 200,
            body: body.into(),
            content_type: "application/json",
            retry_after: false,
        }
    }
}
