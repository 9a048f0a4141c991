//! Numbers compared: two plain numbers (`4` = `4.00`, `50%` = `0.5`), or a prediction read for
//! its number against a numeric reference.

use std::sync::LazyLock;

use regex::Regex;

use super::numbers;
use super::verdict::RulesVerdict::{self, Correct, Incorrect, Unsure};

static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$").expect("valid regex")
});
static FRACTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([-+]?\d+)/(\d+)$|^\\[dt]?frac\{([-+]?\d+)\}\{(\d+)\}$").expect("valid regex")
});

/// Numbers: both bare numbers, or a numeric reference against any prediction. `None` when the
/// reference is no number and the prediction is not one either.
pub(super) fn numeric(r: &str, p: &str) -> Option<RulesVerdict> {
    match (parse_number(r), parse_number(p)) {
        (Some(rv), Some(pv)) if numbers_equal(rv, pv) => {
            Some(Correct(format!("numeric match: {p} = {r}")))
        }
        (Some(_), Some(_)) => Some(Incorrect(format!("numeric mismatch: {p} vs reference {r}"))),
        (Some((v, percent)), None) => Some(in_words(r, numbers::Num { value: v, percent }, p)),
        (None, pv) => match numbers::numeric_reference(r) {
            Some(n) => Some(in_words(r, n, p)),
            None if pv.is_some() => Some(Unsure(format!(
                "cannot compare a number with a non-number: \"{p}\" vs \"{r}\""
            ))),
            None => None,
        },
    }
}

/// A prediction read for its number against a numeric reference.
fn in_words(r: &str, n: numbers::Num, p: &str) -> RulesVerdict {
    match numbers::read_against(r, n, p) {
        numbers::Reading::Equal(why) => Correct(why),
        numbers::Reading::Different(why) => Incorrect(why),
        numbers::Reading::Unsure(why) => Unsure(why),
    }
}

/// A plain number: `4`, `-3`, `4.00`, `1,000`, `$5`, `50%`, `1/2`, `\frac{1}{2}`, or the last side
/// of an equation (`x = 3`); the flag is `%`.
fn parse_number(s: &str) -> Option<(f64, bool)> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let t = match t.rsplit_once('=') {
        Some((lhs, _)) if lhs.contains(['<', '>', '!']) => return None,
        Some((_, rhs)) => rhs,
        None => &t,
    };
    let t = t
        .replace('\u{2212}', "-")
        .replace("\\%", "%")
        .replace("\\$", "$");
    let t = t.strip_prefix('$').unwrap_or(&t);
    let (t, pct) = match t.strip_suffix('%') {
        Some(x) => (x, true),
        None => (t, false),
    };
    if let Some(c) = FRACTION.captures(t) {
        let num: f64 = c.get(1).or(c.get(3))?.as_str().parse().ok()?;
        let den: f64 = c.get(2).or(c.get(4))?.as_str().parse().ok()?;
        return (den != 0.0).then_some((num / den, pct));
    }
    if !NUMBER.is_match(t) || !t.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    t.replace(',', "").parse().ok().map(|v| (v, pct))
}

/// Equal within a relative 1e-9; `50%` also equals `0.5`.
fn numbers_equal((a, ap): (f64, bool), (b, bp): (f64, bool)) -> bool {
    let eq = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    eq(a, b) || (ap && !bp && eq(a / 100.0, b)) || (bp && !ap && eq(a, b / 100.0))
}
