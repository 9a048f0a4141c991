//! Multiple choice: the options a question lists, an answer resolved to an option letter (by
//! letter or by the option's text), and the verdict when the reference is an option.

use std::sync::LazyLock;

use regex::Regex;

use super::normal::{clip, normalize, tidy};
use super::text;
use super::verdict::RulesVerdict::{self, Correct, Incorrect, Unsure};

static OPTION_LINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?m)^[ \t]*(?:\(([A-Ja-j])\)|([A-Ja-j])[.):])[ \t]+(\S[^\n]*?)[ \t]*$"));
static INLINE_OPTION: LazyLock<Regex> = LazyLock::new(|| re(r"\(([A-J])\)"));
static LETTER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?is)^(?:(?:option|choice)\s+)?(?:\(([a-j])\)|([a-j])(?:[.):]|$))\s*(.*)$")
});

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

/// Options listed in the question: one per line (`A. x`, `(B) x`, `C) x`), else inline
/// (`(A) x (B) y`). Fewer than two options means none.
fn options(question: &str) -> Vec<(char, String)> {
    let mut out: Vec<(char, String)> = Vec::new();
    for c in OPTION_LINE.captures_iter(question) {
        let letter = c
            .get(1)
            .or(c.get(2))
            .map_or('?', |m| m.as_str().chars().next().unwrap_or('?'));
        let letter = letter.to_ascii_uppercase();
        if !out.iter().any(|(l, _)| *l == letter) {
            out.push((letter, c[3].to_string()));
        }
    }
    if out.len() < 2 {
        out.clear();
        let marks: Vec<_> = INLINE_OPTION.captures_iter(question).collect();
        for (k, c) in marks.iter().enumerate() {
            let m = c.get(0).unwrap();
            let end = marks
                .get(k + 1)
                .map_or(question.len(), |n| n.get(0).unwrap().start());
            let text = question[m.end()..end].lines().next().unwrap_or("").trim();
            let letter = c[1].chars().next().unwrap_or('?');
            if !text.is_empty() && !out.iter().any(|(l, _)| *l == letter) {
                out.push((letter, tidy(text)));
            }
        }
    }
    if out.len() < 2 { Vec::new() } else { out }
}

/// An option letter the answer ends on (`so B`, `I would say C`, `the answer is (D)`).
static TRAILING_LETTER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:so|thus|hence|therefore|say|choose|pick|select|option|choice|is|answer)\s*[:=]?\s*\(?([A-J])\)?$",
    )
});
/// Two or more option letters joined (`C or A`, `A/B`, `B and D`).
static SEVERAL_LETTERS: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^\(?([a-j])\)?\s*(?:or|and|/|,|&)\s*\(?([a-j])\)?$"));

/// Resolves an answer to an option letter: `Ok(letter)`, `Err(reason)` when it contradicts
/// itself, `None` when it is not an option.
fn option_of(question: &str, ans: &str, opts: &[(char, String)]) -> Option<Result<char, String>> {
    // The options' own text is in the question: an answer naming one is read against the
    // question's stem.
    let stem = [OPTION_LINE.find(question), INLINE_OPTION.find(question)]
        .into_iter()
        .flatten()
        .map(|m| m.start())
        .min()
        .map_or(question, |at| &question[..at]);
    let text_of = |l: char| opts.iter().find(|(o, _)| *o == l).map(|(_, t)| t.as_str());
    if let Some(c) = LETTER.captures(ans) {
        let letter = c
            .get(1)
            .or(c.get(2))?
            .as_str()
            .chars()
            .next()?
            .to_ascii_uppercase();
        let rest = tidy(&c[3]);
        if let Some(t) = text_of(letter)
            && !rest.is_empty()
            && normalize(t) != normalize(&rest)
        {
            return Some(Err(format!(
                "\"{ans}\" names option {letter}, but option {letter} is \"{t}\""
            )));
        }
        return Some(Ok(letter));
    }
    if let Some(c) = TRAILING_LETTER.captures(ans.trim_end_matches(['.', '!'])) {
        let letter = c[1].chars().next()?;
        if opts.is_empty() || text_of(letter).is_some() {
            return Some(Ok(letter));
        }
    }
    let n = normalize(ans);
    let nw: Vec<&str> = n.split(' ').filter(|w| !w.is_empty()).collect();
    let matches = |t: &str| {
        let tn = normalize(t);
        let tw: Vec<&str> = tn.split(' ').filter(|w| !w.is_empty()).collect();
        !nw.is_empty()
            && !tw.is_empty()
            && ((tw.len() == nw.len() && tw.iter().zip(&nw).all(|(a, b)| text::same_word(a, b)))
                || text::short_name(t, &tw, &nw)
                || text::names_reference(stem, &tw, ans))
    };
    let mut hits = opts.iter().filter(|(_, t)| matches(t));
    match (hits.next(), hits.next()) {
        (Some((l, _)), None) => Some(Ok(*l)),
        _ => None,
    }
}

pub(super) fn multiple_choice(question: &str, r: &str, p: &str) -> Option<RulesVerdict> {
    let opts = options(question);
    let (rl, pl) = (option_of(question, r, &opts), option_of(question, p, &opts));
    if let (Some(Ok(_)), None) = (&rl, &pl)
        && let Some(c) = SEVERAL_LETTERS.captures(p)
        && !c[1].eq_ignore_ascii_case(&c[2])
    {
        return Some(Incorrect(format!(
            "the prediction \"{p}\" names several options"
        )));
    }
    match (rl, pl) {
        (None, None) => None,
        (None, Some(_)) => Some(Unsure(format!(
            "the prediction \"{p}\" is an option but the reference \"{r}\" matches none"
        ))),
        (Some(Err(e)), _) | (Some(Ok(_)), Some(Err(e))) => Some(Unsure(e)),
        (Some(Ok(rl)), None) => Some(Unsure(format!(
            "the reference is option {rl} but the prediction \"{}\" names no option",
            clip(p)
        ))),
        (Some(Ok(rl)), Some(Ok(pl))) if rl == pl => {
            Some(Correct(format!("multiple choice: {pl} = {rl}")))
        }
        (Some(Ok(rl)), Some(Ok(pl))) => Some(Incorrect(format!(
            "multiple choice: predicted {pl}, reference {rl}"
        ))),
    }
}
