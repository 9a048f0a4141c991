//! Provider-neutral chat types: the request every judge call becomes, the completion every
//! provider answer is read into, token usage, and the typed reasons a call fails.
//!
//! These types belong to no wire format. `judge/` builds a [`ChatRequest`], `pool/` delivers it
//! along a route, and each adapter in `providers/` turns it into its own HTTP request and reads its
//! own answer back into a [`Completion`] or a [`ProviderError`].

mod completion;
mod error;
mod grading;
mod message;
mod request;
mod secret;
mod stream;
mod system;
mod text;
mod usage;

pub use completion::{Completion, Finish, TokenLogprob};
pub use error::ProviderError;
pub use grading::{Grader, GradingTask};
pub use message::{DataUrl, ImageRef, Message, Part, Role};
pub use request::{ChatRequest, DEFAULT_MAX_TOKENS, ResponseFormat};
pub use secret::Secret;
pub use stream::{ChatStream, Chunk, StreamEnd, StreamOutcome};
pub use system::SystemPrompt;
pub use text::{clip, scrub};
pub use usage::Usage;
