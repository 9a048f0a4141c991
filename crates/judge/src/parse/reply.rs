//! What every parser reads first: an empty reply, a JSON object (plain, fenced or embedded),
//! a refusal, an "unsure" answer; and how a reply is quoted in a detail sentence.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::unscored::UnscoredReason::{Ambiguous, EmptyResponse, Refusal, Unparseable};
use super::unscored::{Unscored, fail};

static FENCED_JSON: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)```[A-Za-z]*\s*(\{.*?\})\s*```"));
pub(super) static REFUSAL: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\b(?:i|we)(?:'m|'re| am| are)?\s+",
        r"(?:can't|cannot|can not|won't|will not|unable to|not able to)\s+",
        r"(?:help (?:you|with)|assist|comply|fulfil|fulfill|provide|engage|evaluate|grade|judge",
        r"|do that|continue)",
    ))
});

/// A pattern of these parsers, known to be valid.
pub(super) fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

/// A refusal, with the reply quoted.
pub(super) fn refused(text: &str) -> Unscored {
    Unscored::new(Refusal, format!("the judge refused: {}", quote(text)))
}

/// Rejects empty replies and returns the text lowercased with markdown emphasis blanked out.
pub(super) fn prepare(text: &str) -> Result<String, Unscored> {
    if text.trim().is_empty() {
        return fail(EmptyResponse, "the judge replied with nothing");
    }
    let lower = text.to_lowercase().replace(['\u{2018}', '\u{2019}'], "'");
    Ok(lower.replace(['*', '_', '`', '#', '>'], " "))
}

/// Whether the reply holds a JSON object that the parsers read before anything else (the
/// structured path), as opposed to free text.
pub fn has_json_object(text: &str) -> bool {
    json_object(text).is_some()
}

/// A JSON object found as the whole reply, in a code fence, or between the first `{` and last `}`.
pub(super) fn json_object(text: &str) -> Option<Map<String, Value>> {
    // Most replies are prose: no brace, no object, and no need to run the fence pattern.
    if !text.contains('{') {
        return None;
    }
    let fenced = FENCED_JSON
        .captures(text)
        .map(|c| c.get(1).unwrap().as_str());
    let embedded = text
        .find('{')
        .zip(text.rfind('}'))
        .and_then(|(a, b)| text.get(a..=b));
    [fenced, Some(text.trim()), embedded]
        .into_iter()
        .flatten()
        .find_map(|s| match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
}

/// Whether a JSON answer's word says the judge was unsure (`unsure`, `unknown`, ...).
pub(super) fn is_unsure(s: &str) -> bool {
    matches!(
        s.trim().to_lowercase().as_str(),
        "unsure" | "uncertain" | "unknown" | "undecided" | "ambiguous" | "cannot determine"
    )
}

/// `Ambiguous` with the JSON's reason when it says "unsure", else `Unparseable` with `fallback`.
pub(super) fn unsure_or(obj: &Map<String, Value>, fallback: &str) -> Unscored {
    let unsure = obj.values().any(|v| v.as_str().is_some_and(is_unsure));
    match (unsure, obj.get("reason").and_then(Value::as_str)) {
        (true, Some(r)) if !r.trim().is_empty() => Unscored::new(Ambiguous, r.trim()),
        (true, _) => Unscored::new(Ambiguous, "the judge was unsure"),
        (false, _) => Unscored::new(Unparseable, fallback),
    }
}

/// The reply, whitespace collapsed and clipped, in quotes for a detail sentence.
pub(super) fn quote(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(80) {
        Some((i, _)) => format!("\"{}…\"", &flat[..i]),
        None => format!("\"{flat}\""),
    }
}
