//! Confidence in a verdict: where it comes from, and how it is read from the log probabilities
//! of the verdict token when the provider returns them.
//!
//! The verdict token is the last answer token that reads as a verdict (after the justification:
//! `Verdict: 1`, `{"verdict": "yes"}`, `Score: 7`, `[[B]]`). At that position the provider lists
//! the most likely tokens with their log probabilities; those that read as each verdict are added
//! up, and the shares of the verdicts among them are the distribution:
//! - binary: P(positive) / (P(positive) + P(negative));
//! - scores: the probability-weighted mean of the scale points among the alternatives (G-Eval's
//!   score), next to the parsed one;
//! - pairwise: the shares of A, B and a tie.
//!
//! When the answer has no log probabilities, or none at a verdict token, the caller reports
//! `confidence_source: "none"` and counts a fallback: nothing else is put in its place.

use serde::Serialize;

use llm_judge_chat::TokenLogprob;

/// Where a verdict's `confidence` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfidenceSource {
    /// The log probabilities of the verdict token.
    Logprobs,
    /// A panel's agreement: the share of its judges that gave the panel's verdict.
    Panel,
    /// A comparison asked in both orders: 1 when they agree, 0.5 when they do not.
    Swap,
    /// Nothing measured it; `confidence` is null.
    #[default]
    None,
}

/// Why log probabilities gave no confidence (a bounded label, for the fallback metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The answer came without log probabilities (reasoning models, some servers, the rules
    /// judge, a cached answer from before).
    NotReturned,
    /// No answer token read as a verdict, or it came without alternatives.
    NoVerdictToken,
}

impl Missing {
    pub fn as_str(&self) -> &'static str {
        match self {
            Missing::NotReturned => "not_returned",
            Missing::NoVerdictToken => "no_verdict_token",
        }
    }
}

/// A token's text as a verdict word: without spaces, quotes, brackets, markdown or trailing
/// punctuation, lowercased.
fn word(token: &str) -> String {
    token
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '.' && c != '-')
        .trim_end_matches('.')
        .to_lowercase()
}

/// Every distinct token seen at a position, with its probability: the alternatives and the
/// chosen token (which a provider may leave out of its alternatives).
fn candidates(t: &TokenLogprob) -> Vec<(&str, f64)> {
    let mut out: Vec<(&str, f64)> = Vec::with_capacity(t.top.len() + 1);
    for (tok, lp) in t
        .top
        .iter()
        .map(|(a, b)| (a.as_str(), *b))
        .chain([(t.token.as_str(), t.logprob)])
    {
        if lp.is_finite() && !out.iter().any(|(seen, _)| *seen == tok) {
            out.push((tok, lp.exp()));
        }
    }
    out
}

const POSITIVE: [&str; 5] = ["1", "yes", "correct", "true", "right"];
const NEGATIVE: [&str; 5] = ["0", "no", "incorrect", "false", "wrong"];

fn polarity(token: &str) -> Option<bool> {
    let w = word(token);
    if POSITIVE.contains(&w.as_str()) {
        Some(true)
    } else if NEGATIVE.contains(&w.as_str()) {
        Some(false)
    } else {
        None
    }
}

fn last_position(
    tokens: Option<&[TokenLogprob]>,
    is_verdict: impl Fn(&[TokenLogprob], usize) -> bool,
) -> Result<usize, Missing> {
    let tokens = tokens
        .filter(|t| !t.is_empty())
        .ok_or(Missing::NotReturned)?;
    (0..tokens.len())
        .rev()
        .find(|&i| is_verdict(tokens, i))
        .ok_or(Missing::NoVerdictToken)
}

/// A binary verdict's distribution: the verdict token's index and P(positive).
pub fn binary(tokens: Option<&[TokenLogprob]>) -> Result<(usize, f64), Missing> {
    let i = last_position(tokens, |t, i| polarity(&t[i].token).is_some())?;
    let at = &tokens.unwrap_or_default()[i];
    let (mut pos, mut neg) = (0.0, 0.0);
    for (tok, p) in candidates(at) {
        match polarity(tok) {
            Some(true) => pos += p,
            Some(false) => neg += p,
            None => {}
        }
    }
    // Without alternatives only the chosen side is known: no share can be given.
    if at.top.is_empty() || pos + neg <= 0.0 {
        return Err(Missing::NoVerdictToken);
    }
    Ok((i, pos / (pos + neg)))
}

/// A whole number on the scale.
fn scale_point(token: &str, min: f64, max: f64) -> Option<f64> {
    let w = word(token);
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: f64 = w.parse().ok()?;
    (v >= min && v <= max).then_some(v)
}

/// A score's distribution: the score token's index, the probability-weighted score and the
/// share of the chosen score. The score must be one token of its own (a number split over
/// several tokens, such as `1` `0`, is not read).
pub fn score(
    tokens: Option<&[TokenLogprob]>,
    min: f64,
    max: f64,
) -> Result<(usize, f64, f64), Missing> {
    let digit_end = |s: &str| s.ends_with(|c: char| c.is_ascii_digit());
    let digit_start = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
    let i = last_position(tokens, |t, i| {
        scale_point(&t[i].token, min, max).is_some()
            && !(i > 0 && digit_end(&t[i - 1].token) && digit_start(&t[i].token))
            && t.get(i + 1).is_none_or(|n| !digit_start(&n.token))
    })?;
    let at = &tokens.unwrap_or_default()[i];
    let points: Vec<(f64, f64)> = candidates(at)
        .into_iter()
        .filter_map(|(tok, p)| scale_point(tok, min, max).map(|v| (v, p)))
        .collect();
    let total: f64 = points.iter().map(|(_, p)| p).sum();
    let chosen = scale_point(&at.token, min, max);
    if at.top.is_empty() || total <= 0.0 {
        return Err(Missing::NoVerdictToken);
    }
    let weighted = points.iter().map(|(v, p)| v * p).sum::<f64>() / total;
    let share = points
        .iter()
        .filter(|(v, _)| Some(*v) == chosen)
        .map(|(_, p)| p)
        .sum::<f64>()
        / total;
    Ok((i, weighted, share))
}

/// The pairwise winner a token names: 0 for A, 1 for B, 2 for a tie. Only capital letters
/// count, so that the article "a" in the justification is never read as one.
fn side(token: &str) -> Option<usize> {
    let t = token.trim_matches(|c: char| !c.is_alphanumeric());
    match t {
        "A" => Some(0),
        "B" => Some(1),
        "C" | "TIE" | "Tie" => Some(2),
        _ => None,
    }
}

/// A pairwise verdict's distribution: the winner token's index and the shares of A, B, tie.
pub fn pairwise(tokens: Option<&[TokenLogprob]>) -> Result<(usize, [f64; 3]), Missing> {
    let i = last_position(tokens, |t, i| side(&t[i].token).is_some())?;
    let at = &tokens.unwrap_or_default()[i];
    let mut shares = [0.0; 3];
    for (tok, p) in candidates(at) {
        if let Some(s) = side(tok) {
            shares[s] += p;
        }
    }
    let total: f64 = shares.iter().sum();
    if at.top.is_empty() || total <= 0.0 {
        return Err(Missing::NoVerdictToken);
    }
    Ok((i, shares.map(|s| s / total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(token: &str, lp: f64, top: &[(&str, f64)]) -> TokenLogprob {
        TokenLogprob {
            token: token.into(),
            logprob: lp,
            top: top.iter().map(|(t, l)| (t.to_string(), *l)).collect(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn binary_reads_the_last_verdict_token() {
        let p = |x: f64| x.ln();
        let tokens = vec![
            tok("The", p(0.9), &[]),
            tok(" answer", p(0.9), &[]),
            tok(" is", p(0.9), &[]),
            tok(" correct", p(0.9), &[("correct", p(0.9))]),
            tok(".\n", p(0.9), &[]),
            tok("Verdict", p(0.99), &[]),
            tok(":", p(0.99), &[]),
            tok(
                " 1",
                p(0.72),
                &[(" 1", p(0.72)), (" 0", p(0.18)), (" maybe", p(0.1))],
            ),
        ];
        let (i, pos) = binary(Some(&tokens)).unwrap();
        assert_eq!(i, 7);
        assert!(close(pos, 0.8), "{pos}");
        // Several spellings of one side add up; the chosen token counts once.
        let yes = vec![tok(
            "Yes",
            p(0.5),
            &[("Yes", p(0.5)), (" yes", p(0.2)), ("No", p(0.3))],
        )];
        assert!(close(binary(Some(&yes)).unwrap().1, 0.7));
        // Inside a JSON answer.
        let json = vec![
            tok("{\"", 0.0, &[]),
            tok("verdict", 0.0, &[]),
            tok("\":\"", 0.0, &[]),
            tok("no", p(0.6), &[("no", p(0.6)), ("yes", p(0.4))]),
            tok("\"}", 0.0, &[]),
        ];
        assert!(close(binary(Some(&json)).unwrap().1, 0.4));
    }

    #[test]
    fn missing_logprobs_are_reported_not_filled_in() {
        assert_eq!(binary(None), Err(Missing::NotReturned));
        assert_eq!(binary(Some(&[])), Err(Missing::NotReturned));
        let words = vec![tok("Looks", -0.1, &[]), tok(" fine", -0.1, &[])];
        assert_eq!(binary(Some(&words)), Err(Missing::NoVerdictToken));
        // A verdict token without alternatives gives no share.
        let bare = vec![tok("1", -0.1, &[])];
        assert_eq!(binary(Some(&bare)), Err(Missing::NoVerdictToken));
        assert_eq!(Missing::NotReturned.as_str(), "not_returned");
    }

    #[test]
    fn score_is_weighted_over_the_scale_points() {
        let p = |x: f64| x.ln();
        let tokens = vec![
            tok("Score", 0.0, &[]),
            tok(":", 0.0, &[]),
            tok(
                " 7",
                p(0.5),
                &[
                    (" 7", p(0.5)),
                    (" 8", p(0.3)),
                    (" 6", p(0.1)),
                    (" eleven", p(0.1)),
                ],
            ),
        ];
        let (i, weighted, share) = score(Some(&tokens), 1.0, 10.0).unwrap();
        assert_eq!(i, 2);
        assert!(
            close(weighted, (7.0 * 0.5 + 8.0 * 0.3 + 6.0 * 0.1) / 0.9),
            "{weighted}"
        );
        assert!(close(share, 0.5 / 0.9));
        // 11 is off the scale: not a score token, nor an alternative.
        let off = vec![tok("11", p(0.9), &[("11", p(0.9)), ("10", p(0.1))])];
        assert_eq!(score(Some(&off), 1.0, 10.0), Err(Missing::NoVerdictToken));
        // "10" split into two tokens is not read as 0.
        let split = vec![
            tok("1", p(0.9), &[("1", p(0.9))]),
            tok("0", p(0.9), &[("0", p(0.9))]),
        ];
        assert_eq!(score(Some(&split), 0.0, 10.0), Err(Missing::NoVerdictToken));
    }

    #[test]
    fn pairwise_reads_capital_letters_only() {
        let p = |x: f64| x.ln();
        let tokens = vec![
            tok("B", p(0.5), &[]),
            tok(" is", 0.0, &[]),
            tok(" a", 0.0, &[("a", 0.0)]),
            tok(" good", 0.0, &[]),
            tok(" answer.\n[[", 0.0, &[]),
            tok("A", p(0.6), &[("A", p(0.6)), ("B", p(0.3)), ("C", p(0.1))]),
            tok("]]", 0.0, &[]),
        ];
        let (i, shares) = pairwise(Some(&tokens)).unwrap();
        assert_eq!(i, 5);
        assert!(close(shares[0], 0.6) && close(shares[1], 0.3) && close(shares[2], 0.1));
    }
}
