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

mod binary;
mod markers;
mod pairwise;
mod reply;
mod score;
mod unscored;
mod words;

#[cfg(test)]
mod tests;

pub use binary::parse_binary;
pub use pairwise::{Winner, parse_pairwise};
pub use reply::has_json_object;
pub use score::parse_score;
pub use unscored::{Unscored, UnscoredReason};

/// The version of these parsers, part of every verdict cache key: change it whenever a change
/// here could read a stored answer differently, so that cached verdicts are judged afresh.
pub const PARSER_VERSION: &str = "parse-v1";
