//! The endpoints of OpenAI's Files API: upload (a multipart form), list, get, content and
//! delete.

use bytes::Bytes;
use serde_json::json;

use super::file::File;
use super::respond::{list, missing, no_file, refuse};
use super::state::Env;
use crate::batch::request::Request;
use crate::batch::stats::{Op, Side};
use crate::batch::wire;
use crate::reply::Reply;

/// The purposes a file can be uploaded with.
const PURPOSES: [&str; 6] = [
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];

pub fn with_file(env: &Env<'_>, id: &str, answer: impl FnOnce(&File) -> Reply) -> Reply {
    let state = env.lock();
    match state.files.by_id.get(id) {
        Some(f) => answer(f),
        None => {
            drop(state);
            no_file(env, id, "id")
        }
    }
}

pub fn delete_file(env: &Env<'_>, id: &str) -> Reply {
    let mut state = env.lock();
    if state.files.by_id.remove(id).is_none() {
        drop(state);
        return no_file(env, id, "id");
    }
    state.files.order.retain(|f| f != id);
    wire::json(200, &json!({"id": id, "object": "file", "deleted": true}))
}

pub fn list_files(env: &Env<'_>, req: &Request) -> Reply {
    let state = env.lock();
    let purpose = req.query("purpose");
    let data = state
        .files
        .order
        .iter()
        .rev()
        .filter_map(|id| state.files.by_id.get(id))
        .filter(|f| purpose.is_none_or(|p| p == f.purpose))
        .map(File::render)
        .collect();
    list(data, false)
}

/// `POST /v1/files`.
pub async fn upload(env: &Env<'_>, req: &Request) -> Reply {
    let Some(boundary) = req
        .content_type
        .as_deref()
        .and_then(|ct| multer::parse_boundary(ct).ok())
    else {
        return refuse(
            env,
            400,
            "Invalid Content-Type header: expected multipart/form-data with a boundary.",
            None,
            None,
        );
    };
    let (purpose, file) = match read_form(boundary, req.body.clone()).await {
        Ok(form) => form,
        Err(e) => {
            return refuse(
                env,
                400,
                &format!("Could not parse the multipart form: {e}"),
                None,
                None,
            );
        }
    };
    let Some(purpose) = purpose else {
        return missing(env, "purpose");
    };
    let Some(purpose) = PURPOSES.iter().copied().find(|p| *p == purpose) else {
        return refuse(
            env,
            400,
            &format!("'{purpose}' is not one of {PURPOSES:?} - 'purpose'"),
            Some("purpose"),
            None,
        );
    };
    let Some((filename, content)) = file else {
        return missing(env, "file");
    };
    let filename = filename.unwrap_or_else(|| "upload".to_owned());
    if content.len() > env.limits.openai_file_bytes {
        return refuse(
            env,
            413,
            "The file is larger than the 512 MB limit.",
            Some("file"),
            None,
        );
    }
    if purpose == "batch" && !filename.ends_with(".jsonl") {
        return refuse(
            env,
            400,
            "Invalid file format for Batch API. Must be .jsonl",
            None,
            None,
        );
    }
    env.stats.count(Side::OpenAi, Op::FilesUploaded);
    let file = File::new(purpose, filename, content);
    let answer = wire::json(200, &file.render());
    env.lock().files.add(file);
    answer
}

/// An uploaded file, by name, and its content.
type Upload = (Option<String>, Bytes);

/// The `purpose` and `file` fields of a multipart form (other fields are ignored).
async fn read_form(
    boundary: String,
    body: Bytes,
) -> Result<(Option<String>, Option<Upload>), multer::Error> {
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let (mut purpose, mut file) = (None, None);
    while let Some(field) = form.next_field().await? {
        let name = field.name().map(str::to_owned);
        let filename = field.file_name().map(str::to_owned);
        let data = field.bytes().await?;
        match name.as_deref() {
            Some("purpose") => purpose = Some(String::from_utf8_lossy(&data).trim().to_owned()),
            Some("file") => file = Some((filename, data)),
            _ => {}
        }
    }
    Ok((purpose, file))
}
