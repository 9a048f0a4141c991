//! Request extractors whose failures are error bodies saying which field is wrong: the JSON
//! body, query parameters and path parameters.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use llm_judge_judge::items::path_error;

/// A JSON body read with clear errors: 400 for malformed JSON, 422 naming the field for a wrong
/// type or a missing or unknown field, 413 for a body over the limit, 408 for a body that took
/// too long to arrive, 415 for a body that says it is not JSON. A body without a content type
/// is read as JSON (a raw client's); one a browser form or a cross-site `fetch` can send
/// without asking first (`text/plain`, `application/x-www-form-urlencoded`,
/// `multipart/form-data`), or any other non-JSON type, is refused, so that no web page can
/// spend provider credit with a request its visitor's browser sends unasked.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        parse_json(&read_body(req).await?).map(JsonBody)
    }
}

/// Reads a whole JSON request body: 415 when it is declared as something else, 413 over the
/// limit, 408 too slow, 400 when it cannot be read. The body's size and time are bounded by the
/// layers in front (see `api::layers`).
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    check_json_content_type(&req)?;
    axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .map_err(unreadable)
}

/// The answer to a body over `server.max_body_bytes`.
pub fn body_too_large() -> ApiError {
    ApiError::BodyTooLarge(
        "the request body is over the limit (server.max_body_bytes); split the batch or use a job"
            .into(),
    )
}

/// The answer to a body that could not be read: over the limit (413), too slow to arrive
/// (408, tower-http's body timeouts), or cut off (400).
pub fn unreadable(e: axum::Error) -> ApiError {
    let inner = e.into_inner();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*inner);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return body_too_large();
        }
        if c.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout(
                "the request body took longer than server.body_read_timeout_s to arrive; send it faster or in smaller pieces".into(),
            );
        }
        cause = c.source();
    }
    ApiError::UnreadableBody(format!("the request body could not be read: {inner}"))
}

/// 415 unless the request's body is declared JSON (`application/json`, `application/*+json`,
/// any parameters) or not declared at all.
pub fn check_json_content_type(req: &Request) -> Result<(), ApiError> {
    let Some(essence) = media_type(req.headers()) else {
        return Ok(());
    };
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "the body is sent as {essence:?}; send it as JSON with Content-Type: application/json (with curl: -H 'content-type: application/json'; POST /v1/jobs also takes application/x-ndjson)"
    )))
}

/// The media type a request's `Content-Type` declares, without its parameters, in lower case
/// (`application/json` for `Application/JSON; charset=utf-8`); `None` without one.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::CONTENT_TYPE)?;
    let value = value.to_str().unwrap_or_default();
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether a request is a job upload: `POST /v1/jobs` with an NDJSON body (exactly
/// `application/x-ndjson`), the one body that may be larger than `server.max_body_bytes` (it is
/// streamed to the job store and bounded by `jobs.max_items`).
pub fn is_job_upload(req: &Request) -> bool {
    req.method() == axum::http::Method::POST
        && req.uri().path() == "/v1/jobs"
        && media_type(req.headers()).as_deref() == Some(NDJSON)
}

/// The media type of an NDJSON job upload.
pub const NDJSON: &str = "application/x-ndjson";

/// Parses a JSON body into `T` with the errors described on [`JsonBody`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // A byte-order mark some tools put first is not part of the JSON.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    // Nearly every body is valid: read it plainly, and only trace the path to the field at fault
    // when there is one (the same input fails the same way the second time).
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let not_json = |e: &dyn std::fmt::Display| {
        ApiError::MalformedJson(format!("the body is not valid JSON: {e}"))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(v) => de.end().map(|_| v).map_err(|e| not_json(&e)),
        Err(e) => {
            use serde_json::error::Category;
            // A body that is not JSON at all is a syntax error, whatever the first problem found.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(not_json(&syntax));
            }
            match e.inner().classify() {
                Category::Syntax | Category::Eof | Category::Io => Err(not_json(e.inner())),
                Category::Data
                    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') =>
                {
                    Err(ApiError::InvalidField {
                        field: "body".into(),
                        message: "the body must be a JSON object".into(),
                    })
                }
                Category::Data => Err(ApiError::invalid(path_error(e))),
            }
        }
    }
}

/// Query parameters read with the error body: 422 naming the parameter, never a bare 400.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded_deserializer(query);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(QueryParams(v)),
            Err(e) => {
                let message = e.inner().to_string();
                let field = match (e.path().to_string(), unknown_field(&message)) {
                    // A parameter the endpoint does not take, misspelt perhaps: named.
                    (_, Some(unknown)) => unknown.to_string(),
                    (path, None) if path == "." => "query".to_string(),
                    (path, None) => path,
                };
                Err(ApiError::InvalidField {
                    message: format!("query parameter {field}: {}", e.inner()),
                    field,
                })
            }
        }
    }
}

/// The name in serde's "unknown field `name`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

/// A path parameter read with the error body: a segment that is not valid UTF-8 after
/// percent-decoding (`/v1/jobs/%FF`) or not of the right type is a 400 naming the parameter.
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for PathParam<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::Path;
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParam(v)),
            Err(rejection) => {
                let key = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key }
                        | ErrorKind::ParseErrorAtKey { key, .. } => Some(key.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let field = key.unwrap_or_else(|| "path".to_string());
                Err(ApiError::InvalidPath {
                    message: format!("path parameter {field}: {}", rejection.body_text()),
                    field,
                })
            }
        }
    }
}
