//! A provider's whole answer: its text, usage, finish reason, refusal and token log probabilities.

use crate::usage::Usage;

/// A provider's answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    /// The answer text (empty when the model answered nothing).
    pub text: String,
    pub usage: Usage,
    /// The provider's finish reason as it sent it (`stop`, `length`, `end_turn`, `content_filter` ...).
    pub finish_reason: Option<String>,
    /// A refusal the provider reported in a field of its own (OpenAI `message.refusal`).
    pub refusal: Option<String>,
    /// The answer's tokens with their log probabilities, when asked for and returned.
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// One answer token's log probability and the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    /// The alternatives, most likely first (the chosen token usually among them).
    pub top: Vec<(String, f64)>,
}

/// How an answer ended, in the terms every caller needs (the providers' own words vary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model finished (or met a stop sequence).
    Stop,
    /// The token budget ran out.
    Length,
    /// A provider-side filter withheld or cut the answer.
    ContentFilter,
}

impl Finish {
    /// Reads a provider's finish reason (`stop`, `end_turn`, `COMPLETE`, `max_tokens`,
    /// `SAFETY` ...); no reason, or one of no known kind, is a normal stop.
    pub fn of(reason: Option<&str>) -> Finish {
        match reason {
            Some("length" | "max_tokens" | "MAX_TOKENS" | "model_length") => Finish::Length,
            Some(
                "content_filter" | "refusal" | "SAFETY" | "RECITATION" | "BLOCKLIST"
                | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
            ) => Finish::ContentFilter,
            _ => Finish::Stop,
        }
    }
}
