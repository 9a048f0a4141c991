//! The rules judge's verdict: correct, incorrect or unsure, each with a human reason.

/// The outcome of a deterministic grading, each with a human reason.
#[derive(Debug, Clone, PartialEq)]
pub enum RulesVerdict {
    Correct(String),
    Incorrect(String),
    Unsure(String),
}
