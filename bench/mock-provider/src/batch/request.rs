//! A request to a batch endpoint, and which paths are batch endpoints.

use bytes::Bytes;

/// The largest request body read on a batch endpoint: OpenAI takes files up to 512 MB, and a
/// multipart upload carries a little more.
pub const MAX_BODY: usize = 600_000_000;

/// A request to a batch endpoint, whole.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub content_type: Option<String>,
    /// Where the client reached the stand-in (`host:port`), for the URLs it hands out.
    pub host: String,
    pub body: Bytes,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`, if given (values are ids and numbers: no decoding).
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// True for the paths the batch APIs answer (OpenAI's with or without `/v1`, as for chat).
pub fn serves(path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/v1/files")
        || under("/files")
        || under("/v1/batches")
        || under("/batches")
        || under("/v1/messages/batches")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries() {
        for p in [
            "/v1/files",
            "/files/file-1/content",
            "/v1/batches",
            "/batches/b/cancel",
            "/v1/messages/batches/x/results",
        ] {
            assert!(serves(p), "{p}");
        }
        for p in [
            "/v1/filesx",
            "/v1/messages",
            "/v1/chat/completions",
            "/batch",
        ] {
            assert!(!serves(p), "{p}");
        }
        let r = Request {
            method: "GET".into(),
            target: "/v1/batches?limit=2&after=batch_1".into(),
            content_type: None,
            host: "h".into(),
            body: Bytes::new(),
        };
        assert_eq!(r.path(), "/v1/batches");
        assert_eq!(
            (r.query("limit"), r.query("after")),
            (Some("2"), Some("batch_1"))
        );
        assert_eq!(r.query("before"), None);
    }
}
