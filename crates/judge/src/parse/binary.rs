//! Reading a correct/incorrect verdict: from a JSON object, a verdict line, or free text.

use serde_json::{Map, Value};

use super::markers::{binary_markers, first_clause};
use super::reply::{REFUSAL, is_unsure, json_object, prepare, quote, refused, unsure_or};
use super::unscored::UnscoredReason::Unparseable;
use super::unscored::{Unscored, fail};
use super::words::last_verdict;

/// Parses a correct/incorrect verdict; `true` means the graded answer is correct.
pub fn parse_binary(text: &str) -> Result<bool, Unscored> {
    let clean = prepare(text)?;
    if let Some(obj) = json_object(text) {
        return binary_from_json(&obj);
    }
    let markers = binary_markers(&clean);
    for tier_answer in [false, true] {
        for m in markers
            .iter()
            .rev()
            .filter(|m| (m.key == "answer") == tier_answer)
        {
            if let Some(v) = last_verdict(first_clause(m.rest), true) {
                return Ok(v);
            }
        }
    }
    if REFUSAL.is_match(&clean) {
        return Err(refused(text));
    }
    last_verdict(&clean, false).ok_or_else(|| no_binary(text))
}

const BINARY_KEYS: [&str; 6] = [
    "verdict",
    "correct",
    "is_correct",
    "result",
    "score",
    "grade",
];

fn binary_from_json(obj: &Map<String, Value>) -> Result<bool, Unscored> {
    for key in BINARY_KEYS {
        match obj.get(key) {
            Some(Value::Bool(b)) => return Ok(*b),
            Some(Value::Number(n)) => {
                return match n.as_f64() {
                    Some(1.0) => Ok(true),
                    Some(0.0) => Ok(false),
                    _ => fail(
                        Unparseable,
                        format!("the reply's {key} {n} is not a 0/1 verdict"),
                    ),
                };
            }
            Some(Value::String(s)) if !is_unsure(s) => {
                return last_verdict(&s.to_lowercase(), true).ok_or_else(|| no_binary(s));
            }
            _ => {}
        }
    }
    Err(unsure_or(obj, "the JSON reply has no verdict field"))
}

fn no_binary(text: &str) -> Unscored {
    let t = text.trim();
    let detail = if t.parse::<f64>().is_ok() {
        format!("the reply \"{t}\" is not a 0/1 verdict")
    } else {
        format!("no yes/no or 0/1 verdict in {}", quote(text))
    };
    Unscored::new(Unparseable, detail)
}
