//! What a wire format sends: a JSON `POST` to the provider's URL with its fixed headers, and the
//! helpers that build it (the URL parsed, the headers checked, path segments escaped, the body
//! serialised).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use llm_judge_chat::ProviderError;

/// An HTTP request a wire format wants sent: always a JSON `POST`.
#[derive(Debug)]
pub struct Outgoing {
    pub url: reqwest::Url,
    pub body: Vec<u8>,
}

/// Parses a provider URL. The error names no part of the URL, which may carry a key in its query.
pub fn parse_url(url: &str) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(url).map_err(|e| {
        ProviderError::Connect(format!("the provider's base_url is not a valid URL ({e})"))
    })
}

/// The headers a provider sends with every call, built once at start-up. Every value is marked
/// sensitive, so a credential is never printed; a value that cannot be a header is refused with
/// an error that names the header, never the value. `extra` are configured headers.
pub fn fixed_headers(
    pairs: &[(&'static str, &str)],
    extra: &[(String, String)],
) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::with_capacity(pairs.len() + extra.len());
    for (name, value) in pairs {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            anyhow::anyhow!("the {name} header value (from the API key) is not valid in HTTP")
        })?;
        v.set_sensitive(true);
        map.insert(*name, v);
    }
    for (k, v) in extra {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| anyhow::anyhow!("{k:?} is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| anyhow::anyhow!("the {k} header value is not valid in HTTP"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the value stays one path
/// segment (or one query value) whatever it contains.
pub fn encode_path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Serialises a wire body; a body that cannot be serialised is a bug in an adapter, reported as
/// an unsupported request rather than a panic.
pub fn json_body<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body)
        .map_err(|e| ProviderError::Unsupported(format!("the request cannot be encoded: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_stay_one_segment() {
        assert_eq!(encode_path_segment("gpt-4o_v1.2~x"), "gpt-4o_v1.2~x");
        assert_eq!(encode_path_segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn header_values_are_checked_and_sensitive() {
        let h = fixed_headers(
            &[("x-api-key", "k1")],
            &[("OpenAI-Organization".into(), "o".into())],
        )
        .unwrap();
        assert!(h.get("x-api-key").unwrap().is_sensitive());
        assert_eq!(h.get("openai-organization").unwrap(), "o");
        let e = fixed_headers(&[("x-api-key", "bad\nkey")], &[]).unwrap_err();
        assert!(e.to_string().contains("x-api-key") && !e.to_string().contains("bad"));
    }
}
