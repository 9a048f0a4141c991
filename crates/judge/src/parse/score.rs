//! Reading a numeric score on the item's scale: from a JSON object, a score line, or the last
//! standalone number.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::reply::{REFUSAL, json_object, prepare, quote, re, refused, unsure_or};
use super::unscored::UnscoredReason::{OutOfRange, Unparseable};
use super::unscored::{Unscored, fail};

static SCORE_MARKER: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:score|rating|grade)\b[ \t]*[:=]"));
static SCORE_VALUE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:score|rating|grade)\b[ \t]*[:=][ \t]*\[*[ \t]*(-?\d+(?:\.\d+)?)"));
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(-?\d+(?:\.\d+)?)(?:[ \t]*(?:/|out of)[ \t]*\d+(?:\.\d+)?)?"));

/// Parses a numeric score that must lie in `[min, max]`.
pub fn parse_score(text: &str, min: f64, max: f64) -> Result<f64, Unscored> {
    let clean = prepare(text)?;
    let in_range = |v: f64| {
        if v >= min && v <= max {
            Ok(v)
        } else {
            fail(OutOfRange, format!("score {v} is outside [{min}, {max}]"))
        }
    };
    if let Some(obj) = json_object(text) {
        for key in ["score", "rating", "grade", "value"] {
            match obj.get(key) {
                Some(Value::Number(n)) => return in_range(n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::String(s)) => return parse_score(s, min, max),
                _ => {}
            }
        }
        return Err(unsure_or(&obj, "the JSON reply has no score field"));
    }
    if let Some(c) = SCORE_VALUE.captures_iter(&clean).last() {
        return in_range(c[1].parse().unwrap_or(f64::NAN));
    }
    if SCORE_MARKER.is_match(&clean) {
        return fail(
            Unparseable,
            format!("the score line has no number: {}", quote(text)),
        );
    }
    if REFUSAL.is_match(&clean) {
        return Err(refused(text));
    }
    let last = NUMBER
        .captures_iter(&clean)
        .filter(|c| standalone(&clean, c.get(0).unwrap().range()))
        .last();
    let Some(c) = last else {
        return fail(Unparseable, format!("no score found in {}", quote(text)));
    };
    let v: f64 = c[1].parse().unwrap_or(f64::NAN);
    match in_range(v) {
        Err(_) if &c[0] != clean.trim() => {
            let range = format!("[{min}, {max}]");
            fail(
                Unparseable,
                format!("no score line; the last number, {v}, is outside {range}"),
            )
        }
        r => r,
    }
}

/// True when the match at `start..end` is not glued to a word (`gpt4`, `1st`) or another number.
fn standalone(s: &str, std::ops::Range { start, end }: std::ops::Range<usize>) -> bool {
    let before = s[..start].chars().next_back();
    let after = s[end..].chars().next();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-');
    let decimal_after =
        s[end..].starts_with('.') && s[end + 1..].starts_with(|c: char| c.is_ascii_digit());
    !glued(before) && !glued(after) && !decimal_after
}
