//! Response bodies, pre-rendered at start-up; per request only the id, the time and the model
//! (echoed from the request, as real providers do) are filled in.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::Api;
use crate::cache::CacheUse;

/// The pieces of every answer.
pub struct Canned {
    /// OpenAI: everything after `"model":"<model>"`, by [`CacheUse`] (none, write, read).
    openai_tail: [Vec<u8>; 3],
    /// Anthropic: everything after `"model":"<model>"`, by [`CacheUse`].
    anthropic_tail: [Vec<u8>; 3],
    next_id: AtomicU64,
}

fn cache_index(cache: CacheUse) -> usize {
    match cache {
        CacheUse::None => 0,
        CacheUse::Write => 1,
        CacheUse::Read => 2,
    }
}

/// `s` as a JSON string literal, quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The raw (still JSON-escaped) value of the top-level-ish `"model": "..."` field of a request,
/// found by a byte scan rather than a full parse. `None` when absent or odd.
pub fn find_model(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"model\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)?;
    let mut i = at + KEY.len();
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    if body.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    if body.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let mut j = start;
    while j < body.len() && j - start <= 256 {
        match body[j] {
            b'\\' => j += 2,
            b'"' => return std::str::from_utf8(&body[start..j]).ok(),
            c if c < 0x20 => return None,
            _ => j += 1,
        }
    }
    None
}

impl Canned {
    /// Answers with `text`; `usage` reports `prompt_tokens` in, `completion_tokens` out and, when
    /// the prompt cache is used (see [`crate::cache`]), `cached_tokens` of the input cached.
    pub fn new(
        text: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        cached_tokens: u64,
    ) -> Canned {
        let text = json_string(text);
        let total = prompt_tokens + completion_tokens;
        let openai = |cached: u64| {
            format!(
                "\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{text},\"refusal\":null,\"annotations\":[]}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":{prompt_tokens},\"completion_tokens\":{completion_tokens},\"total_tokens\":{total},\"prompt_tokens_details\":{{\"cached_tokens\":{cached},\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}},\"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\"}}"
            )
            .into_bytes()
        };
        // Anthropic's `input_tokens` leaves out the tokens written to or read from the cache.
        let anthropic = |input: u64, created: u64, read: u64| {
            format!(
                "\",\"content\":[{{\"type\":\"text\",\"text\":{text}}}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{input},\"cache_creation_input_tokens\":{created},\"cache_read_input_tokens\":{read},\"output_tokens\":{completion_tokens}}}}}"
            )
            .into_bytes()
        };
        let rest = prompt_tokens.saturating_sub(cached_tokens);
        Canned {
            openai_tail: [openai(0), openai(0), openai(cached_tokens)],
            anthropic_tail: [
                anthropic(prompt_tokens, 0, 0),
                anthropic(rest, cached_tokens, 0),
                anthropic(rest, 0, cached_tokens),
            ],
            next_id: AtomicU64::new(1),
        }
    }

    /// A successful completion for `request` (whose model is echoed back), with the usage
    /// that `cache` calls for.
    pub fn success(&self, api: Api, request: &[u8], cache: CacheUse) -> Vec<u8> {
        let model = find_model(request).unwrap_or("mock-model");
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let openai_tail = &self.openai_tail[cache_index(cache)];
        let anthropic_tail = &self.anthropic_tail[cache_index(cache)];
        let mut out = Vec::with_capacity(openai_tail.len().max(anthropic_tail.len()) + 160);
        match api {
            Api::OpenAi => {
                let created = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let _ = write!(
                    out,
                    "{{\"id\":\"chatcmpl-mock{id:012}\",\"object\":\"chat.completion\",\"created\":{created},\"model\":\"{model}"
                );
                out.extend_from_slice(openai_tail);
            }
            Api::Anthropic => {
                let _ = write!(
                    out,
                    "{{\"id\":\"msg_mock{id:016}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"{model}"
                );
                out.extend_from_slice(anthropic_tail);
            }
        }
        out
    }

    /// A 200 whose body is cut two thirds of the way through: never valid JSON.
    pub fn malformed(&self, api: Api, request: &[u8]) -> Vec<u8> {
        let mut full = self.success(api, request, CacheUse::None);
        full.truncate(full.len() * 2 / 3);
        full
    }

    /// The provider's error body for a failure label (`429`, `500`, `503`, `529`).
    pub fn error(&self, api: Api, label: &str) -> &'static [u8] {
        match (api, label) {
            (Api::OpenAi, "429") => {
                br#"{"error":{"message":"Rate limit reached for requests (mock provider). Please try again later.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            }
            (Api::OpenAi, "503") => {
                br#"{"error":{"message":"The engine is currently overloaded, please try again later (mock provider).","type":"server_error","param":null,"code":null}}"#
            }
            (Api::OpenAi, "529") => {
                br#"{"error":{"message":"Overloaded (mock provider).","type":"overloaded_error","param":null,"code":null}}"#
            }
            (Api::OpenAi, _) => {
                br#"{"error":{"message":"The server had an error while processing your request (mock provider).","type":"server_error","param":null,"code":null}}"#
            }
            (Api::Anthropic, "429") => {
                br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit (mock provider)."}}"#
            }
            (Api::Anthropic, "529") => {
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded (mock provider)."}}"#
            }
            (Api::Anthropic, "503") => {
                br#"{"type":"error","error":{"type":"api_error","message":"Service unavailable (mock provider)."}}"#
            }
            (Api::Anthropic, _) => {
                br#"{"type":"error","error":{"type":"api_error","message":"Internal server error (mock provider)."}}"#
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Option<()> {
        // A tiny validity check without a JSON dependency: balanced braces outside strings and
        // the document ends where the top-level object closes.
        let mut depth = 0i32;
        let mut in_str = false;
        let mut esc = false;
        for (i, &c) in b.iter().enumerate() {
            if in_str {
                match (esc, c) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return (i == b.len() - 1).then_some(());
                    }
                }
                _ => {}
            }
        }
        None
    }

    #[test]
    fn bodies_echo_the_model_and_escape_the_text() {
        let c = Canned::new("Verdict: \"1\"\n", 12, 3, 0);
        let req = br#"{"model": "gpt-4o-mini", "messages": []}"#;
        let b = String::from_utf8(c.success(Api::OpenAi, req, CacheUse::None)).unwrap();
        assert!(b.contains(r#""model":"gpt-4o-mini""#), "{b}");
        assert!(b.contains(r#""content":"Verdict: \"1\"\n""#), "{b}");
        assert!(b.contains(r#""total_tokens":15"#), "{b}");
        assert!(parse(b.as_bytes()).is_some(), "{b}");
        let a = String::from_utf8(c.success(
            Api::Anthropic,
            br#"{"model":"claude-x"}"#,
            CacheUse::None,
        ))
        .unwrap();
        assert!(a.contains(r#""model":"claude-x""#), "{a}");
        assert!(a.contains(r#""input_tokens":12"#), "{a}");
        assert!(parse(a.as_bytes()).is_some(), "{a}");
        assert!(parse(&c.malformed(Api::OpenAi, req)).is_none());
    }

    #[test]
    fn usage_reports_the_cache_as_each_provider_counts_it() {
        let c = Canned::new("ok", 1500, 3, 1024);
        let body = |api, cache| String::from_utf8(c.success(api, b"{}", cache)).unwrap();
        assert!(body(Api::OpenAi, CacheUse::None).contains(r#""prompt_tokens":1500,"#));
        assert!(body(Api::OpenAi, CacheUse::Write).contains(r#""cached_tokens":0,"#));
        let read = body(Api::OpenAi, CacheUse::Read);
        assert!(read.contains(r#""prompt_tokens":1500,"#), "{read}");
        assert!(read.contains(r#""cached_tokens":1024,"#), "{read}");
        assert!(parse(read.as_bytes()).is_some(), "{read}");
        assert!(body(Api::Anthropic, CacheUse::None).contains(
            r#""input_tokens":1500,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"#
        ));
        assert!(body(Api::Anthropic, CacheUse::Write).contains(
            r#""input_tokens":476,"cache_creation_input_tokens":1024,"cache_read_input_tokens":0,"#
        ));
        let read = body(Api::Anthropic, CacheUse::Read);
        assert!(read.contains(
            r#""input_tokens":476,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"#
        ));
        assert!(parse(read.as_bytes()).is_some(), "{read}");
    }

    #[test]
    fn model_scan_is_careful() {
        assert_eq!(find_model(br#"{"model" : "a\"b"}"#), Some(r#"a\"b"#));
        assert_eq!(find_model(br#"{"messages":[]}"#), None);
        assert_eq!(find_model(br#"{"model":42}"#), None);
    }
}
