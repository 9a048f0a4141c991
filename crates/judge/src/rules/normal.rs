//! The forms answers are compared and quoted in: normalised words, a final answer without its
//! wrapping, and a clipped quote for a reason.

/// Lowercases, replaces punctuation with spaces (keeping decimal points and minus signs of
/// numbers, dropping thousands separators), drops the articles a/an/the and collapses whitespace.
pub fn normalize(text: &str) -> String {
    let cs: Vec<char> = text.to_lowercase().chars().collect();
    let digit = |i: Option<usize>| {
        i.and_then(|i| cs.get(i))
            .is_some_and(|c| c.is_ascii_digit())
    };
    let alnum = |i: Option<usize>| {
        i.and_then(|i| cs.get(i))
            .is_some_and(|c| c.is_alphanumeric())
    };
    let mut out = String::with_capacity(cs.len());
    for (i, &c) in cs.iter().enumerate() {
        let (prev, next) = (i.checked_sub(1), Some(i + 1));
        let thousands = digit(prev) && (1..=3).all(|k| digit(Some(i + k))) && !digit(Some(i + 4));
        match c {
            c if c.is_alphanumeric() => out.push(c),
            '.' if digit(next) && (digit(prev) || !alnum(prev)) => out.push('.'),
            ',' if thousands => {}
            '-' | '\u{2212}' if digit(next) && !alnum(prev) => out.push('-'),
            _ => out.push(' '),
        }
    }
    out.split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The answer without what wraps it: whitespace, markdown emphasis, `$`, quotes and trailing
/// punctuation.
pub(super) fn tidy(s: &str) -> String {
    let wrap = |c: char| c.is_whitespace() || matches!(c, '*' | '_' | '`' | '$' | '"' | '\'');
    let s = s
        .trim_matches(wrap)
        .trim_end_matches(['.', ',', ';', ':', '!']);
    s.trim_matches(wrap).to_string()
}

/// At most 60 characters of `s`, for a reason.
pub(super) fn clip(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
