//! The conversation a judge call carries: who speaks, the parts of a message (text and images),
//! and the image references the client sent.

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    User,
    Assistant,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image given by the client as a `data:` URL or an `https:` URL. The service never fetches it.
    Image(ImageRef),
}

/// One message of the conversation after the system prompt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    /// A user message of the given parts.
    pub fn user(parts: Vec<Part>) -> Message {
        Message {
            role: Role::User,
            parts,
        }
    }

    /// The message's text parts joined by newlines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            if let Part::Text(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

/// An image reference as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub url: String,
}

/// The decoded parts of a `data:<mime>;base64,<data>` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct DataUrl<'a> {
    pub mime_type: &'a str,
    pub base64: &'a str,
}

impl ImageRef {
    /// The media type and base64 payload when this is a base64 `data:` URL.
    pub fn as_data_url(&self) -> Option<DataUrl<'_>> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        Some(DataUrl {
            mime_type: if mime.is_empty() {
                "application/octet-stream"
            } else {
                mime
            },
            base64: data,
        })
    }

    /// True for an `https://` (or `http://`) URL the provider may fetch itself.
    pub fn is_remote(&self) -> bool {
        self.url.starts_with("https://") || self.url.starts_with("http://")
    }
}
