//! The items a judge grades, as clients send them, and their validation (each problem names the
//! field at fault).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::prompts::{self, OutputFormat};

/// A problem with one field of an item.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Model options for one item.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Sampling temperature (0 to 2; default from the configuration, normally 0).
    pub temperature: Option<f32>,
    /// Most tokens the judge may answer with.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Use the verdict cache (default true; only applies at temperature 0).
    pub cache: Option<bool>,
}

/// The verdict tokens the binary judge is asked to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub enum OutputFormatParam {
    #[default]
    #[serde(rename = "0/1")]
    ZeroOne,
    #[serde(rename = "yes/no")]
    YesNo,
}

impl From<OutputFormatParam> for OutputFormat {
    fn from(p: OutputFormatParam) -> Self {
        match p {
            OutputFormatParam::ZeroOne => OutputFormat::ZeroOne,
            OutputFormatParam::YesNo => OutputFormat::YesNo,
        }
    }
}

/// A binary item: is the prediction correct, given the question and the reference answer?
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"question": "What is 2+2?", "answer": "4", "prediction": "The answer is 4."}))]
#[serde(deny_unknown_fields)]
pub struct BinaryItem {
    /// The judge (route) to use; the default route when absent.
    pub judge: Option<String>,
    #[schema(min_length = 1)]
    pub question: String,
    /// The reference answer.
    #[schema(min_length = 1)]
    pub answer: String,
    /// The answer to grade.
    #[schema(min_length = 1)]
    pub prediction: String,
    /// Images as base64 `data:image/...;base64,` URLs or `https:` URLs with a host; the service
    /// never fetches them.
    #[serde(default)]
    pub images: Vec<String>,
    /// `0/1` (default) or `yes/no`: the tokens the judge is asked to answer with.
    #[serde(default)]
    pub output_format: OutputFormatParam,
    /// A custom template with `{question}`, `{answer}` and `{prediction}` placeholders.
    pub prompt: Option<String>,
    #[serde(default)]
    pub options: Options,
    /// Batches, jobs and `llm-judge run`: a person's label of the prediction. With labels on
    /// some items, the summary has `corrected_accuracy`; the item's result echoes it. The
    /// single endpoint ignores it.
    pub label: Option<HumanLabel>,
}

/// A person's label of a binary item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HumanLabel {
    Correct,
    Incorrect,
}

/// A scale item: how good is the prediction, from `min` to `max`?
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"question": "Explain why the sky is blue.", "prediction": "Rayleigh scattering.", "rubric": "10: complete and correct; 1: wrong", "min": 1, "max": 10}))]
#[serde(deny_unknown_fields)]
pub struct ScoreItem {
    /// The judge (route) to use; the default route when absent.
    pub judge: Option<String>,
    #[schema(min_length = 1)]
    pub question: String,
    /// An optional reference answer.
    pub answer: Option<String>,
    #[schema(min_length = 1)]
    pub prediction: String,
    /// Optional grading rubric.
    pub rubric: Option<String>,
    #[serde(default = "default_min")]
    pub min: f64,
    #[serde(default = "default_max")]
    pub max: f64,
    /// When set, a score at or above it is `correct` (result 1), below it `incorrect`.
    pub pass_score: Option<f64>,
    #[serde(default)]
    pub images: Vec<String>,
    /// A custom template with `{question}`, `{answer}`, `{prediction}`, `{rubric}` placeholders.
    pub prompt: Option<String>,
    #[serde(default)]
    pub options: Options,
}

fn default_min() -> f64 {
    1.0
}
fn default_max() -> f64 {
    10.0
}

/// A pairwise item: which of two responses is better?
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"question": "What is the capital of France?", "answer": "Paris", "response_a": "Paris", "response_b": "Lyon"}))]
#[serde(deny_unknown_fields)]
pub struct CompareItem {
    /// The judge (route) to use; the default route when absent.
    pub judge: Option<String>,
    #[schema(min_length = 1)]
    pub question: String,
    pub answer: Option<String>,
    #[schema(min_length = 1)]
    pub response_a: String,
    #[schema(min_length = 1)]
    pub response_b: String,
    /// Ask in both orders to cancel position bias (default true).
    #[serde(default = "yes")]
    pub swap: bool,
    #[serde(default)]
    pub images: Vec<String>,
    /// A custom template with `{question}`, `{answer}`, `{response_a}`, `{response_b}` placeholders.
    pub prompt: Option<String>,
    #[serde(default)]
    pub options: Options,
}

fn yes() -> bool {
    true
}

fn required(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        Err(FieldError::new(field, format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

fn check_images(images: &[String]) -> Result<(), FieldError> {
    for (i, url) in images.iter().enumerate() {
        let problem = if let Some(rest) = url.strip_prefix("data:") {
            check_data_url(rest)
        } else if url.starts_with("https://") {
            check_https_url(url)
        } else {
            Err("an image must be a base64 data: URL or an https: URL")
        };
        problem.map_err(|m| FieldError::new(format!("images[{i}]"), m))?;
    }
    Ok(())
}

/// `<image media type>[;params];base64,<base64 data>` (what follows `data:`).
fn check_data_url(rest: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "a data: URL must look like data:image/png;base64,<data>";
    let (meta, data) = rest.split_once(',').ok_or(SHAPE)?;
    let media_type = meta.strip_suffix(";base64").ok_or(SHAPE)?;
    let media_type = media_type.split(';').next().unwrap_or_default();
    let subtype = media_type
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("image/"))
        .map(|_| &media_type[6..])
        .ok_or("a data: URL must hold an image (data:image/png;base64,...)")?;
    if subtype.is_empty()
        || !subtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err("a data: URL must name an image type such as image/png");
    }
    if data.is_empty() || !is_base64(data.as_bytes()) {
        return Err("the data of a data: URL is not valid base64");
    }
    Ok(())
}

/// Whether `data` is standard base64 (padding optional), decoded a piece at a time so that a
/// large image is checked without a copy of it.
fn is_base64(data: &[u8]) -> bool {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // 4,096 characters are whole groups of four: each piece decodes on its own into 3,072 bytes.
    // Only the last piece may end in padding (the decoder refuses it anywhere else in a piece).
    let mut out = [0u8; 3072];
    let last = data.len().saturating_sub(1) / 4096;
    data.chunks(4096).enumerate().all(|(i, piece)| {
        (i == last || piece.last() != Some(&b'='))
            && base64::Engine::decode_slice(&ENGINE, piece, &mut out).is_ok()
    })
}

/// An `https:` URL with a host.
fn check_https_url(url: &str) -> Result<(), &'static str> {
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err("an https: URL must name a host, as in https://example.com/image.png"),
        Err(_) => Err("not a valid https: URL"),
    }
}

fn check_options(o: &Options) -> Result<(), FieldError> {
    if let Some(t) = o.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(FieldError::new(
            "options.temperature",
            "temperature must be between 0 and 2",
        ));
    }
    if o.max_tokens == Some(0) {
        return Err(FieldError::new(
            "options.max_tokens",
            "max_tokens must be at least 1",
        ));
    }
    Ok(())
}

fn check_prompt(prompt: &Option<String>, allowed: &[&str]) -> Result<(), FieldError> {
    match prompt {
        Some(p) => prompts::validate_template(p, allowed).map_err(|m| FieldError::new("prompt", m)),
        None => Ok(()),
    }
}

impl BinaryItem {
    pub fn validate(&self) -> Result<(), FieldError> {
        required("question", &self.question)?;
        required("answer", &self.answer)?;
        required("prediction", &self.prediction)?;
        check_images(&self.images)?;
        check_options(&self.options)?;
        check_prompt(&self.prompt, &["question", "answer", "prediction"])
    }
}

impl ScoreItem {
    pub fn validate(&self) -> Result<(), FieldError> {
        required("question", &self.question)?;
        required("prediction", &self.prediction)?;
        if !self.min.is_finite() || !self.max.is_finite() || self.min >= self.max {
            return Err(FieldError::new(
                "max",
                "min and max must be numbers with min < max",
            ));
        }
        if let Some(p) = self.pass_score
            && !(self.min..=self.max).contains(&p)
        {
            return Err(FieldError::new(
                "pass_score",
                "pass_score must lie between min and max",
            ));
        }
        check_images(&self.images)?;
        check_options(&self.options)?;
        check_prompt(
            &self.prompt,
            &["question", "answer", "prediction", "rubric"],
        )
    }
}

impl CompareItem {
    pub fn validate(&self) -> Result<(), FieldError> {
        required("question", &self.question)?;
        required("response_a", &self.response_a)?;
        required("response_b", &self.response_b)?;
        check_images(&self.images)?;
        check_options(&self.options)?;
        check_prompt(
            &self.prompt,
            &["question", "answer", "response_a", "response_b"],
        )
    }
}

/// Reads a JSON document into `T`; the error names the field at fault (`items[3].question`).
pub fn from_json_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(path_error)
}

/// Reads one item's JSON text into `T`, as [`from_json_value`] reads a value: the message names
/// no line and column, which within one item of a larger document would mislead.
pub fn from_json_item<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, FieldError> {
    // Nearly every item is valid: read it plainly, and only trace the path to the field at
    // fault when there is one (the same input fails the same way the second time).
    if let Ok(item) = serde_json::from_str(json) {
        return Ok(item);
    }
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().clone();
        let inner = e.into_inner();
        let mut msg = inner.to_string();
        let at = format!(" at line {} column {}", inner.line(), inner.column());
        if inner.line() > 0 && msg.ends_with(&at) {
            msg.truncate(msg.len() - at.len());
        }
        path_error(serde_path_to_error::Error::new(path, msg))
    })
}

/// Reads a JSON value into `T`; the error names the field at fault.
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(v).map_err(path_error)
}

pub fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> FieldError {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let path = if path == "." { String::new() } else { path };
    // A missing or unknown field is named inside the message, not in the path.
    let named = field_of_serde_error(&inner);
    let field = match named {
        // serde_path_to_error already ends the path with an unknown field's name.
        Some(n) if path.is_empty() || path == n || path.ends_with(&format!(".{n}")) => {
            if path.is_empty() { n } else { path }
        }
        Some(n) => format!("{path}.{n}"),
        None => path,
    };
    let field = if field.is_empty() {
        "body".to_string()
    } else {
        field
    };
    FieldError::new(field, inner)
}

/// The field named in serde's "missing field `x`" / "unknown field `x`" messages.
pub fn field_of_serde_error(msg: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = msg.split(prefix).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_must_be_base64_image_data_or_https_urls_with_a_host() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let big = format!("data:image/jpeg;base64,{}", "QUJD".repeat(5000));
        let ok = [
            png,
            "data:image/png;base64,iVBORw0KGgo",
            "data:IMAGE/webp;name=a.webp;base64,UklGRg==",
            "data:image/svg+xml;base64,PHN2Zz4=",
            big.as_str(),
            "https://example.com/cat.png",
            "https://example.com:8443/a/b.jpg?x=1#frag",
            "https://[::1]/x.png",
        ];
        for url in ok {
            assert_eq!(check_images(&[url.to_string()]), Ok(()), "{url}");
        }
        let padding_inside = format!("data:image/png;base64,{}=AAAA", "A".repeat(4095));
        let bad = [
            "data:text/plain;base64,aGVsbG8=",
            "data:application/octet-stream;base64,aGVsbG8=",
            "data:image/;base64,aGVsbG8=",
            "data:image/png;base64,not base64!",
            "data:image/png;base64,aGVsbG8=x",
            "data:image/png;base64,A",
            "data:image/png;base64,",
            "data:image/png,aGVsbG8=",
            "data:image/png;base64",
            padding_inside.as_str(),
            "https://",
            "https:///cat.png",
            "https://:443/cat.png",
            "https://exa mple.com/cat.png",
            "http://example.com/cat.png",
            "file:///etc/passwd",
        ];
        for url in bad {
            let images = vec![png.to_string(), url.to_string()];
            let e = check_images(&images).expect_err(url);
            assert_eq!(e.field, "images[1]", "{url}");
        }
    }
}
