//! Checks answers against OpenAI's published schemas (the fixture).

use serde_json::{Value, json};

/// Drops every null-valued field, at every depth.
fn without_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(without_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(without_nulls),
        _ => {}
    }
}

/// Checks `value` against OpenAI's published schema `name` (see the fixture). The API sends
/// `null` for fields not set yet (`output_file_id`, `completed_at`, ...) where the spec types
/// them as plain strings or integers, so null fields are left out first (a required field that
/// is null is then missing, and still refused).
pub fn check_schema(name: &str, value: &Value) {
    let mut doc: Value =
        serde_json::from_str(include_str!("../fixtures/openai-batch-schemas.json")).unwrap();
    let schema = doc["components"]["schemas"][name].clone();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(!required.is_empty());
    doc["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::validator_for(&doc).unwrap();
    let mut value = value.clone();
    without_nulls(&mut value);
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?} in {value}");
    // The check can fail: without a required field the object is refused.
    let mut broken = value.clone();
    broken.as_object_mut().unwrap().remove(required[0]);
    assert!(
        !validator.is_valid(&broken),
        "{name} without {}",
        required[0]
    );
}
