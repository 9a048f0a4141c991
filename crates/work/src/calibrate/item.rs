//! Labelled items: read and checked from a request (the kind's own fields, plus `label`, and
//! optionally `id` and `group`), the ones left out and why, and the digest of a gold set.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::label::{Label, label_hint, read_label};
use crate::batch::BatchItem;
use llm_judge_judge::{FieldError, JudgeKind};

/// A labelled item, read and checked.
#[derive(Debug, Clone)]
pub struct LabelledItem {
    /// Its position in the input.
    pub index: usize,
    /// The client's own id, echoed in per-item results.
    pub id: Option<Value>,
    /// A free label the figures are also broken down by (a topic, a source).
    pub group: Option<String>,
    pub label: Label,
    pub item: BatchItem,
}

/// An item left out of a calibration, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvalidItem {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// Reads one labelled item: the kind's fields plus `label`, and optionally `id` and `group`.
/// Errors name the field as `items[i].field`.
pub fn parse_item(kind: JudgeKind, index: usize, value: Value) -> Result<LabelledItem, FieldError> {
    let at = |f: &str| format!("items[{index}].{f}");
    let Value::Object(mut map) = value else {
        return Err(FieldError::new(
            format!("items[{index}]"),
            "an item must be a JSON object",
        ));
    };
    if map.contains_key("judge") {
        return Err(FieldError::new(
            at("judge"),
            "calibration items do not name a judge: the request's `judges` are used for every item",
        ));
    }
    let raw_label = map
        .remove("label")
        .ok_or_else(|| FieldError::new(at("label"), label_hint(kind)))?;
    let id = map.remove("id");
    let group = match map.remove("group") {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) => Some(g),
        Some(_) => return Err(FieldError::new(at("group"), "group must be a string")),
    };
    let (min, max) = (
        map.get("min").and_then(Value::as_f64).unwrap_or(1.0),
        map.get("max").and_then(Value::as_f64).unwrap_or(10.0),
    );
    let item = match BatchItem::parse(kind, index, Value::Object(map)) {
        BatchItem::Invalid(e) => return Err(e),
        item => item,
    };
    let label = read_label(kind, &raw_label, min, max)
        .ok_or_else(|| FieldError::new(at("label"), label_hint(kind)))?;
    Ok(LabelledItem {
        index,
        id,
        group,
        label,
        item,
    })
}

/// A digest of the labelled items (their JSON, in order): runs on the same gold set share it.
pub fn dataset_digest<'a>(items: impl IntoIterator<Item = &'a Value>) -> String {
    let mut h = Sha256::new();
    for v in items {
        let text = v.to_string();
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a request's items into labelled items and invalid ones, and the dataset digest of the
/// valid ones.
pub fn read_items(
    kind: JudgeKind,
    values: Vec<Value>,
) -> (Vec<LabelledItem>, Vec<InvalidItem>, String) {
    let mut items = Vec::with_capacity(values.len());
    let mut invalid = Vec::new();
    let mut kept: Vec<Value> = Vec::with_capacity(values.len());
    for (index, v) in values.into_iter().enumerate() {
        let copy = v.clone();
        match parse_item(kind, index, v) {
            Ok(it) => {
                items.push(it);
                kept.push(copy);
            }
            Err(e) => invalid.push(InvalidItem {
                index,
                field: e.field,
                message: e.message,
            }),
        }
    }
    let digest = dataset_digest(kept.iter());
    (items, invalid, digest)
}

/// An unreadable line of an input file as an invalid item.
pub fn unreadable(index: usize, line: usize, message: &str) -> InvalidItem {
    InvalidItem {
        index,
        field: format!("items[{index}]"),
        message: format!("line {line}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_read_in_every_accepted_spelling_and_checked() {
        let item = |label: Value| json!({"question": "q", "answer": "a", "prediction": "p", "label": label});
        for (label, want) in [
            (json!("correct"), true),
            (json!("Incorrect"), false),
            (json!(true), true),
            (json!(0), false),
            (json!("yes"), true),
            (json!("1"), true),
        ] {
            let it = parse_item(JudgeKind::Binary, 0, item(label.clone())).unwrap();
            assert_eq!(it.label, Label::Binary(want), "{label}");
        }
        for bad in [json!("maybe"), json!(2), json!(null), json!([1])] {
            let e = parse_item(JudgeKind::Binary, 3, item(bad.clone())).unwrap_err();
            assert_eq!(e.field, "items[3].label", "{bad}");
        }
        let e = parse_item(
            JudgeKind::Binary,
            0,
            json!({"question": "q", "answer": "a", "prediction": "p"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "items[0].label");
        // The kind's own checks still apply, and name the field.
        let e = parse_item(
            JudgeKind::Binary,
            1,
            json!({"question": "", "answer": "a", "prediction": "p", "label": 1}),
        )
        .unwrap_err();
        assert_eq!(e.field, "items[1].question");
        let e = parse_item(
            JudgeKind::Binary,
            1,
            json!({"question": "q", "answer": "a", "prediction": "p", "label": 1, "judge": "x"}),
        )
        .unwrap_err();
        assert_eq!(e.field, "items[1].judge");
        let score = |label: Value| {
            parse_item(
                JudgeKind::Score,
                0,
                json!({"question": "q", "prediction": "p", "min": 1, "max": 5, "label": label}),
            )
        };
        assert_eq!(score(json!(4)).unwrap().label, Label::Score(4.0));
        assert!(score(json!(6)).is_err(), "outside the item's scale");
        let pair = |label: &str| {
            parse_item(
                JudgeKind::Compare,
                0,
                json!({"question": "q", "response_a": "x", "response_b": "y", "label": label}),
            )
        };
        assert_eq!(pair("B").unwrap().label, Label::Pairwise(1));
        assert_eq!(pair("tie").unwrap().label, Label::Pairwise(2));
        assert!(pair("both").is_err());
        let with_meta = parse_item(JudgeKind::Binary, 0, json!({"question": "q", "answer": "a", "prediction": "p", "label": 1, "id": "x-1", "group": "math"}))
            .unwrap();
        assert_eq!(with_meta.id, Some(json!("x-1")));
        assert_eq!(with_meta.group.as_deref(), Some("math"));
    }
}
