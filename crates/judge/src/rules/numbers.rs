//! Numbers in answers that are not a bare number: number words (`forty-five`), numbers inside
//! a sentence (`9 times 8 is 72`), units (`40 km/h`, `15 dollars`), percent words, and the
//! signs that make a number unsafe to read (hedges, negations, inequalities, powers).

use std::sync::LazyLock;

use regex::Regex;

use super::normal::clip;
use super::text::{has_hedge, has_negation};

/// A number found in text, with whether it carried a `%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num {
    pub value: f64,
    pub percent: bool,
}

const UNITS: [(&str, u64); 20] = [
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
];
const TENS: [(&str, u64); 8] = [
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];
const SCALES: [(&str, u64); 4] = [
    ("hundred", 100),
    ("thousand", 1_000),
    ("million", 1_000_000),
    ("billion", 1_000_000_000),
];

fn word_value(w: &str) -> Option<(u64, bool)> {
    UNITS
        .iter()
        .chain(&TENS)
        .find(|(name, _)| *name == w)
        .map(|(_, v)| (*v, false))
        .or_else(|| {
            SCALES
                .iter()
                .find(|(name, _)| *name == w)
                .map(|(_, v)| (*v, true))
        })
}

/// The text with every run of number words (`forty-five`, `one hundred and five`, `twenty
/// four`) replaced by its digits. `and` joins a run only after `hundred` or a larger scale.
pub fn words_to_digits(text: &str) -> String {
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z]+").expect("regex"));
    let lower = text.to_lowercase();
    let words: Vec<(usize, usize, &str)> = WORD
        .find_iter(&lower)
        .map(|m| (m.start(), m.end(), m.as_str()))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < words.len() {
        if word_value(words[i].2).is_none_or(|(_, scale)| scale) {
            i += 1;
            continue;
        }
        // A run: number words separated only by spaces or hyphens (and `and` after a scale).
        let (start, mut end) = (words[i].0, words[i].1);
        let (mut total, mut current) = (0u64, 0u64);
        let mut j = i;
        let mut last_scale = false;
        loop {
            let (_, w1, w) = words[j];
            if w == "and" && last_scale {
                // only when a number word follows
            } else if let Some((v, scale)) = word_value(w) {
                if scale {
                    if v == 100 {
                        current = current.max(1) * 100;
                    } else {
                        total += current.max(1) * v;
                        current = 0;
                    }
                } else {
                    current += v;
                }
                last_scale = scale;
                end = w1;
            }
            let Some(&(n0, _, next)) = words.get(j + 1) else {
                break;
            };
            let gap = &lower[words[j].1..n0];
            let joins = gap.chars().all(|c| c == ' ' || c == '-')
                && (word_value(next).is_some()
                    || (next == "and"
                        && last_scale
                        && words
                            .get(j + 2)
                            .is_some_and(|(_, _, w)| word_value(w).is_some())));
            if !joins {
                break;
            }
            j += 1;
        }
        out.push_str(&text[copied..start]);
        out.push_str(&(total + current).to_string());
        copied = end;
        i = j + 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// `25 percent` / `25 per cent` as `25%`.
pub fn percent_words(text: &str) -> String {
    static PERCENT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)(\d)\s*(?:percent|per cent)\b").expect("regex"));
    PERCENT.replace_all(text, "$1%").into_owned()
}

/// Every number in the text: an optional sign (when nothing alphanumeric is glued before it),
/// digits with optional thousands commas and decimals, an optional `%`. A number glued to a
/// letter before it (`CO2`, `K2`) is not one, nor one in scientific notation (`1e3`).
pub fn numbers_in(text: &str) -> Vec<Num> {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[-\u{2212}]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?").expect("regex")
    });
    let mut out = Vec::new();
    for m in NUMBER.find_iter(text) {
        let s = m.as_str();
        if !s.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let before = text[..m.start()].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_') {
            continue;
        }
        let after = &text[m.end()..];
        let mut rest = after.chars();
        if let (Some(e), Some(d)) = (rest.next(), rest.next())
            && matches!(e, 'e' | 'E')
            && (d.is_ascii_digit() || d == '-' || d == '+')
        {
            continue;
        }
        let (body, percent) = match s.strip_suffix('%') {
            Some(b) => (b, true),
            None => (s, false),
        };
        let body = body.replace(['\u{2212}'], "-").replace(',', "");
        if let Ok(value) = body.parse::<f64>() {
            out.push(Num { value, percent });
        }
    }
    out
}

/// Equal within a relative 1e-9; `50%` also equals `0.5`.
pub fn equal(a: Num, b: Num) -> bool {
    let eq = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    eq(a.value, b.value)
        || (a.percent && !b.percent && eq(a.value / 100.0, b.value))
        || (b.percent && !a.percent && eq(a.value, b.value / 100.0))
}

/// Unit words the rules know, so that `5 km` is never taken for `5 m`.
const UNIT_WORDS: &[&str] = &[
    "mm",
    "cm",
    "m",
    "km",
    "metre",
    "meter",
    "metres",
    "meters",
    "kilometre",
    "kilometer",
    "inch",
    "inches",
    "ft",
    "foot",
    "feet",
    "yard",
    "mile",
    "miles",
    "g",
    "kg",
    "mg",
    "gram",
    "kilogram",
    "lb",
    "pound",
    "oz",
    "ounce",
    "l",
    "ml",
    "litre",
    "liter",
    "s",
    "sec",
    "second",
    "seconds",
    "min",
    "minute",
    "minutes",
    "h",
    "hr",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "mph",
    "kph",
    "c",
    "f",
    "k",
    "celsius",
    "fahrenheit",
    "kelvin",
    "degree",
    "degrees",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "euro",
    "euros",
];

/// Words that change a number's scale (`25 cents` of a dollar, `3 thousand`).
const SCALE_WORDS: &[&str] = &[
    "cent", "cents", "percent", "thousand", "million", "billion", "trillion", "dozen", "hundred",
    "k", "bn",
];

/// The unit words of a text (`$` counts as `dollar`), singular.
fn units(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out: Vec<String> = lower
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| UNIT_WORDS.contains(w))
        .map(|w| {
            w.strip_suffix('s')
                .filter(|s| s.len() > 1)
                .unwrap_or(w)
                .to_string()
        })
        .collect();
    if text.contains('$') {
        out.push("dollar".into());
    }
    out.sort();
    out.dedup();
    out
}

fn scales(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out: Vec<String> = lower
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| SCALE_WORDS.contains(w))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A reference that is one number, perhaps with a unit or a hedge word (`12 cm`, `About
/// 300,000 km/s`, `$15`): the number and the reference's text.
pub fn numeric_reference(reference: &str) -> Option<Num> {
    let text = percent_words(&words_to_digits(reference));
    let nums = numbers_in(&text);
    let words = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .count();
    (nums.len() == 1 && words <= 4 && !has_hedge(&text) && !has_negation(&text)).then(|| nums[0])
}

/// What a prediction that is not a bare number says about a numeric reference.
pub enum Reading {
    /// Its number equals the reference; the reason.
    Equal(String),
    /// Its only number differs, in the reference's units; the reason.
    Different(String),
    /// Nothing safe to say; why.
    Unsure(String),
}

/// Reads the numbers of `prediction` against the reference's number `r` (whose text is
/// `reference`). The number read is the last one (after the last `=`, when there is one); it
/// must carry no unit the reference does not (`5 km` against `5 m` is unsure), and no word that
/// changes its scale.
pub fn read_against(reference: &str, r: Num, prediction: &str) -> Reading {
    let text = percent_words(&words_to_digits(prediction));
    if text.contains(['<', '>', '\u{2264}', '\u{2265}', '\u{2260}', '^']) {
        return Reading::Unsure(
            "the answer holds an inequality, a power or markup around its numbers".into(),
        );
    }
    let tail = text.rsplit_once('=').map_or(text.as_str(), |(_, rhs)| rhs);
    let nums = numbers_in(tail);
    let Some(&last) = nums.last() else {
        return Reading::Unsure(format!(
            "cannot compare a number with a non-number: \"{}\" vs \"{reference}\"",
            clip(prediction)
        ));
    };
    if has_negation(&text) {
        return Reading::Unsure(
            "the answer negates something; its number is not safe to read".into(),
        );
    }
    let mut distinct: Vec<Num> = Vec::new();
    for n in &nums {
        if !distinct.iter().any(|d| equal(*d, *n)) {
            distinct.push(*n);
        }
    }
    if has_hedge(&text) || hedged_range(&text) {
        return if distinct.len() > 1 {
            Reading::Different(format!(
                "the answer hedges between several numbers: \"{}\"",
                clip(prediction)
            ))
        } else {
            Reading::Unsure("the answer hedges".into())
        };
    }
    let (ru, pu) = (units(reference), units(&text));
    let foreign_units = pu.iter().any(|u| !ru.contains(u));
    let (rs, ps) = (scales(reference), scales(&text));
    let new_scale = ps.iter().any(|s| !rs.contains(s));
    if equal(last, r) {
        if (foreign_units && !ru.is_empty()) || new_scale {
            return Reading::Unsure(format!(
                "the number matches but the units differ: \"{}\" vs \"{reference}\"",
                clip(prediction)
            ));
        }
        return Reading::Equal(format!(
            "the answer's number {} equals the reference {reference}",
            fmt(last)
        ));
    }
    if distinct.len() == 1 && !foreign_units && !new_scale {
        return Reading::Different(format!(
            "the answer's only number {} differs from the reference {reference}",
            fmt(last)
        ));
    }
    Reading::Unsure(format!(
        "the answer's numbers do not settle it against {reference}: \"{}\"",
        clip(prediction)
    ))
}

/// `12-15`, `12 to 15`, `between 12 and 15`.
fn hedged_range(text: &str) -> bool {
    static RANGE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\d\s*(?:\u{2013}|to)\s*\d|\d-\d|\bbetween\b").expect("regex")
    });
    RANGE.is_match(text)
}

fn fmt(n: Num) -> String {
    let v = if n.value.fract() == 0.0 && n.value.abs() < 1e15 {
        format!("{}", n.value as i64)
    } else {
        format!("{}", n.value)
    };
    if n.percent { format!("{v}%") } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_words_become_digits() {
        for (text, want) in [
            ("forty-five", "45"),
            ("six", "6"),
            ("one hundred", "100"),
            ("one hundred twenty-one", "121"),
            ("one hundred and five apples", "105 apples"),
            ("Twenty four.", "24."),
            ("About fifty-two.", "About 52."),
            ("three thousand two hundred", "3200"),
            ("You pay ten dollars.", "You pay 10 dollars."),
            ("no numbers here", "no numbers here"),
            ("rock and roll", "rock and roll"),
            ("one and two", "1 and 2"),
            ("a hundred", "a hundred"),
        ] {
            assert_eq!(words_to_digits(text), want, "{text:?}");
        }
    }

    #[test]
    fn numbers_are_found_but_not_inside_words_or_exponents() {
        let values = |t: &str| numbers_in(t).iter().map(|n| n.value).collect::<Vec<_>>();
        assert_eq!(values("3 bags × 4 apples = 12"), vec![3.0, 4.0, 12.0]);
        assert_eq!(values("CO2 and K2 and H2O"), Vec::<f64>::new());
        assert_eq!(values("1e3"), Vec::<f64>::new());
        assert_eq!(values("it costs $1,000.50"), vec![1000.5]);
        assert_eq!(values("\u{2212}2 or -3"), vec![-2.0, -3.0]);
        assert_eq!(values(".875"), vec![0.875]);
        assert!(numbers_in("25%")[0].percent);
        assert_eq!(percent_words("25 percent"), "25%");
    }

    #[test]
    fn predictions_are_read_against_a_numeric_reference() {
        let kind = |r: &str, p: &str| {
            let n = numeric_reference(r).unwrap();
            match read_against(r, n, p) {
                Reading::Equal(_) => "equal",
                Reading::Different(_) => "different",
                Reading::Unsure(_) => "unsure",
            }
        };
        for (r, p, want) in [
            ("72", "9 times 8 is 72.", "equal"),
            ("40", "40 km/h", "equal"),
            ("$15", "15 dollars", "equal"),
            ("12 cm", "12", "equal"),
            ("5 m", "5 km", "unsure"),
            ("$0.25", "25 cents", "unsure"),
            ("12", "He has 7 apples.", "different"),
            ("12", "12 or 13", "different"),
            ("15", "I think it is 15, or maybe 16.", "different"),
            ("42", "It is not 42; it is 48.", "unsure"),
            ("3", "x >= 3", "unsure"),
            ("300000", "Roughly 3 × 10^8 metres per second.", "unsure"),
            ("About 300,000 km/s", "About 300 km/s", "different"),
            ("140", "20 × 7 = 140 pages", "equal"),
            ("25%", "25 percent", "equal"),
            ("4", "four", "equal"),
            ("4", "between 3 and 5", "different"),
            ("3000", "3 thousand", "unsure"),
            ("1969", "July 1969", "equal"),
        ] {
            assert_eq!(kind(r, p), want, "{r:?} vs {p:?}");
        }
        assert!(numeric_reference("Paris").is_none());
        assert!(numeric_reference("12 or 13").is_none());
    }
}
