//! What a stack can answer, a whole completion or a stream, and how the layers act when the
//! provider is done with it.

use llm_judge_chat::{ChatStream, Completion, Usage};

/// What a stack can answer: a whole completion, or a stream whose end comes later. The layers
/// that must act when the provider is done with a call (settle the token reservation, give the
/// concurrency slot back) do so through this.
pub trait Reply: Send + 'static {
    /// Runs `f` with the usage the provider reported once the answer is whole: at once for a
    /// completion, when the stream ends for a stream (`None` when it broke off or sent none).
    fn when_done(self, f: impl FnOnce(Option<Usage>) + Send + 'static) -> Self;
    /// Keeps `guard` until the answer is whole.
    fn hold(self, guard: impl Send + 'static) -> Self;
}

impl Reply for Completion {
    fn when_done(self, f: impl FnOnce(Option<Usage>) + Send + 'static) -> Self {
        f(Some(self.usage));
        self
    }

    fn hold(self, guard: impl Send + 'static) -> Self {
        drop(guard);
        self
    }
}

impl Reply for ChatStream {
    fn when_done(self, f: impl FnOnce(Option<Usage>) + Send + 'static) -> Self {
        self.on_end(move |end| {
            f(end
                .usage
                .filter(|_| end.outcome == llm_judge_chat::StreamOutcome::Complete))
        })
    }

    fn hold(self, guard: impl Send + 'static) -> Self {
        ChatStream::hold(self, guard)
    }
}
