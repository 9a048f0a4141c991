//! Turns a judge's reply text into a three-state verdict: a grade, or [`Unscored`] with a reason.
//!
//! Every parser first treats an empty reply as [`UnscoredReason::EmptyResponse`], then reads a
//! JSON object (plain, fenced or embedded; this is what the `rules` judge sends), then the explicit
//! marker the prompt asked for, and only then falls back to looser reading. A refusal is reported
//! only when no explicit marker or JSON was found, so "I'm sorry ... Verdict: no" still grades.
//! A JSON `"verdict": "unsure"` becomes [`UnscoredReason::Ambiguous`] with its `reason` as detail.
//!
//! Decisions on ambiguous cases:
//! - Binary: a `Verdict:` / `Judgement:` / `Decision:` / `Grade:` / `Result:` / `Score:` line wins
//!   over an `Answer:` line, which wins over free text. In a marker line only the first clause is
//!   read (`Verdict: yes, though the reasoning is wrong` is yes) and within it the last verdict
//!   word wins (`Verdict: yes and no` is no). In free text the last verdict word wins. As asked,
//!   an `Answer:` line beats free text (`Answer: 1` then "it is wrong" is 1).
//! - Only standalone tokens count: `10`, `0.1`, `1st`, `1/2`, `yes/no`, `yesterday`, `nonsense`,
//!   `know` are never verdicts. `1.0` / `0.0` are read as 1 / 0. A 0/1 must stand alone between
//!   punctuation (`1`, `Score: 0.`), and in free text a number opening a line that goes on
//!   (`1. The answer ...`) is a list item, not a verdict. `yes` / `no` must open or close a
//!   clause (so "no errors" is not a verdict); in free text `right` / `true` / `false` must be
//!   the whole clause.
//! - `correct`, `right`, `true` preceded in the same clause by a negation (`not`, `never`,
//!   `cannot`, any `n't`) mean false; a negated negative word (`not wrong`) is ignored. `correct`
//!   or `right` followed by a noun (`the correct answer is 5`) is an adjective, not a verdict.
//! - Score: the last `Score:` / `Rating:` / `Grade:` number wins; `7/10` and `7 out of 10` read
//!   as 7 whatever the denominator. Without a marker the last standalone number is used; when it is
//!   out of range it is `OutOfRange` if the whole reply is that number, else `Unparseable`.
//! - Pairwise: `[[A]]`, `[[B]]`, `[[C]]` / `[[TIE]]` / `[[DRAW]]`; repeating the same one is fine,
//!   but two different bracketed verdicts anywhere in the reply are `Ambiguous` (even when the
//!   judge merely quotes the instructions). Without brackets or JSON nothing else is read
//!   ("Winner: A" is `Unparseable`).

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// The version of these parsers, part of every verdict cache key: change it whenever a change
/// here could read a stored answer differently, so that cached verdicts are judged afresh.
pub const PARSER_VERSION: &str = "parse-v1";

/// Why a reply produced no grade. The labels are bounded, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnscoredReason {
    EmptyResponse,
    Refusal,
    Unparseable,
    Ambiguous,
    OutOfRange,
}

impl UnscoredReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            UnscoredReason::EmptyResponse => "empty_response",
            UnscoredReason::Refusal => "refusal",
            UnscoredReason::Unparseable => "unparseable",
            UnscoredReason::Ambiguous => "ambiguous",
            UnscoredReason::OutOfRange => "out_of_range",
        }
    }
}

/// A reply that could not be graded: a bounded reason and a human sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Unscored {
    pub reason: UnscoredReason,
    pub detail: String,
}

impl Unscored {
    fn new(reason: UnscoredReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Unscored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

/// The preferred response of a pairwise comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    A,
    B,
    Tie,
}

use UnscoredReason::*;

static FENCED_JSON: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)```[A-Za-z]*\s*(\{.*?\})\s*```"));
static REFUSAL: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\b(?:i|we)(?:'m|'re| am| are)?\s+",
        r"(?:can't|cannot|can not|won't|will not|unable to|not able to)\s+",
        r"(?:help (?:you|with)|assist|comply|fulfil|fulfill|provide|engage|evaluate|grade|judge",
        r"|do that|continue)",
    ))
});
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
struct Marker<'a> {
    key: &'static str,
    rest: &'a str,
}

/// The verdict lines of a prepared (lowercased) reply, in order. A line is one when, after
/// spaces or tabs, any of [`MARKER_PREFIXES`] each followed by spaces or tabs, it has one of
/// [`MARKER_KEYS`], optional spaces or tabs, then `:` or `=`. Scanned by hand rather than with a
/// capturing regex: this runs on every reply, and the regex cost more than the rest of parsing.
fn binary_markers(clean: &str) -> Vec<Marker<'_>> {
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

static SCORE_MARKER: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:score|rating|grade)\b[ \t]*[:=]"));
static SCORE_VALUE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:score|rating|grade)\b[ \t]*[:=][ \t]*\[*[ \t]*(-?\d+(?:\.\d+)?)"));
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(-?\d+(?:\.\d+)?)(?:[ \t]*(?:/|out of)[ \t]*\d+(?:\.\d+)?)?"));
static PAIR_BRACKET: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\[\[\s*(a|b|c|tie|draw)\s*\]\]"));

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

/// Parses a correct/incorrect verdict; `true` means the graded answer is correct.
pub fn parse_binary(text: &str) -> Result<bool, Unscored> {
    let clean = prepare(text)?;
    if let Some(obj) = json_object(text) {
        return binary_from_json(&obj);
    }
    let markers = binary_markers(&clean);
    for tier_answer in [false, true] {
        for m in markers
            .iter()
            .rev()
            .filter(|m| (m.key == "answer") == tier_answer)
        {
            if let Some(v) = last_verdict(first_clause(m.rest), true) {
                return Ok(v);
            }
        }
    }
    if REFUSAL.is_match(&clean) {
        return Err(refused(text));
    }
    last_verdict(&clean, false).ok_or_else(|| no_binary(text))
}

/// Parses a numeric score that must lie in `[min, max]`.
pub fn parse_score(text: &str, min: f64, max: f64) -> Result<f64, Unscored> {
    let clean = prepare(text)?;
    let in_range = |v: f64| {
        if v >= min && v <= max {
            Ok(v)
        } else {
            fail(OutOfRange, format!("score {v} is outside [{min}, {max}]"))
        }
    };
    if let Some(obj) = json_object(text) {
        for key in ["score", "rating", "grade", "value"] {
            match obj.get(key) {
                Some(Value::Number(n)) => return in_range(n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::String(s)) => return parse_score(s, min, max),
                _ => {}
            }
        }
        return Err(unsure_or(&obj, "the JSON reply has no score field"));
    }
    if let Some(c) = SCORE_VALUE.captures_iter(&clean).last() {
        return in_range(c[1].parse().unwrap_or(f64::NAN));
    }
    if SCORE_MARKER.is_match(&clean) {
        return fail(
            Unparseable,
            format!("the score line has no number: {}", quote(text)),
        );
    }
    if REFUSAL.is_match(&clean) {
        return Err(refused(text));
    }
    let last = NUMBER
        .captures_iter(&clean)
        .filter(|c| standalone(&clean, c.get(0).unwrap().range()))
        .last();
    let Some(c) = last else {
        return fail(Unparseable, format!("no score found in {}", quote(text)));
    };
    let v: f64 = c[1].parse().unwrap_or(f64::NAN);
    match in_range(v) {
        Err(_) if &c[0] != clean.trim() => {
            let range = format!("[{min}, {max}]");
            fail(
                Unparseable,
                format!("no score line; the last number, {v}, is outside {range}"),
            )
        }
        r => r,
    }
}

/// Parses a pairwise preference: `[[A]]`, `[[B]]`, or a tie (`[[C]]`, `[[TIE]]`).
pub fn parse_pairwise(text: &str) -> Result<Winner, Unscored> {
    let clean = prepare(text)?;
    if let Some(obj) = json_object(text) {
        for key in ["winner", "verdict", "better", "preferred"] {
            if let Some(Value::String(s)) = obj.get(key)
                && let Some(w) = winner_word(s)
            {
                return Ok(w);
            }
        }
        return Err(unsure_or(&obj, "the JSON reply has no winner field"));
    }
    let mut found: Vec<Winner> = Vec::new();
    for c in PAIR_BRACKET.captures_iter(text) {
        let w = winner_word(&c[1]).unwrap_or(Winner::Tie);
        if !found.contains(&w) {
            found.push(w);
        }
    }
    match found.as_slice() {
        [w] => return Ok(*w),
        [_, _, ..] => {
            let names: Vec<&str> = found.iter().map(|w| bracket_name(*w)).collect();
            return fail(
                Ambiguous,
                format!("conflicting verdicts {}", names.join(" and ")),
            );
        }
        [] => {}
    }
    if REFUSAL.is_match(&clean) {
        return Err(refused(text));
    }
    fail(
        Unparseable,
        format!("no [[A]], [[B]] or [[C]] verdict in {}", quote(text)),
    )
}

fn fail<T>(reason: UnscoredReason, detail: impl Into<String>) -> Result<T, Unscored> {
    Err(Unscored::new(reason, detail))
}

fn refused(text: &str) -> Unscored {
    Unscored::new(Refusal, format!("the judge refused: {}", quote(text)))
}

/// Rejects empty replies and returns the text lowercased with markdown emphasis blanked out.
fn prepare(text: &str) -> Result<String, Unscored> {
    if text.trim().is_empty() {
        return fail(EmptyResponse, "the judge replied with nothing");
    }
    let lower = text.to_lowercase().replace(['\u{2018}', '\u{2019}'], "'");
    Ok(lower.replace(['*', '_', '`', '#', '>'], " "))
}

/// Whether the reply holds a JSON object that the parsers read before anything else (the
/// structured path), as opposed to free text.
pub fn has_json_object(text: &str) -> bool {
    json_object(text).is_some()
}

/// A JSON object found as the whole reply, in a code fence, or between the first `{` and last `}`.
fn json_object(text: &str) -> Option<Map<String, Value>> {
    // Most replies are prose: no brace, no object, and no need to run the fence pattern.
    if !text.contains('{') {
        return None;
    }
    let fenced = FENCED_JSON
        .captures(text)
        .map(|c| c.get(1).unwrap().as_str());
    let embedded = text
        .find('{')
        .zip(text.rfind('}'))
        .and_then(|(a, b)| text.get(a..=b));
    [fenced, Some(text.trim()), embedded]
        .into_iter()
        .flatten()
        .find_map(|s| match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
}

const BINARY_KEYS: [&str; 6] = [
    "verdict",
    "correct",
    "is_correct",
    "result",
    "score",
    "grade",
];
/// Nouns after which `correct` / `right` is an adjective ("the correct answer is ...").
const NOUNS: &[&str] = &[
    "answer", "answers", "solution", "result", "value", "response", "option", "choice", "one",
];

fn binary_from_json(obj: &Map<String, Value>) -> Result<bool, Unscored> {
    for key in BINARY_KEYS {
        match obj.get(key) {
            Some(Value::Bool(b)) => return Ok(*b),
            Some(Value::Number(n)) => {
                return match n.as_f64() {
                    Some(1.0) => Ok(true),
                    Some(0.0) => Ok(false),
                    _ => fail(
                        Unparseable,
                        format!("the reply's {key} {n} is not a 0/1 verdict"),
                    ),
                };
            }
            Some(Value::String(s)) if !is_unsure(s) => {
                return last_verdict(&s.to_lowercase(), true).ok_or_else(|| no_binary(s));
            }
            _ => {}
        }
    }
    Err(unsure_or(obj, "the JSON reply has no verdict field"))
}

fn is_unsure(s: &str) -> bool {
    matches!(
        s.trim().to_lowercase().as_str(),
        "unsure" | "uncertain" | "unknown" | "undecided" | "ambiguous" | "cannot determine"
    )
}

/// `Ambiguous` with the JSON's reason when it says "unsure", else `Unparseable` with `fallback`.
fn unsure_or(obj: &Map<String, Value>, fallback: &str) -> Unscored {
    let unsure = obj.values().any(|v| v.as_str().is_some_and(is_unsure));
    match (unsure, obj.get("reason").and_then(Value::as_str)) {
        (true, Some(r)) if !r.trim().is_empty() => Unscored::new(Ambiguous, r.trim()),
        (true, _) => Unscored::new(Ambiguous, "the judge was unsure"),
        (false, _) => Unscored::new(Unparseable, fallback),
    }
}

fn no_binary(text: &str) -> Unscored {
    let t = text.trim();
    let detail = if t.parse::<f64>().is_ok() {
        format!("the reply \"{t}\" is not a 0/1 verdict")
    } else {
        format!("no yes/no or 0/1 verdict in {}", quote(text))
    };
    Unscored::new(Unparseable, detail)
}

/// The text up to the first clause-ending punctuation (`.` `,` `;` `!` `?` before a space).
fn first_clause(s: &str) -> &str {
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

/// A word of the reply with the clause boundaries around it.
struct Word<'a> {
    text: &'a str,
    brk_before: bool,
    brk_after: bool,
    line_start: bool,
}

/// Splits into words: `.` and `,` join digits (`0.1`, `1,000`); `/` `-` `'` join alphanumerics.
fn words(s: &str) -> Vec<Word<'_>> {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let (mut out, mut brk, mut line_start, mut i) = (Vec::<Word>::new(), true, true, 0);
    while i < cs.len() {
        let c = cs[i].1;
        if !c.is_alphanumeric() {
            if ".,;:!?\n=-()[]".contains(c) {
                brk = true;
                if let Some(w) = out.last_mut() {
                    w.brk_after = true;
                }
            }
            line_start |= c == '\n';
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < cs.len() {
            let (prev, c, next) = (cs[j - 1].1, cs[j].1, cs.get(j + 1).map_or(' ', |x| x.1));
            let joins = match c {
                '.' | ',' => prev.is_ascii_digit() && next.is_ascii_digit(),
                '/' | '-' | '\'' => next.is_alphanumeric(),
                c => c.is_alphanumeric(),
            };
            if !joins {
                break;
            }
            j += if c.is_alphanumeric() { 1 } else { 2 };
        }
        let end = cs.get(j).map_or(s.len(), |x| x.0);
        out.push(Word {
            text: &s[cs[i].0..end],
            brk_before: brk,
            brk_after: false,
            line_start,
        });
        (brk, line_start, i) = (false, false, j);
    }
    if let Some(w) = out.last_mut() {
        w.brk_after = true;
    }
    out
}

fn is_negator(w: &str) -> bool {
    matches!(
        w,
        "not" | "never" | "cannot" | "isnt" | "arent" | "wasnt" | "dont" | "doesnt" | "didnt"
    ) || w.ends_with("n't")
}

/// The last verdict word in `s`. `lenient` (inside a marker line) accepts `right` / `true` /
/// `false` anywhere in the clause and does not look for list items.
fn last_verdict(s: &str, lenient: bool) -> Option<bool> {
    let ws = words(s);
    let negated = |i: usize| {
        let mut j = i;
        while j > 0 && !ws[j].brk_before {
            j -= 1;
            if is_negator(ws[j].text) {
                return true;
            }
        }
        false
    };
    let adjective = |i: usize| {
        ws.get(i + 1)
            .is_some_and(|n| !ws[i].brk_after && NOUNS.contains(&n.text))
    };
    let mut last = None;
    for (i, w) in ws.iter().enumerate() {
        let (alone, edge) = (w.brk_before && w.brk_after, w.brk_before || w.brk_after);
        let list_item = !lenient && w.line_start && ws.get(i + 1).is_some_and(|n| !n.line_start);
        let v = match w.text {
            "incorrect" | "wrong" | "inaccurate" => (!negated(i)).then_some(false),
            "correct" if !adjective(i) => Some(!negated(i)),
            "right" | "true" | "accurate" if (lenient || alone) && !adjective(i) => {
                Some(!negated(i))
            }
            "false" if lenient || alone => Some(false),
            "yes" if edge => Some(true),
            "no" if edge => Some(false),
            "1" | "1.0" if alone && !list_item => Some(true),
            "0" | "0.0" if alone && !list_item => Some(false),
            _ => None,
        };
        last = v.or(last);
    }
    last
}

/// True when the match at `start..end` is not glued to a word (`gpt4`, `1st`) or another number.
fn standalone(s: &str, std::ops::Range { start, end }: std::ops::Range<usize>) -> bool {
    let before = s[..start].chars().next_back();
    let after = s[end..].chars().next();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-');
    let decimal_after =
        s[end..].starts_with('.') && s[end + 1..].starts_with(|c: char| c.is_ascii_digit());
    !glued(before) && !glued(after) && !decimal_after
}

fn winner_word(s: &str) -> Option<Winner> {
    let s = s.trim().to_lowercase();
    let s = s.trim_matches(|c: char| !c.is_alphanumeric());
    let s = ["response ", "assistant ", "answer ", "model "]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    match s.trim_matches(|c: char| !c.is_alphanumeric()) {
        "a" => Some(Winner::A),
        "b" => Some(Winner::B),
        "c" | "tie" | "draw" | "equal" | "both" | "a tie" => Some(Winner::Tie),
        _ => None,
    }
}

fn bracket_name(w: Winner) -> &'static str {
    match w {
        Winner::A => "[[A]]",
        Winner::B => "[[B]]",
        Winner::Tie => "[[C]]",
    }
}

/// The reply, whitespace collapsed and clipped, in quotes for a detail sentence.
fn quote(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(80) {
        Some((i, _)) => format!("\"{}…\"", &flat[..i]),
        None => format!("\"{flat}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict-line rule as a regex: the hand scan must find exactly what it finds.
    #[test]
    fn verdict_lines_match_the_regex_rule() {
        use rand::{Rng, SeedableRng};
        let rule = re(concat!(
            r"(?m)^[ \t]*(?:(?:my|the|final|overall)[ \t]+)*",
            r"(verdict|judgement|judgment|decision|grade|result|score|evaluation|correctness|answer)",
            r"[ \t]*[:=]([^\n]*)",
        ));
        let pieces = [
            "",
            " ",
            "  ",
            "\t",
            "\n",
            "\r\n",
            "my",
            "the",
            "final",
            "overall",
            "finally",
            "verdict",
            "verdicts",
            "answer",
            "answers",
            "score",
            "grade",
            "judgement",
            "judgment",
            "result",
            "evaluation",
            "correctness",
            "decision",
            ":",
            "=",
            "::",
            "correct",
            "incorrect",
            "1",
            "0",
            "yes",
            "x",
            "é",
            "theverdict",
            "my verdict",
        ];
        let glues = ["", "", " ", "\t ", "my ", "final\t", "x", "=", "\n", "é"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut found = 0;
        for _ in 0..20_000 {
            // Random pieces, and half the time a near-verdict line with random pieces mixed in.
            let mut text = String::new();
            for _ in 0..rng.random_range(0..5) {
                let segment = if rng.random_bool(0.5) {
                    let mut glue = || glues[rng.random_range(0..glues.len())];
                    let (a, b, c) = (glue(), glue(), glue());
                    let key = pieces[rng.random_range(0..pieces.len())];
                    ["\n", a, "the ", b, key, c, ":", " correct", ""]
                } else {
                    let mut pick = || pieces[rng.random_range(0..pieces.len())];
                    [pick(), pick(), pick(), pick(), pick(), pick(), "", "", ""]
                };
                text.extend(segment);
            }
            let by_rule: Vec<(String, String)> = rule
                .captures_iter(&text)
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .collect();
            let by_hand: Vec<(String, String)> = binary_markers(&text)
                .into_iter()
                .map(|m| (m.key.to_string(), m.rest.to_string()))
                .collect();
            assert_eq!(by_hand, by_rule, "in {text:?}");
            found += by_rule.len();
        }
        // The generated texts must contain verdict lines, or the comparison proves little.
        assert!(found > 1_000, "only {found} verdict lines were generated");
    }

    fn reason<T: fmt::Debug>(r: Result<T, Unscored>) -> UnscoredReason {
        r.expect_err("expected Unscored").reason
    }

    #[test]
    fn binary_verdicts() {
        let cases: &[(&str, bool)] = &[
            ("1", true),
            ("0", false),
            ("Yes", true),
            ("No", false),
            ("**Yes**", true),
            ("yes.", true),
            ("__No__", false),
            ("`1`", true),
            ("# Verdict: YES", true),
            ("The answer is correct. Yes", true),
            ("Verdict: no", false),
            ("Verdict: 1", true),
            ("Verdict: 0", false),
            ("**Final Verdict:** Yes", true),
            ("Verdict: yes, although the explanation is wrong", true),
            ("Verdict: yes and no", false),
            ("Yes and no", false),
            ("The answer is correct. Verdict: no", false),
            ("Verdict: no\nOn reflection the answer is correct.", false),
            ("Incorrect.", false),
            ("Correct", true),
            ("Score: 0. The 1st step is wrong", false),
            ("The response is not correct.", false),
            ("The response isn't correct.", false),
            ("The response isn\u{2019}t correct.", false),
            ("I don't think the answer is correct", false),
            ("It is not wrong, and it is correct.", true),
            ("The correct answer is 5, so the response is wrong.", false),
            ("The model's answer matches the reference. True", true),
            ("False", false),
            ("Yesterday's data aside, the answer is wrong.", false),
            ("1.0", true),
            ("0.0", false),
            (
                "1. The final answer matches\n2. Units are right\nVerdict: 0",
                false,
            ),
            ("The reasoning has no errors. Yes", true),
            (
                "I'm sorry, but the answer is incorrect.\nVerdict: no",
                false,
            ),
            ("Answer: yes", true),
            ("Result: the model is right", true),
            ("Is the answer correct? No.", false),
            ("Answer: 42\nVerdict: no", false),
            ("```json\n{\"verdict\": \"yes\"}\n```", true),
            ("{\"verdict\":\"no\"}", false),
            (
                "{\"verdict\":\"correct\",\"reason\":\"numeric match: 4 = 4.0\"}",
                true,
            ),
            (
                "{\"verdict\":\"incorrect\",\"reason\":\"numeric mismatch\"}",
                false,
            ),
            ("{\"correct\": true}", true),
            ("{\"result\": 1}", true),
            ("{\"score\": 0}", false),
            ("Here is my grading: {\"is_correct\": false}", false),
        ];
        for (text, want) in cases {
            assert_eq!(parse_binary(text), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn binary_unscored() {
        let cases: &[(&str, UnscoredReason)] = &[
            ("", EmptyResponse),
            ("   \n\t", EmptyResponse),
            ("10", Unparseable),
            ("0.1", Unparseable),
            ("1/2", Unparseable),
            ("1st", Unparseable),
            ("Verdict: 10", Unparseable),
            ("Result: the model computes 1 + 1 = 2", Unparseable),
            ("yes/no", Unparseable),
            ("That is nonsense, you know.", Unparseable),
            ("The answer mentions the capital of France.", Unparseable),
            ("There were no issues", Unparseable),
            ("1. Everything checks out\n2. Units match", Unparseable),
            ("I'm sorry, but I can't help with that.", Refusal),
            ("I cannot assist with this request", Refusal),
            ("No, I can't help with that.", Refusal),
            (
                "{\"verdict\":\"unsure\",\"reason\":\"free-form answer\"}",
                Ambiguous,
            ),
            ("{\"score\": 7}", Unparseable),
            ("{\"foo\": 1}", Unparseable),
        ];
        for (text, want) in cases {
            assert_eq!(reason(parse_binary(text)), *want, "{text:?}");
        }
        let e = parse_binary("10").unwrap_err();
        assert_eq!(e.detail, "the reply \"10\" is not a 0/1 verdict");
        let e = parse_binary("{\"verdict\":\"unsure\",\"reason\":\"long free-form answer\"}")
            .unwrap_err();
        assert_eq!(e.detail, "long free-form answer");
    }

    #[test]
    fn scores() {
        let cases: &[(&str, f64)] = &[
            ("Score: 7", 7.0),
            ("Score: 7/10", 7.0),
            ("**Score:** 9 out of 10", 9.0),
            ("8.5", 8.5),
            ("Score: 3\nOn reflection, Score: 6", 6.0),
            ("Rating: [[4]]", 4.0),
            ("{\"score\": 7}", 7.0),
            ("{\"score\": 10.0, \"reason\":\"exact match\"}", 10.0),
            ("```json\n{\"score\": 2}\n```", 2.0),
            ("{\"score\": \"5/10\"}", 5.0),
            ("The answer is decent, I'd give it 6 out of 10.", 6.0),
            ("Step 1 is fine; gpt4 would say 5.", 5.0),
            ("Score: 1", 1.0),
            ("Score: 10.", 10.0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_score(text, 1.0, 10.0), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn scores_unscored() {
        let cases: &[(&str, UnscoredReason)] = &[
            ("", EmptyResponse),
            (" ", EmptyResponse),
            ("Score: 11", OutOfRange),
            ("Score: 0", OutOfRange),
            ("11", OutOfRange),
            ("{\"score\": 42}", OutOfRange),
            ("The reply cites data from 2023.", Unparseable),
            ("Score: N/A", Unparseable),
            ("Good answer overall.", Unparseable),
            ("I'm sorry, I cannot evaluate this response.", Refusal),
            (
                "{\"verdict\":\"unsure\",\"reason\":\"no reference answer\"}",
                Ambiguous,
            ),
            ("{\"comment\": \"fine\"}", Unparseable),
        ];
        for (text, want) in cases {
            assert_eq!(reason(parse_score(text, 1.0, 10.0)), *want, "{text:?}");
        }
        assert_eq!(
            parse_score("Score: 11", 1.0, 10.0).unwrap_err().detail,
            "score 11 is outside [1, 10]"
        );
    }

    #[test]
    fn pairwise() {
        let cases: &[(&str, Winner)] = &[
            ("[[A]]", Winner::A),
            ("Response B is more accurate.\n[[B]]", Winner::B),
            ("[[C]]", Winner::Tie),
            ("[[TIE]]", Winner::Tie),
            ("[[tie]]", Winner::Tie),
            ("**[[ a ]]**", Winner::A),
            ("[[A]] ... as said, [[A]]", Winner::A),
            ("{\"winner\":\"A\"}", Winner::A),
            ("{\"winner\":\"B\",\"reason\":\"A is wrong\"}", Winner::B),
            ("{\"winner\":\"tie\"}", Winner::Tie),
            ("```json\n{\"winner\": \"Response B\"}\n```", Winner::B),
        ];
        for (text, want) in cases {
            assert_eq!(parse_pairwise(text), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn pairwise_unscored() {
        let cases: &[(&str, UnscoredReason)] = &[
            ("", EmptyResponse),
            ("\n", EmptyResponse),
            ("[[A]] no wait [[B]]", Ambiguous),
            ("[[A]] or [[C]]", Ambiguous),
            ("Both responses are fine.", Unparseable),
            ("Winner: Response A", Unparseable),
            ("[A]", Unparseable),
            ("I can't help with that request.", Refusal),
            (
                "{\"verdict\":\"unsure\",\"reason\":\"both unsure\"}",
                Ambiguous,
            ),
            ("{\"winner\":\"D\"}", Unparseable),
        ];
        for (text, want) in cases {
            assert_eq!(reason(parse_pairwise(text)), *want, "{text:?}");
        }
    }

    #[test]
    fn labels_and_words() {
        let labels: Vec<_> = [EmptyResponse, Refusal, Unparseable, Ambiguous, OutOfRange]
            .iter()
            .map(UnscoredReason::as_str)
            .collect();
        assert_eq!(
            labels,
            [
                "empty_response",
                "refusal",
                "unparseable",
                "ambiguous",
                "out_of_range"
            ]
        );
        let w: Vec<_> = words("0.1, 1st 1,000 isn't yes/no.")
            .into_iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(w, ["0.1", "1st", "1,000", "isn't", "yes/no"]);
    }
}
