//! Text helpers for what the service shows of provider answers: secrets scrubbed out, long text
//! clipped.

/// Replaces every occurrence of `secret` in `text` with `[redacted]` (secrets shorter than four
/// bytes are left alone: they would match ordinary text).
pub fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(k) if k.len() >= 4 && text.contains(k) => text.replace(k, "[redacted]"),
        _ => text,
    }
}

/// Truncates text at a character boundary at most `max` bytes in, marking the cut with `…`, so a
/// huge HTML error page does not flood responses.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
