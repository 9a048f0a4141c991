//! The files of OpenAI's Files API as the stand-in keeps them: uploaded inputs and the output
//! and error files it writes.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::batch::timeline::Created;
use crate::batch::wire;

/// Batch files are kept for 30 days.
const FILE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Uploaded and written files.
#[derive(Default)]
pub struct Files {
    pub by_id: HashMap<String, File>,
    /// Ids in the order the files were made, for listing.
    pub order: Vec<String>,
}

impl Files {
    pub fn add(&mut self, file: File) {
        self.order.push(file.id.clone());
        self.by_id.insert(file.id.clone(), file);
    }
}

pub struct File {
    pub id: String,
    pub purpose: &'static str,
    pub filename: String,
    pub created: Created,
    pub content: Bytes,
}

impl File {
    pub fn new(purpose: &'static str, filename: String, content: Bytes) -> File {
        File {
            id: wire::random_id("file-", 22, false),
            purpose,
            filename,
            created: Created::now(),
            content,
        }
    }

    pub fn render(&self) -> Value {
        let expires = matches!(self.purpose, "batch" | "batch_output")
            .then(|| self.created.unix(FILE_LIFETIME));
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.content.len(),
            "created_at": self.created.unix(Duration::ZERO),
            "expires_at": expires,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": null,
        })
    }
}
