//! Reading a pairwise preference: `[[A]]`, `[[B]]` or a tie, or a JSON winner.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::reply::{REFUSAL, json_object, prepare, quote, re, refused, unsure_or};
use super::unscored::UnscoredReason::{Ambiguous, Unparseable};
use super::unscored::{Unscored, fail};

/// The preferred response of a pairwise comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    A,
    B,
    Tie,
}

static PAIR_BRACKET: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\[\[\s*(a|b|c|tie|draw)\s*\]\]"));

/// Parses a pairwise preference: `[[A]]`, `[[B]]`, or a tie (`[[C]]`, `[[TIE]]`).
pub fn parse_pairwise(text: &str) -> Result<Winner, Unscored> {
    let clean = prepare(text)?;
    if let Some(obj) = json_object(text) {
        for key in ["winner", "verdict", "better", "preferred"] {
            if let Some(Value::String(s)) = obj.get(key)
                && let Some(w) = winner_word(s)
            {
                return Ok(w);
            }
        }
        return Err(unsure_or(&obj, "the JSON reply has no winner field"));
    }
    let mut found: Vec<Winner> = Vec::new();
    for c in PAIR_BRACKET.captures_iter(text) {
        let w = winner_word(&c[1]).unwrap_or(Winner::Tie);
        if !found.contains(&w) {
            found.push(w);
        }
    }
    match found.as_slice() {
        [w] => return Ok(*w),
        [_, _, ..] => {
            let names: Vec<&str> = found.iter().map(|w| bracket_name(*w)).collect();
            return fail(
                Ambiguous,
                format!("conflicting verdicts {}", names.join(" and ")),
            );
        }
        [] => {}
    }
    if REFUSAL.is_match(&clean) {
        return Err(refused(text));
    }
    fail(
        Unparseable,
        format!("no [[A]], [[B]] or [[C]] verdict in {}", quote(text)),
    )
}

fn winner_word(s: &str) -> Option<Winner> {
    let s = s.trim().to_lowercase();
    let s = s.trim_matches(|c: char| !c.is_alphanumeric());
    let s = ["response ", "assistant ", "answer ", "model "]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    match s.trim_matches(|c: char| !c.is_alphanumeric()) {
        "a" => Some(Winner::A),
        "b" => Some(Winner::B),
        "c" | "tie" | "draw" | "equal" | "both" | "a tie" => Some(Winner::Tie),
        _ => None,
    }
}

fn bracket_name(w: Winner) -> &'static str {
    match w {
        Winner::A => "[[A]]",
        Winner::B => "[[B]]",
        Winner::Tie => "[[C]]",
    }
}
