//! Touches to the generated OpenAPI document that the derive cannot say: the batch endpoint and
//! the jobs endpoint take one request type at run time, but document only the fields each takes,
//! and each in its two forms (`items`, or the parallel arrays of a binary batch), one or the
//! other; a calibration's items are documented as the kind's single items with their label.

use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Fields of `BatchRequest` only `POST /v1/jobs` takes (`POST /v1/judge/batch` refuses them).
const JOBS_ONLY: [&str; 4] = [
    "idempotency_key",
    "provider_batch",
    "provider_batch_deadline_s",
    "max_wait_s",
];
/// Fields only the streamed batch takes (a job's progress is read from its events).
const BATCH_ONLY: [&str; 1] = ["progress_interval_ms"];
/// The parallel arrays of a binary batch, the other form of `items`.
const ARRAYS: [&str; 3] = ["questions", "answers", "predictions"];

/// `request` in its two forms: with `items`, or (binary only) with the parallel arrays.
fn two_forms(request: Object) -> Schema {
    let mut items = request.clone();
    for f in ARRAYS {
        items.properties.remove(f);
    }
    items.required = vec!["items".into()];
    let mut arrays = request;
    arrays.properties.remove("items");
    arrays.required = ARRAYS.iter().map(|f| f.to_string()).collect();
    arrays.properties.insert(
        "kind".into(),
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["binary"]))
                .description(Some("The parallel arrays are for binary items only."))
                .build(),
        )),
    );
    for (form, fields) in [(&mut items, &["items"][..]), (&mut arrays, &ARRAYS[..])] {
        for f in fields {
            if let Some(RefOr::T(Schema::Array(a))) = form.properties.get_mut(*f) {
                a.min_items = Some(1);
            }
        }
    }
    let description = items.description.clone();
    Schema::OneOf(
        OneOfBuilder::new()
            .item(Schema::Object(items))
            .item(Schema::Object(arrays))
            .description(description)
            .build(),
    )
}

/// Documents `POST /v1/jobs`'s JSON body as `JobRequest` (every field it takes) and
/// `POST /v1/judge/batch`'s as `BatchRequest` without the fields only jobs take.
pub(super) fn job_fields_apart(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(batch))) = components.schemas.get("BatchRequest").cloned()
    else {
        return;
    };
    let mut job = batch.clone();
    job.description = Some(
        "A job: `items` of one kind, or (binary only) the parallel arrays `questions`, \
         `answers`, `predictions`, with the options only jobs take."
            .into(),
    );
    for f in BATCH_ONLY {
        job.properties.remove(f);
    }
    let mut only_batch = batch;
    for f in JOBS_ONLY {
        only_batch.properties.remove(f);
    }
    components
        .schemas
        .insert("BatchRequest".into(), RefOr::T(two_forms(only_batch)));
    components
        .schemas
        .insert("JobRequest".into(), RefOr::T(two_forms(job)));
    let post = doc
        .paths
        .paths
        .get_mut("/v1/jobs")
        .and_then(|p| p.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
        .and_then(|b| match b {
            RefOr::T(body) => body.content.get_mut("application/json"),
            RefOr::Ref(_) => None,
        });
    if let Some(RefOr::T(content)) = post {
        content.schema = Some(RefOr::Ref(Ref::from_schema_name("JobRequest")));
    }
}

/// A calibration's label for each kind, as its items carry it.
fn label(kind: &str) -> Schema {
    let b = ObjectBuilder::new();
    Schema::Object(
        match kind {
            "binary" => b
                .schema_type(Type::String)
                .enum_values(Some(["correct", "incorrect"])),
            "compare" => b
                .schema_type(Type::String)
                .enum_values(Some(["a", "b", "tie"])),
            _ => b
                .schema_type(Type::Number)
                .description(Some("A number on the item's scale, `min` to `max`.")),
        }
        .build(),
    )
}

/// Documents `POST /v1/calibrate`'s body in one form per kind: `kind` and items that are the
/// kind's single items (`BinaryItem`, `ScoreItem`, `CompareItem`) with a `label`, and
/// optionally an `id` and a `group`.
pub(super) fn calibration_forms(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(request))) =
        components.schemas.get("CalibrateRequest").cloned()
    else {
        return;
    };
    let mut forms = OneOfBuilder::new().description(request.description.clone());
    for (kind, item_schema) in [
        ("binary", "BinaryItem"),
        ("score", "ScoreItem"),
        ("compare", "CompareItem"),
    ] {
        let Some(RefOr::T(Schema::Object(mut item))) = components.schemas.get(item_schema).cloned()
        else {
            return;
        };
        item.description = Some(format!("A `{kind}` item with its label."));
        item.example = None;
        // A calibration measures the judges it names: its items name none.
        item.properties.remove("judge");
        item.properties
            .insert("label".into(), RefOr::T(label(kind)));
        for (field, what) in [
            ("id", "Echoed in the per-item results."),
            ("group", "The figures are also given per group."),
        ] {
            let text = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(what))
                .build();
            item.properties
                .insert(field.into(), RefOr::T(Schema::Object(text)));
        }
        item.required.push("label".into());
        let mut form = request.clone();
        let items = utoipa::openapi::schema::ArrayBuilder::new()
            .items(RefOr::T(Schema::Object(item)))
            .min_items(Some(1))
            .description(form.properties.get("items").and_then(|p| match p {
                RefOr::T(Schema::Array(a)) => a.description.clone(),
                _ => None,
            }))
            .build();
        form.properties
            .insert("items".into(), RefOr::T(Schema::Array(items)));
        let kind_schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([kind]))
            .build();
        form.properties
            .insert("kind".into(), RefOr::T(Schema::Object(kind_schema)));
        if kind != "binary" {
            form.required.push("kind".into());
        }
        forms = forms.item(Schema::Object(form));
    }
    components.schemas.insert(
        "CalibrateRequest".into(),
        RefOr::T(Schema::OneOf(forms.build())),
    );
}
