//! The verdict lines of a reply (`Verdict: yes`, `Final answer = 1`) and the first clause of
//! such a line, the part a binary verdict is read from.

/// The words that may open a verdict line, before its keyword (`Final verdict: …`).
const MARKER_PREFIXES: [&str; 4] = ["my", "the", "final", "overall"];
/// The keywords of a verdict line, before its `:` or `=`.
const MARKER_KEYS: [&str; 10] = [
    "verdict",
    "judgement",
    "judgment",
    "decision",
    "grade",
    "result",
    "score",
    "evaluation",
    "correctness",
    "answer",
];

/// A verdict line: its keyword and the rest of the line after the `:` or `=`.
pub(super) struct Marker<'a> {
    pub(super) key: &'static str,
    pub(super) rest: &'a str,
}

/// The verdict lines of a prepared (lowercased) reply, in order. A line is one when, after
/// spaces or tabs, any of [`MARKER_PREFIXES`] each followed by spaces or tabs, it has one of
/// [`MARKER_KEYS`], optional spaces or tabs, then `:` or `=`. Scanned by hand rather than with a
/// capturing regex: this runs on every reply, and the regex cost more than the rest of parsing.
pub(super) fn binary_markers(clean: &str) -> Vec<Marker<'_>> {
    clean.split('\n').filter_map(marker).collect()
}

fn marker(line: &str) -> Option<Marker<'_>> {
    let blank = [' ', '\t'];
    let mut s = line.trim_start_matches(blank);
    loop {
        for key in MARKER_KEYS {
            if let Some(after) = s.strip_prefix(key)
                && let Some(rest) = after.trim_start_matches(blank).strip_prefix([':', '='])
            {
                return Some(Marker { key, rest });
            }
        }
        let after = MARKER_PREFIXES.iter().find_map(|p| {
            s.strip_prefix(p)
                .filter(|r| r.starts_with(blank))
                .map(|r| r.trim_start_matches(blank))
        })?;
        s = after;
    }
}

/// The text up to the first clause-ending punctuation (`.` `,` `;` `!` `?` before a space).
pub(super) fn first_clause(s: &str) -> &str {
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if matches!(c, '.' | ',' | ';' | '!' | '?')
            && it.peek().is_none_or(|(_, n)| n.is_whitespace())
        {
            return &s[..i];
        }
    }
    s
}
