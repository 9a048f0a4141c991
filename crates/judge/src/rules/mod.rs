//! The deterministic `rules` judge: grades a prediction against a reference answer without a model.
//!
//! It is used on its own and as a pre-check in front of an LLM judge, where a `Correct` or
//! `Incorrect` verdict means no model is called. So it is conservative: it answers only when sure
//! and otherwise says `Unsure` with the reason.
//!
//! Grading order ([`grade_binary`]), on the final answers pulled out by [`extract_final_answer`]:
//! 1. An empty prediction (or an empty `\boxed{}`) is `Incorrect`; an empty reference is `Unsure`.
//! 2. Multiple choice, when the reference is an option letter (`B`, `(B)`, `B.`, `B) London`) or,
//!    with options listed in the question (one per line: `A. Paris`, `(B) London`, `C) Rome`; or
//!    inline: `(A) Paris (B) London`), the text of exactly one option. The prediction is matched
//!    by letter (also `so B`, `I would say C` at its end), or by option text: equal but for
//!    plurals, named in a sentence, or a surname of it (`Shakespeare`). A letter whose attached
//!    text contradicts the listed option (`B. Paris` when B is London), or a prediction that
//!    names no option, is `Unsure`; one that names two (`C or A`) is `Incorrect`.
//! 3. Numbers compare numerically (`4` = `4.00`, `1,000` = `1000`, `$5` = `5`, `1/2` = `0.5`,
//!    `x = 3` = `3`, `50%` = `50 %` = `50` = `0.5`); a different number is `Incorrect`. Against a
//!    numeric reference (also one with a unit, `12 cm`), number words count (`forty-five`), and
//!    a sentence is read for its number (the last one, after the last `=`): equal is `Correct`
//!    unless it carries another unit or scale (`5 km` for `5 m`, `25 cents`); an only number
//!    that differs is `Incorrect`; several numbers joined by a hedge (`12 or 13`) are
//!    `Incorrect`; a negation, an inequality or a power is `Unsure`.
//! 4. A yes/no reference is matched by the prediction's first word (`No, it is round.`); a
//!    prediction that says both, or neither, is `Unsure`.
//! 5. Equal [`normalize`]d answers (plurals aside: `diamonds` = `diamond`) are `Correct`, and so
//!    are initials (`CPU`), a surname (`Austen` for `Jane Austen`), a name without its generic
//!    word (`Everest`, `the Pacific`), and a sentence that names the reference in its first
//!    clause with nothing around it but filler and the question's own words (`The capital of
//!    France is Paris.`, `Paris, France`), with no negation or hedge anywhere.
//! 6. Two short (at most three words), digit-free answers that share no word, no word stem and
//!    are not an abbreviation of each other are `Incorrect`. Anything else is `Unsure`. Aliases
//!    with nothing in common (`Au` / `Gold`, `Mark Twain` / `Samuel Clemens`, `Rome` / `Roma`)
//!    are therefore graded `Incorrect`: the price of answering short mismatches without a model
//!    (in front of a model, the pre-check leaves them to it).

mod answer;
mod choice;
mod grade;
mod grader;
mod normal;
mod numbers;
mod plain_numbers;
mod text;
mod verdict;

#[cfg(test)]
mod tests;

pub use answer::extract_final_answer;
pub use grade::grade_binary;
pub use grader::RulesGrader;
pub use normal::normalize;
pub use verdict::RulesVerdict;
