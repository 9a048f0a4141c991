//! The raw fields a deterministic (non-LLM) provider grades, and the trait its grader implements.

/// What a deterministic (non-LLM) provider needs to grade without reading the prompt.
/// LLM adapters ignore it.
#[derive(Debug, Clone, PartialEq)]
pub enum GradingTask {
    Binary {
        question: String,
        reference: String,
        prediction: String,
    },
    Score {
        question: String,
        reference: Option<String>,
        prediction: String,
        min: f64,
        max: f64,
    },
    Compare {
        question: String,
        reference: Option<String>,
        response_a: String,
        response_b: String,
    },
}

/// A deterministic grader behind the `rules` provider: it answers a [`GradingTask`] with the
/// text a model would have given (the JSON the verdict parsers read).
pub trait Grader: Send + Sync + 'static {
    fn grade(&self, task: &GradingTask) -> String;
}
