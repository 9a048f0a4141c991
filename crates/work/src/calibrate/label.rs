//! The labels a careful person gives (a verdict, a score, a winner), read in every spelling
//! accepted and checked against the item's scale.

use serde_json::Value;

use llm_judge_judge::JudgeKind;

/// A label as a person gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    /// Binary: true for correct.
    Binary(bool),
    Score(f64),
    /// Pairwise: 0 for A, 1 for B, 2 for a tie.
    Pairwise(usize),
}

pub(super) const PAIRWISE: [&str; 3] = ["a", "b", "tie"];
pub(super) const BINARY: [&str; 2] = ["correct", "incorrect"];

impl Label {
    /// The label as it appears in reports.
    pub(super) fn to_value(self) -> Value {
        match self {
            Label::Binary(true) => Value::from("correct"),
            Label::Binary(false) => Value::from("incorrect"),
            Label::Score(s) => Value::from(s),
            Label::Pairwise(w) => Value::from(PAIRWISE[w]),
        }
    }

    /// The category index (binary: 0 correct, 1 incorrect; pairwise: a, b, tie).
    pub(super) fn category(self) -> Option<usize> {
        match self {
            Label::Binary(c) => Some(usize::from(!c)),
            Label::Pairwise(w) => Some(w),
            Label::Score(_) => None,
        }
    }
}

pub(super) fn label_hint(kind: JudgeKind) -> &'static str {
    match kind {
        JudgeKind::Binary => {
            "label must be \"correct\" or \"incorrect\" (also accepted: true/false, 1/0, \"yes\"/\"no\")"
        }
        JudgeKind::Score => "label must be a number between the item's min and max",
        JudgeKind::Compare => "label must be \"a\", \"b\" or \"tie\"",
    }
}

pub(super) fn read_label(kind: JudgeKind, v: &Value, min: f64, max: f64) -> Option<Label> {
    match kind {
        JudgeKind::Binary => match v {
            Value::Bool(b) => Some(Label::Binary(*b)),
            Value::Number(n) => match n.as_f64() {
                Some(1.0) => Some(Label::Binary(true)),
                Some(0.0) => Some(Label::Binary(false)),
                _ => None,
            },
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "correct" | "yes" | "true" | "1" => Some(Label::Binary(true)),
                "incorrect" | "no" | "false" | "0" => Some(Label::Binary(false)),
                _ => None,
            },
            _ => None,
        },
        JudgeKind::Score => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= min && *s <= max)
            .map(Label::Score),
        JudgeKind::Compare => match v.as_str()?.trim().to_ascii_lowercase().as_str() {
            "a" => Some(Label::Pairwise(0)),
            "b" => Some(Label::Pairwise(1)),
            "tie" | "c" => Some(Label::Pairwise(2)),
            _ => None,
        },
    }
}
