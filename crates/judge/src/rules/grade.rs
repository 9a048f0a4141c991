//! The rules judge's grading of one prediction against a reference, in the order the module
//! documentation gives.

use super::answer::extract_final_answer;
use super::choice::multiple_choice;
use super::normal::{clip, normalize};
use super::plain_numbers::numeric;
use super::text;
use super::verdict::RulesVerdict::{self, Correct, Incorrect, Unsure};

/// Grades `prediction` against `reference`; `question` is read for multiple-choice options and
/// for the words an answer may repeat from it.
pub fn grade_binary(question: &str, reference: &str, prediction: &str) -> RulesVerdict {
    if prediction.trim().is_empty() {
        return Incorrect("empty prediction".into());
    }
    let (r, p) = (
        extract_final_answer(reference),
        extract_final_answer(prediction),
    );
    if r.is_empty() {
        return Unsure("empty reference".into());
    }
    if p.is_empty() {
        return Incorrect("the prediction's final answer is empty".into());
    }
    if let Some(v) = multiple_choice(question, &r, &p) {
        return v;
    }
    if let Some(v) = numeric(&r, &p) {
        return v;
    }
    let (nr, np) = (normalize(&r), normalize(&p));
    if nr.is_empty() || np.is_empty() {
        return Unsure("nothing left to compare after normalisation".into());
    }
    let (rw, pw): (Vec<&str>, Vec<&str>) = (nr.split(' ').collect(), np.split(' ').collect());
    if let [word] = rw.as_slice()
        && let Some(want) = text::yes_no(word)
    {
        return match text::answer_yes_no(&pw) {
            Some(got) if got == want => Correct(format!("yes/no answer: {}", pw[0])),
            Some(_) => Incorrect(format!(
                "yes/no answer {} against the reference {word}",
                pw[0]
            )),
            None => Unsure(format!(
                "the reference is {word}, and the answer does not open with a plain yes or no"
            )),
        };
    }
    if rw.len() == pw.len() && rw.iter().zip(&pw).all(|(a, b)| text::same_word(a, b)) {
        return Correct(format!("exact match after normalisation: \"{np}\""));
    }
    if text::initials(&pw, &rw) || text::initials(&rw, &pw) {
        return Correct(format!("initials: \"{np}\" for \"{nr}\""));
    }
    if text::short_name(&r, &rw, &pw) {
        return Correct(format!("a shorter form of the name: \"{np}\" for \"{nr}\""));
    }
    if text::names_reference(question, &rw, &p) {
        return Correct(format!(
            "the answer names the reference \"{nr}\": \"{}\"",
            clip(&np)
        ));
    }
    let short = |w: &[&str], s: &str| w.len() <= 3 && !s.chars().any(|c| c.is_ascii_digit());
    if short(&rw, &nr)
        && short(&pw, &np)
        && !rw.iter().any(|a| pw.iter().any(|b| text::related(a, b)))
        && !abbreviation(&rw, &pw)
        && !abbreviation(&pw, &rw)
    {
        return Incorrect(format!(
            "different short answers: \"{np}\" vs reference \"{nr}\""
        ));
    }
    Unsure(format!(
        "free-form answer \"{}\" neither equals nor clearly contradicts the reference",
        clip(&np)
    ))
}

/// True when the single word in `short` starts with the initials of `long` (or the reverse).
fn abbreviation(short: &[&str], long: &[&str]) -> bool {
    if short.len() != 1 || long.len() < 2 {
        return false;
    }
    let initials: String = long.iter().filter_map(|w| w.chars().next()).collect();
    let word = short[0];
    word.len() >= 2 && (word.starts_with(&initials) || initials.starts_with(word))
}
