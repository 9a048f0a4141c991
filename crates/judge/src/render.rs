//! An item's prompt: the item's own template when it brings one, else the built-in grader of
//! its kind, in the shape the route asks for.

use crate::items::{BinaryItem, CompareItem, ScoreItem};
use crate::prompts::{self, Rendered, Shape};

/// A binary item's prompt: its own template, or the built-in grader.
pub(crate) fn render_binary(item: &BinaryItem, shape: Shape) -> Rendered {
    match &item.prompt {
        Some(t) => prompts::render_custom(
            t,
            &[
                ("question", &item.question),
                ("answer", &item.answer),
                ("prediction", &item.prediction),
            ],
        ),
        None => prompts::binary(
            &item.question,
            &item.answer,
            &item.prediction,
            item.output_format.into(),
            shape,
        ),
    }
}

/// A score item's prompt: its own template, or the built-in grader.
pub(crate) fn render_score(item: &ScoreItem, shape: Shape) -> Rendered {
    match &item.prompt {
        Some(t) => prompts::render_custom(
            t,
            &[
                ("question", &item.question),
                ("answer", item.answer.as_deref().unwrap_or("")),
                ("prediction", &item.prediction),
                ("rubric", item.rubric.as_deref().unwrap_or("")),
            ],
        ),
        None => prompts::score(
            &item.question,
            item.answer.as_deref(),
            &item.prediction,
            item.rubric.as_deref(),
            item.min,
            item.max,
            shape,
        ),
    }
}

/// A pairwise item's prompt with `a` and `b` in that order.
pub(crate) fn render_compare(item: &CompareItem, a: &str, b: &str, shape: Shape) -> Rendered {
    match &item.prompt {
        Some(t) => prompts::render_custom(
            t,
            &[
                ("question", &item.question),
                ("answer", item.answer.as_deref().unwrap_or("")),
                ("response_a", a),
                ("response_b", b),
            ],
        ),
        None => prompts::compare(&item.question, item.answer.as_deref(), a, b, shape),
    }
}
