//! The final answer inside a worked solution: the last `\boxed{}`, else what follows the last
//! "the answer is", else the whole text.

use std::sync::LazyLock;

use regex::Regex;

use super::normal::tidy;

static ANSWER_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:the\s+)?(?:(?:final|correct)\s+)?answer\s*(?:is[ \t]*:?|:|=)[ \t]*")
        .expect("valid regex")
});

/// The final answer inside a worked solution: the last `\boxed{..}`, else the text after the last
/// "the answer is" / "final answer:" / "answer:" up to the end of that sentence or line, else the
/// whole text. Surrounding whitespace, markdown emphasis, `$` and trailing punctuation are removed.
pub fn extract_final_answer(text: &str) -> String {
    if let Some(b) = last_boxed(text) {
        return tidy(b);
    }
    for m in ANSWER_MARKER
        .find_iter(text)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let found = tidy(sentence(text[m.end()..].trim_start()));
        if !found.is_empty() {
            return found;
        }
    }
    tidy(text)
}

/// The content of the last `\boxed{...}`, nested braces included (to the end if unbalanced).
fn last_boxed(text: &str) -> Option<&str> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + i]);
                }
            }
            _ => {}
        }
    }
    Some(&text[start..])
}

/// `s` up to the end of its first line or sentence (`.` `!` `?` followed by a space or the end).
fn sentence(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    let mut it = line.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if matches!(c, '.' | '!' | '?') && it.peek().is_none_or(|(_, n)| n.is_whitespace()) {
            return &line[..i];
        }
    }
    line
}
